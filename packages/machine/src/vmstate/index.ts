/** `-dump-vmstate` reader, comparator and runner (see each module). */
export type {
  VmstateDiff,
  VmstateDiffOptions,
  VmstateProblem,
  VmstateProblemKind,
} from './compare.js';
export { diffVmstate } from './compare.js';
export type { DumpVmstateOptions, VmstateDumpResult } from './dump.js';
export { dumpVmstate, parseMachineHelp } from './dump.js';
export type { VmstateDumpProblem, VmstateRunProblem } from './errors.js';
export {
  isVmstateArchitectureError,
  isVmstateDumpError,
  isVmstateRunError,
  VmstateArchitectureError,
  VmstateDumpError,
  VmstateRunError,
} from './errors.js';
export type {
  VmstateArchitecture,
  VmstateDescription,
  VmstateDump,
  VmstateField,
  VmstateSection,
} from './model.js';
export { dumpArchitecture, parseVmstateDump, readVmstateDump } from './model.js';
export { FIELD_RENAMES, SECTION_RENAMES } from './renames.js';
