/**
 * `@qmpkit/qapi`: typed QMP bindings generated from QEMU's QAPI schema.
 *
 * The root export is the bindings of the default QEMU version, the one every other qmpkit
 * package types itself for unless given another version's bindings. Import a
 * specific version with `@qmpkit/qapi/qemu-7.2`, and the runtime (validator, table types, map
 * constraints) with `@qmpkit/qapi/runtime-v1`.
 */
export * from './gen/qemu-7.2/index.generated.js';

/**
 * The default QEMU version (`major.minor`) of the root export: the one place that names it
 * (`pnpm gen` points the export above at it and checks it is a capture of a real binary).
 * 7.2, not the newer 10.0 capture: see docs/decisions.md ("default QEMU version stays 7.2").
 */
export const DEFAULT_QEMU_VERSION = '7.2';
/** {@link DEFAULT_QEMU_VERSION} as a type: `connect()` is typed for it. */
export type DefaultQemuVersion = typeof DEFAULT_QEMU_VERSION;
