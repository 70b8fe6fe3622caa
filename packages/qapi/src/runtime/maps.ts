import type { SchemaTables } from './tables.js';

/** One entry of a generated `Commands` map, keyed by the command's wire name. */
export interface CommandSpec {
  /** Argument object type; `undefined` when the command takes no arguments. */
  readonly args: unknown;
  /** What `return` holds; `Record<string, never>` for commands that return `{}`. */
  readonly returns: unknown;
  /** Present when the command may be sent with `exec-oob`. */
  readonly oob?: true;
}

/** One entry of a generated `Events` map, keyed by the event's wire name. */
export interface EventSpec {
  /** The event's `data`; `undefined` for events without data. */
  readonly data: unknown;
}

/** Constraint for a generated `Commands` map (works with interfaces, which have no index signature). */
export type CommandMap<C> = { readonly [K in keyof C]: CommandSpec };
/** Constraint for a generated `Events` map. */
export type EventMap<E> = { readonly [K in keyof E]: EventSpec };

/** Everything one QEMU version's generated index exports at run time, as a value. */
export interface VersionBindings {
  readonly qemuVersion: string;
  readonly tables: SchemaTables;
}
