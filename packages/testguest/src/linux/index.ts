export {
  type BuildLinuxGuestOptions,
  buildLinuxGuest,
  LINUX_GUEST_APPEND,
  LINUX_GUEST_FORMAT,
  type LinuxGuest,
  type LinuxGuestManifest,
  linuxGuestKey,
} from './build.js';
export { type CpioEntry, writeCpio } from './cpio.js';
export { AGENT_PORT, GUEST_MODULES, READY_MARKER, TICK_PREFIX } from './init.js';
export { type Json, JsonLineClient, type JsonObject } from './jsonlines.js';
export {
  efiKernel,
  type FetchOvmfOptions,
  fetchOvmf,
  type Ovmf,
  ovmfVarsCopy,
} from './ovmf.js';
export {
  AGENT_PORT_ID,
  type LinuxGuestLine,
  LinuxGuestProcess,
  type LinuxGuestQemu,
  linuxGuestArgs,
  type StartLinuxGuestOptions,
  startLinuxGuest,
} from './start.js';
