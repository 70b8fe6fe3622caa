/**
 * `@qmpkit/machine`: a QEMU process with its QMP session, consoles, configuration model
 * (`@qmpkit/devices`) and a crash-safe state file.
 *
 * - `launch(config, options)` → `Machine`; `Machine.relaunch(stateFile)` after a crash.
 * - `machine.qmp` (typed client), `machine.console(id)`, `machine.plug/unplug`,
 *   `machine.stop/kill/restart`, `machine.consoleState/restoreConsoleState`.
 */

export type { AcceleratorProbe, ProbeOptions } from './accel.js';
export {
  AcceleratorProbeError,
  isAcceleratorProbeError,
  probeAccelerators,
  usableAccelerators,
} from './accel.js';
export type { QemuBinary, QemuCacheManifest, ResolveQemuOptions } from './binary.js';
export {
  defaultCacheDir,
  parseQemuVersion,
  qemuBinaryArgs,
  qemuBinaryEnv,
  qemuCacheDir,
  readQemuCacheManifest,
  resolveQemuBinary,
  unpackedRootLayout,
} from './binary.js';
export type {
  BackupOptions,
  BlockJobCommand,
  BlockJobHost,
  BlockJobOutcome,
  BlockJobQmp,
  BlockJobType,
  BlockJobUpdate,
  CommandExec,
  CommitOptions,
  MirrorOptions,
  StreamOptions,
} from './block-jobs.js';
export {
  BlockJob,
  backup,
  backupArgs,
  blockJobId,
  commit,
  mirror,
  stream,
  watchBlockJobs,
} from './block-jobs.js';
export type {
  ChainHost,
  ChainJobRequest,
  ChainJobResult,
  ChainOperation,
  ChainPlan,
  StoppedVmChainOptions,
} from './chain-jobs.js';
export {
  chainJobOnStoppedVm,
  planChainJob,
  runChainJob,
  storageDaemonChainHost,
} from './chain-jobs.js';
export * from './compat/index.js';
export type {
  ConsoleEncoding,
  ConsoleMatch,
  ConsoleSpec,
  ConsoleState,
  ExpectOptions,
} from './console.js';
export { Console } from './console.js';
export type { ConvergenceDecision, ConvergenceOptions } from './convergence.js';
export { ConvergenceController } from './convergence.js';
export type {
  BlockJobFailure,
  ChainJobProblem,
  LaunchFailure,
  LiveMigrationFailure,
  MigrationFailure,
  ProcessLaunchFailure,
  ProcessLaunchFields,
  QemuBinaryProblem,
  RunDirProblem,
  StateFileProblem,
  StorageDaemonCandidate,
  StorageDaemonFailure,
} from './errors.js';
export {
  BlockJobError,
  ChainJobError,
  ConsoleClosedError,
  ConsoleTimeoutError,
  isBlockJobError,
  isChainJobError,
  isConsoleClosedError,
  isConsoleTimeoutError,
  isLeftoverQemuError,
  isLiveMigrationError,
  isMachineNotRunningError,
  isMachineOptionsError,
  isMachinePlugError,
  isMachineTypeError,
  isMigrationError,
  isProcessLaunchError,
  isQemuBinaryError,
  isQemuImgError,
  isQemuLaunchError,
  isRunDirError,
  isRunDirLockedError,
  isStateFileError,
  isStorageDaemonError,
  isStorageDaemonVersionError,
  LeftoverQemuError,
  LiveMigrationError,
  MachineNotRunningError,
  MachineOptionsError,
  MachinePlugError,
  MachineTypeError,
  MigrationError,
  ProcessLaunchError,
  QemuBinaryError,
  QemuImgError,
  QemuLaunchError,
  RunDirError,
  RunDirLockedError,
  StateFileError,
  StorageDaemonError,
  StorageDaemonVersionError,
} from './errors.js';
export type { FetchQemuOptions, QemuDownload } from './fetch.js';
export { fetchQemu, QEMU_DOWNLOADS, QEMU_TOOL_DOWNLOADS, qemuToolsCacheDir } from './fetch.js';
export type { QemuSpec } from './launch-binary.js';
export type {
  LiveMigrateOptions,
  LiveMigration,
  LiveMigrationResult,
  MigrationDeadlines,
  MigrationProgress,
  MigrationTarget,
  MigrationTransport,
  PhaseDeadline,
  SwitchoverContext,
} from './live-migration.js';
export { DEFAULT_MIGRATION_DEADLINES, guestDifferences, migrate } from './live-migration.js';
export type { RunDirLock } from './lock.js';
export { acquireRunDirLock, LOCK_FILE } from './lock.js';
export type {
  ExitInfo,
  HotplugOptions,
  InheritedFileInfo,
  InheritFile,
  LaunchOptions,
  MachinePlugResult,
  MachineQmp,
  MachineUnplugResult,
  ProcessOptions,
  RelaunchOptions,
  RestartOptions,
  StopOptions,
} from './machine.js';
export { DEFAULT_QMP_CHARDEV, launch, Machine } from './machine.js';
export type { MachineTypeInfo } from './machine-type.js';
export { machineTypes, parseMachineHelp, resolveMachineType } from './machine-type.js';
export type {
  IncomingMigrationOptions,
  MigrationSetup,
  OutgoingMigrationOptions,
  OutgoingMigrationResult,
} from './migration.js';
export { migrateIncoming, migrateOutgoing, setUpMigration } from './migration.js';
export type {
  MigrationAddress,
  MigrationTls,
  PostcopySupport,
} from './migration-transport.js';
export {
  addressUri,
  parseMigrationAddress,
  probePostcopy,
} from './migration-transport.js';
export { diesWithUs, setprivAvailable } from './parent-death.js';
export type {
  PostcopyRecoveryOptions,
  RecoverPostcopyOptions,
  RecoverPostcopyResult,
} from './postcopy-recovery.js';
export { recoverPostcopy } from './postcopy-recovery.js';
export { resolveBinary } from './proc.js';
export type { LeakRepair, QemuImgOptions, QemuImgResult } from './qemu-img.js';
export { repairLeaks, runQemuImg } from './qemu-img.js';
export type {
  IncomingMigration,
  ReceivedMigration,
  ReceiveOptions,
} from './receive.js';
export { receiveMigration } from './receive.js';
export type {
  RemoteMigrateOptions,
  RemoteMigration,
  RemoteMigrationResult,
} from './remote-migration.js';
export { migrateTo } from './remote-migration.js';
export type {
  LoadedState,
  MachineState,
  MachineStatus,
  MigrationPhase,
  MigrationRecord,
  QemuVersion,
  RuntimeFacts,
  StoredBinary,
  StoredConsole,
  StoredLaunch,
} from './state.js';
export {
  MIGRATION_PHASES,
  readState,
  STATE_FORMAT,
  STATE_VERSION,
  STATE_VERSION_MIGRATING,
  STATE_VERSIONS_READ,
  writeFileAtomic,
} from './state.js';
export type { StoppedVmDaemon, StoppedVmOptions } from './stopped-vm.js';
export { withStoppedVm } from './stopped-vm.js';
export type {
  StorageDaemonNbdServer,
  StorageDaemonOptions,
  StorageDaemonQmp,
} from './storage-daemon.js';
export {
  launchStorageDaemon,
  STORAGE_DAEMON_PIDFILE,
  StorageDaemon,
  storageDaemonArgs,
} from './storage-daemon.js';
export type {
  DaemonQemu,
  PickedStorageDaemon,
  ResolveStorageDaemonOptions,
  StorageDaemonBinary,
} from './storage-daemon-binary.js';
export {
  daemonForVm,
  parseStorageDaemonVersion,
  resolveStorageDaemon,
  STORAGE_DAEMON,
  stateQemu,
  storageDaemonEnv,
  storageDaemonFor,
} from './storage-daemon-binary.js';
export type { RunDirProcess } from './tracking.js';
export { runDirProcesses } from './tracking.js';
export * from './vmstate/index.js';
