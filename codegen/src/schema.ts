/**
 * `@qmpkit/codegen/schema`: the schema model without the emitters. It is `@qmpkit/schema`
 * (re-exported for code written against this subpath) plus the generator version; new code
 * imports `@qmpkit/schema` directly, which does not install the TypeScript compiler.
 */

export * from '@qmpkit/schema';
export { GENERATOR_VERSION } from './version.js';
