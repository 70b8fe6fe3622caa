/**
 * `@qmpkit/snapshots`: save a running QEMU VM, run a test, roll back — three strategies
 * behind one interface, and a crash-consistent store.
 *
 * - `openSnapshots(machine, { dir })` → `Snapshots` (save/load/delete/list, debris cleaned,
 *   strategy chosen by `chooseStrategy` with an explanation).
 * - `InternalHmpStrategy` (savevm), `InternalJobsStrategy` (snapshot-save),
 *   `ExternalStrategy` (overlays + migration stream, optionally live), `createStrategy`.
 * - `SnapshotStore` (the manifest), `verifyStateFile`, `deviceConfigHash`.
 */

export type { ChooseOptions, StrategyCandidate, StrategyChoice, StrategyProbes } from './choose.js';
export { chooseStrategy } from './choose.js';
export type {
  Clone,
  CloneOptions,
  CloneRam,
  CloneSet,
  PrepareCloneOptions,
  PreparedClone,
  PreparedCloneSet,
  StartPreparedCloneOptions,
} from './clones.js';
export { cloneSnapshot, prepareClones, startPreparedClone } from './clones.js';
export type {
  CannotLoadBinary,
  CannotLoadErrorName,
  CannotLoadFields,
  CannotLoadReason,
  CloneErrorReason,
  MismatchField,
  QuiesceProblem,
  RestoreOutcome,
  StateFileProblem,
} from './errors.js';
export {
  isSnapshotAbortedError,
  isSnapshotCannotLoadError,
  isSnapshotCloneError,
  isSnapshotExistsError,
  isSnapshotIntegrityError,
  isSnapshotLoadFailedError,
  isSnapshotMismatchError,
  isSnapshotNotFoundError,
  isSnapshotQemuError,
  isSnapshotQuiesceError,
  isSnapshotRestoreError,
  isSnapshotStateFormatError,
  isSnapshotStoreError,
  isSnapshotTimeoutError,
  isSnapshotUnsupportedError,
  SnapshotAbortedError,
  SnapshotCannotLoadError,
  SnapshotCloneError,
  SnapshotExistsError,
  SnapshotIntegrityError,
  SnapshotLoadFailedError,
  SnapshotMismatchError,
  SnapshotNotFoundError,
  SnapshotQemuError,
  SnapshotQuiesceError,
  SnapshotRestoreError,
  SnapshotStateFormatError,
  SnapshotStoreError,
  SnapshotTimeoutError,
  SnapshotUnsupportedError,
} from './errors.js';
export type { ExternalOptions } from './external.js';
export { ExternalStrategy } from './external.js';
export { InternalHmpStrategy, InternalJobsStrategy } from './internal.js';
export type { MappedRamSupport } from './mapped-ram.js';
export {
  DEFAULT_MAPPED_RAM_LOAD,
  DEFAULT_MAPPED_RAM_SAVE,
  mappedRamSupport,
  probeDirectIo,
} from './mapped-ram.js';
export type { DebrisReport, OpenSnapshotsOptions } from './snapshots.js';
export { createStrategy, openSnapshots, Snapshots } from './snapshots.js';
export type { ExpectedStream } from './statefile.js';
export { STREAM_MAGIC, STREAM_VERSION, sha256File, verifyStateFile } from './statefile.js';
export type { Manifest, PendingSave } from './store.js';
export { MANIFEST_FORMAT, MANIFEST_VERSION, SnapshotStore } from './store.js';
export type {
  DeleteOptions,
  DeleteResult,
  LoadOptions,
  LoadResult,
  MappedRamTuning,
  QuiesceHook,
  RamFileRecord,
  SaveOptions,
  SaveResult,
  SharedRamFallbackReason,
  SharedRamOutcome,
  SnapshotConsistency,
  SnapshotInfo,
  SnapshotPhase,
  SnapshotProgress,
  SnapshotRecord,
  SnapshotStrategy,
  SnapshotTask,
  SnapshotTimings,
  StateEncoding,
  StrategyKind,
} from './types.js';
export type { VmIdentity } from './vm.js';
export { defaultTimeout, deviceConfigHash } from './vm.js';
