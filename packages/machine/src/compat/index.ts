/** Compatibility of a VM across QEMU binaries: machine-type diff (see each module). */

export type { CompatProbeProblem } from './errors.js';
export { CompatProbeError, isCompatProbeError } from './errors.js';
export type { QemuFingerprint } from './fingerprint.js';
export { firmwareDirs, qemuFingerprint } from './fingerprint.js';
export type {
  CompatProp,
  CompatPropCheck,
  InspectMachineTypeOptions,
  MachineObject,
  MachinePropertyNote,
  MachineTypeDiff,
  MachineTypeDifference,
  MachineTypeDifferenceKind,
  MachineTypeMethod,
  MachineTypeReport,
} from './machine-type-diff.js';
export {
  agrees,
  compatValueMatches,
  diffMachineReports,
  diffMachineType,
  inspectMachineType,
  walkMachine,
} from './machine-type-diff.js';
export type {
  CompatibilityProbe,
  CompatibilityResult,
  CompatibilityVerdict,
  ProbeCompatibilityOptions,
} from './probe.js';
export { condenseReason, deviceSet, probeCompatibility, scratchConfig } from './probe.js';
export type {
  TortureCounter,
  TortureCycle,
  TortureDivergence,
  TortureOptions,
  TortureResult,
} from './torture.js';
export { tortureVm } from './torture.js';
