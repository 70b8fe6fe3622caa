/**
 * `@qmpkit/fake-qmp`: a QMP server that answers like QEMU 7.2 on the wire, for testing QMP
 * clients without QEMU. Subpaths: `@qmpkit/fake-qmp/vitest` (test helpers),
 * `@qmpkit/fake-qmp/msw` (mock a QMP-over-WebSocket endpoint).
 *
 * Everything the page build (`index.browser.ts`) exports, plus what needs Node: the fake
 * guest agent, `HostStorage`, the fake as a process and the recording proxy.
 */

export {
  type FakeExecRequest,
  type FakeExecResult,
  FakeGuestAgent,
  type FakeGuestAgentOptions,
  type FakeProgram,
} from './agent/fake-agent.js';
export * from './index.browser.js';
export { HostStorage } from './model/host-storage.js';
export type { FakeQemuCommandLine, FakeQemuIo } from './process.js';
export { parseQemuCommandLine, runFakeQemu } from './process.js';
export { conversationFile, recordConversation } from './replay/recorder.js';
export {
  type FakeDaemonAction,
  FakeDaemonCommandLineError,
  type FakeDaemonMonitor,
  type FakeStorageDaemonCommandLine,
  type FakeStorageDaemonIo,
  openDaemonActions,
  parseStorageDaemonCommandLine,
  runFakeStorageDaemon,
} from './storage-daemon-process.js';
