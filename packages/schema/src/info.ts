/**
 * `@qmpkit/schema/info`: the `query-qmp-schema` reader and the `[T]` type-reference walker
 * alone — what a QMP client needs at run time, without the QAPI source parser or the IR.
 */

export type {
  Featureful,
  SchemaInfo,
  SchemaInfoEnumMember,
  SchemaInfoMember,
} from './introspection/info.js';
export { readSchemaInfo } from './introspection/info.js';
export { arrayElement, parseTypeRef, typeRefToString } from './model/schema.js';
export type {
  AlternateTable,
  CommandTable,
  EnumTable,
  EventTable,
  MemberTable,
  ObjectTable,
  SchemaTables,
  TypeRefString,
  TypeTable,
} from './tables-format.js';
