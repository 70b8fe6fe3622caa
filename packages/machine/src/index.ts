/**
 * `@qmpkit/machine`: a QEMU process with its QMP session, consoles, configuration model
 * (`@qmpkit/devices`) and a crash-safe state file.
 *
 * - `launch(config, options)` → `Machine`; `Machine.relaunch(stateFile)` after a crash.
 * - `machine.qmp` (typed client), `machine.console(id)`, `machine.plug/unplug`,
 *   `machine.stop/kill/restart`, `machine.consoleState/restoreConsoleState`.
 */

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
  ConsoleEncoding,
  ConsoleMatch,
  ConsoleSpec,
  ConsoleState,
  ExpectOptions,
} from './console.js';
export { Console } from './console.js';
export type {
  LaunchFailure,
  QemuBinaryProblem,
  RunDirProblem,
  StateFileProblem,
} from './errors.js';
export {
  ConsoleClosedError,
  ConsoleTimeoutError,
  isConsoleClosedError,
  isConsoleTimeoutError,
  isMachineNotRunningError,
  isMachineOptionsError,
  isMachinePlugError,
  isQemuBinaryError,
  isQemuLaunchError,
  isRunDirError,
  isStateFileError,
  MachineNotRunningError,
  MachineOptionsError,
  MachinePlugError,
  QemuBinaryError,
  QemuLaunchError,
  RunDirError,
  StateFileError,
} from './errors.js';
export type { FetchQemuOptions, QemuDownload } from './fetch.js';
export { fetchQemu, QEMU_DOWNLOADS } from './fetch.js';
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
export type {
  LoadedState,
  MachineState,
  MachineStatus,
  QemuVersion,
  RuntimeFacts,
  StoredConsole,
  StoredLaunch,
} from './state.js';
export { readState, STATE_FORMAT, STATE_VERSION, writeFileAtomic } from './state.js';
export * from './vmstate/index.js';
