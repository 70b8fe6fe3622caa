/**
 * `@qmpkit/schema`: the QAPI schema model, with no dependencies — schema readers (QAPI
 * source, `query-qmp-schema` introspection, libvirt `.replies` recordings), the checks, the
 * IR, availability across versions, `diffSchemas` and `buildTables`. It knows nothing of
 * TypeScript: `@qmpkit/codegen` emits bindings from it; transport, fake-qmp and the CLI read
 * schemas with it without installing the TypeScript compiler.
 */

export type { SchemaCaptureStage } from './errors.js';
export {
  CodegenError,
  isCodegenError,
  isSchemaCaptureError,
  isSchemaError,
  SchemaCaptureError,
  SchemaError,
} from './errors.js';
export * from './info.js';
export type {
  Capture,
  CaptureKind,
  CaptureLaunch,
  CaptureResult,
} from './introspection/capture.js';
export {
  captureArgs,
  captureFromBinary,
  captureSchema,
  captureStorageDaemonSchema,
  formatSchemaList,
} from './introspection/capture.js';
export type { IntrospectionInput, NameMap } from './introspection/read.js';
export { readIntrospection } from './introspection/read.js';
export type { RecoveredNames } from './introspection/recover.js';
export { recoverNames } from './introspection/recover.js';
export type {
  FeatureSets,
  SchemaAvailability,
  Tracked,
  VersionedSchema,
  VersionSet,
} from './model/availability.js';
export { noteFeatures, trackAvailability, VersionOrder } from './model/availability.js';
export type { ChangeKind, ChangeTarget, DiffOptions, SchemaChange } from './model/diff.js';
export { diffSchemas, formatChange } from './model/diff.js';
export { withSourceDocs } from './model/enrich.js';
export type * from './model/ir.js';
export { implicitNames, pascalCase } from './model/naming.js';
export { assertSameVersion, conditionOf } from './model/same-version.js';
export {
  allMembers,
  arrayOf,
  baseName,
  INTEGER_BUILTINS,
  isBuiltin,
  isDeprecated,
  named,
} from './model/schema.js';
export type { RecordedExchange, RecordedSchema } from './recordings/replies.js';
export { parseReplies, schemaFromReplies } from './recordings/replies.js';
export type {
  ParsedSchema,
  QapiDoc,
  QapiDocSection,
  QapiExpression,
  QapiSourceFile,
  QapiValue,
  ReadOptions,
} from './source/index.js';
export { checkQapiSchema, loadQapiSource, parseQapiFile } from './source/index.js';
export type { PackedTables, TablesData } from './tables.js';
export { buildTables, PACKED_COMMAND_FLAGS, packedTablesJson, packTables } from './tables.js';
