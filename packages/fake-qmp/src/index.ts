/**
 * `@qmpkit/fake-qmp`: a QMP server that answers like QEMU 7.2 on the wire, for testing QMP
 * clients without QEMU. Subpaths: `@qmpkit/fake-qmp/vitest` (test helpers),
 * `@qmpkit/fake-qmp/msw` (mock a QMP-over-WebSocket endpoint).
 */
export {
  type FakeExecRequest,
  type FakeExecResult,
  FakeGuestAgent,
  type FakeGuestAgentOptions,
  type FakeProgram,
} from './agent/fake-agent.js';
export {
  ConversationFileError,
  ExpectationError,
  type ExpectationFailure,
  FakeQmpUsageError,
  isConversationFileError,
  isExpectationError,
  isFakeQmpUsageError,
  isQmpReplyError,
  isReplayDivergenceError,
  QmpReplyError,
  qmpError,
  type ReplayDivergence,
  ReplayDivergenceError,
} from './errors.js';
export { QemuFloat, type QemuValue, RawJson } from './json/values.js';
export { formatDouble, qdictOrder, quoteString, writeQemuJson } from './json/writer.js';
export type { InternalSnapshot } from './model/block.js';
export type { MachineKind } from './model/devices.js';
export type { FakeTiming } from './model/host.js';
export { HostStorage } from './model/host-storage.js';
export type { RunStateName } from './model/runstate.js';
export type { FileInfo, Storage } from './model/storage.js';
export { MemoryStorage } from './model/storage.js';
export type { VmModel, VmOptions } from './model/vm.js';
export type { FakeQemuCommandLine, FakeQemuIo } from './process.js';
export { parseQemuCommandLine, runFakeQemu } from './process.js';
export {
  type Conversation,
  type ConversationRecord,
  formatConversation,
  importReplies,
  parseConversation,
} from './replay/conversation.js';
export {
  conversationFile,
  type Recorder,
  type RecorderOptions,
  recordConversation,
} from './replay/recorder.js';
export type { ArgumentsMatcher, Expectation } from './script/expectations.js';
export type { FaultHandle, FaultMatch, FaultSpec } from './script/faults.js';
export {
  createFakeQmp,
  FAKE_QEMU_VERSIONS,
  type FakeAddress,
  type FakeQemuVersion,
  FakeQmp,
  type FakeQmpOptions,
  type ListenOption,
} from './server/fake.js';
export {
  type CommandContext,
  type CommandHandler,
  type ExchangeRecord,
  type FakeClient,
  NO_REPLY,
  type NoReply,
} from './server/types.js';
