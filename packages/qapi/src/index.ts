/**
 * `@qmpkit/qapi`: the runtime every version's bindings share (the same surface as
 * `@qmpkit/qapi/runtime-v1`). The bindings themselves are per QEMU version:
 * `@qmpkit/qapi/qemu-7.2` (`Commands`, `Events`, types, `tables`).
 */
export * from './runtime/index.js';
