/**
 * `@qmpkit/codegen`: read QAPI schemas (source or `query-qmp-schema` introspection) into one
 * IR, check them, and emit TypeScript bindings. `@qmpkit/codegen/schema` is the same without
 * the emitters (it does not load the TypeScript compiler).
 */

export type { MergedEmitOptions, VersionInput } from './emit/merged.js';
export { emitMerged } from './emit/merged.js';
export type { EmitOptions } from './emit/typescript.js';
export { emitTypeScript, FILE_SUFFIX } from './emit/typescript.js';
export * from './schema.js';
