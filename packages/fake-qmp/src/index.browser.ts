/**
 * `@qmpkit/fake-qmp` in a page (the `browser` export condition): the same fake, with no Node
 * built-ins. Clients attach in memory (`fake.attach`, or the msw adapter
 * `@qmpkit/fake-qmp/msw`) and files live in memory (`storage: 'memory'`, the default here);
 * what needs Node is left out: `HostStorage`, listeners (`listen`), `runFakeQemu` (the fake
 * as a process) and `recordConversation` (a recording proxy on a socket).
 */
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
  isStorageError,
  QmpReplyError,
  qmpError,
  type ReplayDivergence,
  ReplayDivergenceError,
  StorageError,
} from './errors.js';
export { QemuFloat, type QemuValue, RawJson } from './json/values.js';
export { formatDouble, qdictOrder, quoteString, writeQemuJson } from './json/writer.js';
export type { InternalSnapshot } from './model/block.js';
export type { MachineKind } from './model/devices.js';
export type { ExportAddArgs } from './model/exports.js';
export type { FakeTiming } from './model/host.js';
export type { RunStateName } from './model/runstate.js';
export type { FileInfo, Storage } from './model/storage.js';
export { MemoryStorage } from './model/storage.js';
export type { VmModel, VmOptions } from './model/vm.js';
export {
  type Conversation,
  type ConversationRecord,
  formatConversation,
  importReplies,
  parseConversation,
} from './replay/conversation.js';
export type { Recorder, RecorderOptions } from './replay/recorder.js';
export type { ArgumentsMatcher, Expectation } from './script/expectations.js';
export type { FaultHandle, FaultMatch, FaultSpec } from './script/faults.js';
export {
  createFakeQmp,
  createFakeStorageDaemon,
  FAKE_QEMU_VERSIONS,
  type FakeAddress,
  type FakePersonality,
  type FakeQemuVersion,
  FakeQmp,
  type FakeQmpOptions,
  type FakeStorageDaemonOptions,
  type FakeStream,
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
