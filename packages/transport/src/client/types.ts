/**
 * Type-level plumbing of the typed client. Everything is generic over a `Commands` map
 * (`{ [wire name]: { args, returns, oob? } }`) and an `Events` map (`{ [name]: { data } }`)
 * as generated per QEMU version by `@qmpkit/qapi`. Nothing here hard-wires a version: a
 * later version-range layer can compute `C`/`E` (e.g. an intersection over versions) and
 * pass them in.
 */
import type { CommandMap, EventMap, SchemaTables } from '@qmpkit/qapi/runtime-v1';
import type { QmpTimestamp } from '../codec/messages.js';

export type { CommandMap, EventMap };

/** Command wire names of a map. */
export type CommandName<C> = keyof C & string;
/** Event names of a map. */
export type EventName<E> = keyof E & string;

/** The `arguments` type of command `K` (`undefined` when it takes none). */
export type ArgsOf<C, K extends keyof C> = C[K] extends { readonly args: infer A } ? A : never;
/** What command `K` returns. */
export type ReturnOf<C, K extends keyof C> = C[K] extends { readonly returns: infer R } ? R : never;
/** The `data` of event `K` (`undefined` when it carries none). */
export type DataOf<E, K extends keyof E> = E[K] extends { readonly data: infer D } ? D : never;

/** Commands that may be sent with `exec-oob`. */
export type OobCommandName<C> = {
  [K in keyof C]-?: C[K] extends { readonly oob: true } ? K : never;
}[keyof C] &
  string;

/** Commands that start a job: their arguments have a `job-id`. */
export type JobCommandName<C> = {
  [K in keyof C]-?: 'job-id' extends KeysOfUnion<Exclude<ArgsOf<C, K>, undefined>> ? K : never;
}[keyof C] &
  string;

export type KeysOfUnion<T> = T extends unknown ? keyof T & string : never;

export interface ExecuteOptions {
  /** Milliseconds until `QmpTimeoutError`; a late reply is then consumed and dropped. */
  readonly timeout?: number;
  /** Abort waiting (QMP cannot cancel the command itself; its late reply is dropped). */
  readonly signal?: AbortSignal;
}

/**
 * The parameters after the command name: none or `undefined` for commands without
 * arguments; optional args when every member is optional; required args otherwise.
 */
export type ExecuteRest<A> = [A] extends [undefined]
  ? [args?: undefined, options?: ExecuteOptions]
  : Record<never, never> extends A
    ? [args?: A, options?: ExecuteOptions]
    : [args: A, options?: ExecuteOptions];

/** A received event, narrowed by name: `if (e.event === 'STOP') …`. */
export type QmpEvent<E, K extends keyof E = keyof E> = K extends keyof E & string
  ? {
      readonly event: K;
      readonly data: DataOf<E, K>;
      /** When QEMU emitted it (QEMU's clock; -1/-1 when QEMU could not read it). */
      readonly timestamp: QmpTimestamp;
    }
  : never;

/**
 * A QEMU version's bindings for `connect`: its maps (type level only) and, optionally, its
 * runtime `tables` (for `validate`). Build one with `defineBindings`.
 */
export interface QmpBindings<C, E> {
  readonly tables?: SchemaTables;
  /** Phantom member carrying the maps' types; never set at run time. */
  readonly __maps?: { readonly commands: C; readonly events: E };
}

/**
 * Names one QEMU version's maps for `connect`:
 * `defineBindings<Commands, Events>(tables)` with the imports of `@qmpkit/qapi/qemu-<ver>`.
 */
export function defineBindings<C extends CommandMap<C>, E extends EventMap<E>>(
  tables?: SchemaTables,
): QmpBindings<C, E> {
  return tables === undefined ? {} : { tables };
}

/** Names `QmpClient.has` accepts: the commands and events of the client's maps. */
export type HasName<C, E> = CommandName<C> | EventName<E>;

/** What a `has` query about `K` is checked against: its arguments, or else its event data. */
export type HasSubject<C, E, K> =
  K extends CommandName<C> ? ArgsOf<C, K> : K extends EventName<E> ? DataOf<E, K> : never;
