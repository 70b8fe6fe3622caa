export {
  AssemblerError,
  GuestImageError,
  GuestOptionsError,
  GuestProcessError,
  isAssemblerError,
  isGuestImageError,
  isGuestOptionsError,
  isGuestProcessError,
  isLinuxGuestBuildError,
  isLinuxGuestError,
  isQemuImgError,
  LinuxGuestBuildError,
  type LinuxGuestBuildStep,
  LinuxGuestError,
  QemuImgError,
} from './errors.js';
export {
  type BootSectorConfig,
  type BootSectorOptions,
  bootSectorListing,
  buildBootSector,
  buildDiskImage,
  type DiskImageOptions,
  decodeCounterRecord,
  readBootSectorConfig,
  readCounterFromDisk,
} from './image.js';
export {
  COUNTER_ADDRESS,
  DEFAULT_DISK_SIZE,
  DEFAULT_INTERVAL_MS,
  fillPatternAt,
  GUEST_FORMAT_VERSION,
  GUEST_LAYOUT,
} from './layout.js';
export * from './linux/index.js';
export {
  createQcow2Guest,
  escapeQemuOptionValue,
  type GuestImageFormat,
  type GuestQemuArgsOptions,
  type GuestSerial,
  guestQemuArgs,
  type QemuImgOptions,
  type ReadImageOptions,
  readCounterFromImageFile,
  runQemuImg,
  writeGuestImage,
} from './node.js';
export {
  type GuestExit,
  type GuestLine,
  GuestProcess,
  type StartGuestOptions,
  startGuest,
} from './process.js';
export {
  formatCounterLine,
  parseCounterLine,
  parseSerialLine,
  SERIAL_FORMAT,
  type SerialLine,
  SerialLineSplitter,
} from './serial.js';
