/**
 * `@qmpkit/devices`: QEMU's configuration as a typed object model. Pure: no I/O.
 *
 * - `VmConfig` — plain data (block nodes, netdevs, chardevs and objects typed by QEMU 7.2's
 *   schema; devices by a hand-written qdev table), stored with `toJSON`/`fromJSON`.
 * - `toArgv` — the command line for a cold start; `plug`/`unplug` — typed QMP steps.
 * - `validate`/`assertValid` — every problem, naming object and field.
 * - `blockGraph` — nodes, edges, chains, snapshot classification; `insertOverlay`.
 */

export type { ArgvOptions, QmpChannel } from './argv.js';
export {
  blockdevJson,
  chardevArg,
  deviceArguments,
  deviceJson,
  netdevJson,
  objectJson,
  qmpMonitorArgs,
  toArgv,
} from './argv.js';
export type { AssemblyOptions, AssemblyPlan } from './assembly.js';
export { assemblyPlan } from './assembly.js';
export type { ChardevCliResult, CliUnsupported } from './chardev-cli.js';
export { chardevCli } from './chardev-cli.js';
export type {
  BusKind,
  DriverProps,
  DriverSpec,
  IntKind,
  KnownDriver,
  PropKind,
  PropSpec,
  RefTarget,
} from './drivers.js';
export { DRIVERS, isKnownDriver } from './drivers.js';
export {
  ConfigFormatError,
  ConfigValidationError,
  isConfigFormatError,
  isConfigValidationError,
  isModelError,
  ModelError,
} from './errors.js';
export type {
  Attachment,
  BlockEdge,
  Consumer,
  GraphNode,
  NodeClass,
  NodeClassification,
} from './graph.js';
export { BlockGraph, blockGraph } from './graph.js';
export type { LayerFile, ReportedBlockGraph } from './graph-edit.js';
export {
  backingOf,
  chainNodes,
  layerFile,
  reconcileBlockGraph,
  usersOf,
  withoutLayer,
  withReadOnly,
} from './graph-edit.js';
export type {
  DeviceDelStep,
  PlugResult,
  PlugStep,
  QmpStep,
  UnplugOptions,
  UnplugResult,
  UnplugStep,
} from './hotplug.js';
export { plug, undoPlug, unplug, withParts } from './hotplug.js';
export type { ConfigDocument, ReadOptions } from './json.js';
export {
  CONFIG_FORMAT,
  CONFIG_VERSION,
  fromDocument,
  fromJSON,
  toDocument,
  toJSON,
} from './json.js';
export { escapeValue, formatKeyval, formatSize, parseKeyval } from './keyval.js';
export type {
  AccelConfig,
  BlockNode,
  BootOptions,
  ChardevConfig,
  ConfigParts,
  ConfigSelection,
  DeviceConfig,
  GenericDevice,
  KnownDevice,
  MachineOptions,
  MemoryOptions,
  NetdevConfig,
  ObjectConfig,
  QmpSlot,
  Scalar,
  SmpOptions,
  VmConfig,
} from './model.js';
export { deviceProps, GiB, isGenericDevice, MiB } from './model.js';
export type { OverlayRequest, OverlayResult, OverlayTarget } from './overlay.js';
export { insertOverlay } from './overlay.js';
export type { SerialConsoleOptions } from './parts.js';
export { serialConsole } from './parts.js';
export type { ConfigProblem, ProblemCode, ProblemSubject, SubjectKind } from './problems.js';
export type { EdgeRole } from './refs.js';
export type { ValidateOptions } from './validate.js';
export { assertValid, validate } from './validate.js';
