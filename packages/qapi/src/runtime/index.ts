/**
 * `@qmpkit/qapi/runtime-v1`: what generated bindings import at run time, and the shapes
 * every consumer of generated `Commands`/`Events` maps relies on.
 */

export type { AvailabilityKind, AvailabilityTables, ElementAvailability } from './availability.js';
export { availabilityOf, describeAvailability, featureAvailability } from './availability.js';
export type { CommandMap, CommandSpec, EventMap, EventSpec, VersionBindings } from './maps.js';
export type {
  IsSingleVersion,
  MeetAlternate,
  MeetEnum,
  MeetObject,
  MeetUnion,
  MergedBranch,
  MergedMember,
  ValuesOf,
} from './merge.js';
export type {
  MergedCommand,
  MergedCommandsOf,
  RangeCommands,
  RangeData,
  RangeEvents,
  RangeReturns,
  VersionMapsOf,
} from './ranges.js';
export type {
  AlternateTable,
  CommandTable,
  EnumTable,
  EventTable,
  MemberTable,
  ObjectTable,
  PackedTables,
  SchemaTables,
  TypeRefString,
  TypeTable,
} from './tables.js';
export { BUILTIN_RANGES, QTYPE_VALUES, unpackTables } from './tables.js';
export type { ProblemKind, ValidateOptions, ValidationProblem } from './validate.js';
export {
  alternateBranch,
  formatProblem,
  validateArgs,
  validateEvent,
  validateReturn,
  validateValue,
} from './validate.js';
