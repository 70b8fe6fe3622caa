/**
 * `@qmpkit/codegen/schema`: everything of `@qmpkit/codegen` except the TypeScript emitter —
 * schema readers (QAPI source, introspection, libvirt `.replies`), the IR, `diffSchemas` and
 * `buildTables`. It does not load the TypeScript compiler, so tools that only read or compare
 * schemas (the `qmpkit` CLI) start fast. A unit test keeps it in step with the main entry.
 */

export type { TablesData } from './emit/tables.js';
export { buildTables } from './emit/tables.js';
export { CodegenError, isCodegenError, isSchemaError, SchemaError } from './errors.js';
export type { Capture, CaptureResult } from './introspection/capture.js';
export {
  type CaptureLaunch,
  captureFromBinary,
  captureSchema,
  formatSchemaList,
} from './introspection/capture.js';
export type { IntrospectionInput, NameMap } from './introspection/read.js';
export { readIntrospection } from './introspection/read.js';
export type { RecoveredNames } from './introspection/recover.js';
export { recoverNames } from './introspection/recover.js';
export type { ChangeKind, ChangeTarget, DiffOptions, SchemaChange } from './model/diff.js';
export { diffSchemas, formatChange } from './model/diff.js';
export { withSourceDocs } from './model/enrich.js';
export type * from './model/ir.js';
export { implicitNames, pascalCase } from './model/naming.js';
export { assertSameVersion, conditionOf } from './model/same-version.js';
export { allMembers, baseName, isBuiltin, typeRefToString } from './model/schema.js';
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
export { GENERATOR_VERSION } from './version.js';
