/**
 * `@qmpkit/guest-agent`: a typed client for QEMU's guest agent (qemu-ga) over the host end of
 * its virtio-serial channel — sync after every (re)connect, readiness, per-command timeouts,
 * agent death through QMP's `VSERPORT_CHANGE`, and helpers for exec, files, network
 * interfaces and a freeze scope that always thaws.
 */
export type {
  AgentPortState,
  ExecOptions,
  ExecResult,
  FreezeOptions,
  GuestAgentOptions,
  TimeoutPolicy,
  VserportEvents,
  WaitForAgentOptions,
} from './client.js';
export { DEFAULT_TIMEOUTS, GuestAgent, NO_REPLY_COMMANDS } from './client.js';
export type { AgentUnavailableReason } from './errors.js';
export {
  AgentLostError,
  AgentUnavailableError,
  GuestExecTimeoutError,
  GuestFileTooLargeError,
  GuestThawError,
  isAgentLostError,
  isAgentUnavailableError,
  isGuestExecTimeoutError,
  isGuestFileTooLargeError,
  isGuestThawError,
} from './errors.js';
