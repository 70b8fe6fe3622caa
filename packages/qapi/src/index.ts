/**
 * `@qmpkit/qapi`: typed QMP bindings generated from QEMU's QAPI schema.
 *
 * The root export is the newest QEMU version this release carries; import a specific version
 * with `@qmpkit/qapi/qemu-7.2`, and the runtime (validator, table types, map constraints) with
 * `@qmpkit/qapi/runtime-v1`.
 */
export * from './gen/qemu-8.0/index.generated.js';
