/** Compatibility of a VM across QEMU binaries: machine-type diff (see each module). */
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
} from './machine-type-diff.js';
