/**
 * Type-level maps of a *range* of QEMU versions, written once here instead of being emitted
 * for every schema. The merged view's generated `qmp-merged` file only instantiates them with
 * its own `VersionMaps` (each version's exact `Commands`/`Events`), `MergedCommands<V>` and
 * `EventVersions`:
 *
 * ```ts
 * export type CommandsFor<V extends QemuVersion> = RangeCommands<VersionMaps, V, MergedCommands<V>>;
 * ```
 */
import type { IsSingleVersion } from './merge.js';

/** The shape of a generated `VersionMaps`: each version's exact `Commands` and `Events`. */
export type VersionMapsOf<Maps> = {
  readonly [V in keyof Maps]: { readonly commands: unknown; readonly events: unknown };
};

/** One entry of a generated `MergedCommands<V>`. */
export interface MergedCommand {
  /** Versions that have the command. */
  readonly in: string;
  /** Its arguments as every version of `V` accepts them. */
  readonly args: unknown;
  /** Versions that allow it out of band. */
  readonly oob: string;
}

/** The constraint of a generated `MergedCommands<V>` (an interface, so no index signature). */
export type MergedCommandsOf<M> = { readonly [K in keyof M]: MergedCommand };

/**
 * Property `Prop` of entry `K` of map `What` (`commands` or `events`), in any version of `V`:
 * the union over the versions of `V` (distributes over `V`); `never` where `K` is missing.
 */
type InAnyVersion<
  Maps extends VersionMapsOf<Maps>,
  V extends keyof Maps,
  What extends 'commands' | 'events',
  K extends string,
  Prop extends string,
> = V extends keyof Maps
  ? K extends keyof Maps[V][What]
    ? Maps[V][What][K] extends { readonly [P in Prop]: infer R }
      ? R
      : never
    : never
  : never;

/** What command `K` returns in any version of `V` (the union over the versions). */
export type RangeReturns<
  Maps extends VersionMapsOf<Maps>,
  V extends keyof Maps,
  K extends string,
> = InAnyVersion<Maps, V, 'commands', K, 'returns'>;

/** The data of event `K` in any version of `V` (the union over the versions). */
export type RangeData<
  Maps extends VersionMapsOf<Maps>,
  V extends keyof Maps,
  K extends string,
> = InAnyVersion<Maps, V, 'events', K, 'data'>;

/**
 * The `Commands` map for a set of QEMU versions `V`: the exact bindings for one version; for a
 * range, the commands every version has (`Merged` is `MergedCommands<V>`), with arguments all
 * of them accept, the union of returns, and `oob` only where every version allows it.
 */
export type RangeCommands<
  Maps extends VersionMapsOf<Maps>,
  V extends keyof Maps,
  Merged extends MergedCommandsOf<Merged>,
> = [IsSingleVersion<V>] extends [true]
  ? Maps[V]['commands']
  : {
      [K in keyof Merged as [V] extends [Merged[K]['in']] ? K : never]: {
        args: Merged[K]['args'];
        returns: RangeReturns<Maps, V, K & string>;
      } & ([V] extends [Merged[K]['oob']] ? { oob: true } : unknown);
    };

/**
 * The `Events` map for a set of QEMU versions `V`: the exact bindings for one version; for a
 * range, the events any of them may send (`Versions` is the generated `EventVersions`), with
 * the union of their data.
 */
export type RangeEvents<
  Maps extends VersionMapsOf<Maps>,
  V extends keyof Maps,
  Versions extends { readonly [K in keyof Versions]: string },
> = [IsSingleVersion<V>] extends [true]
  ? Maps[V]['events']
  : {
      [K in keyof Versions as [Extract<V, Versions[K]>] extends [never] ? never : K]: {
        data: RangeData<Maps, V, K & string>;
      };
    };
