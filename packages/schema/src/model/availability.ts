/**
 * Availability across versions: for each command, event and type of several schemas (oldest
 * first), the versions that have it and the versions where it is deprecated, plus the rules
 * for describing ("QEMU 7.0+; deprecated in 8.0") and bit-masking such version sets. Knows no
 * TypeScript; the merged emitter renders it.
 */
import type { CommandDef, EventDef, Feature, Schema, TypeDef } from './ir.js';
import { isDeprecated } from './schema.js';

export type VersionSet = ReadonlySet<string>;

/** Per-version facts about one named thing. */
export interface Tracked<T> {
  readonly in: Set<string>;
  readonly deprecated: Set<string>;
  readonly byVersion: Map<string, T>;
}

export interface VersionedSchema {
  /** `major.minor`, e.g. "7.2". */
  readonly version: string;
  readonly schema: Schema;
}

export interface SchemaAvailability {
  readonly types: Map<string, Tracked<TypeDef>>;
  readonly commands: Map<string, Tracked<CommandDef>>;
  readonly events: Map<string, Tracked<EventDef>>;
}

function entry<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  const existing = map.get(key);
  if (existing !== undefined) return existing;
  const created = make();
  map.set(key, created);
  return created;
}

function track<T>(
  map: Map<string, Tracked<T>>,
  key: string,
  version: string,
  value: T,
  deprecated: boolean,
): void {
  const tracked = entry(map, key, () => ({
    in: new Set<string>(),
    deprecated: new Set<string>(),
    byVersion: new Map<string, T>(),
  }));
  tracked.in.add(version);
  tracked.byVersion.set(version, value);
  if (deprecated) tracked.deprecated.add(version);
}

/** Which versions have (and deprecate) each type, command and event, in first-seen order. */
export function trackAvailability(versions: readonly VersionedSchema[]): SchemaAvailability {
  const out: SchemaAvailability = { types: new Map(), commands: new Map(), events: new Map() };
  for (const { version, schema } of versions) {
    for (const def of schema.types.values())
      track(out.types, def.name, version, def, isDeprecated(def.features));
    for (const def of schema.commands.values())
      track(out.commands, def.name, version, def, isDeprecated(def.features));
    for (const def of schema.events.values())
      track(out.events, def.name, version, def, isDeprecated(def.features));
  }
  return out;
}

/** subject key → feature → the versions where the subject carries it. */
export type FeatureSets = Map<string, Map<string, Set<string>>>;

/** Records that `key` carries `features` in `version`. */
export function noteFeatures(
  map: FeatureSets,
  key: string,
  version: string,
  features: readonly Feature[],
): void {
  for (const feature of features) {
    const byFeature = entry(map, key, () => new Map<string, Set<string>>());
    entry(byFeature, feature.name, () => new Set<string>()).add(version);
  }
}

/** The known versions, oldest first: describes and masks sets of them. */
export class VersionOrder {
  constructor(readonly order: readonly string[]) {}

  /** The versions of `set`, oldest first. */
  present(set: VersionSet): string[] {
    return this.order.filter((v) => set.has(v));
  }

  /** "QEMU 7.0+", "QEMU 4.2–7.1", "QEMU 5.0, 6.2" for a set. */
  describe(set: VersionSet, deprecated?: VersionSet): string {
    const present = this.order.filter((v) => set.has(v));
    if (present.length === 0) return 'no version';
    const runs: string[][] = [];
    let run: string[] = [];
    for (const v of this.order) {
      if (set.has(v)) run.push(v);
      else if (run.length > 0) {
        runs.push(run);
        run = [];
      }
    }
    if (run.length > 0) runs.push(run);
    const newest = this.order.at(-1);
    const text = runs
      .map((r) =>
        r.length === 1
          ? r[0] === newest && r[0] !== this.order[0]
            ? `${r[0]}+`
            : r[0]!
          : r.at(-1) === newest
            ? `${r[0]}+`
            : `${r[0]}–${r.at(-1)}`,
      )
      .join(', ');
    const all = present.length === this.order.length;
    const dep =
      deprecated && deprecated.size > 0
        ? `; deprecated in ${this.order.find((v) => deprecated.has(v))}`
        : '';
    return `${all ? `all versions (${this.order[0]}+)` : `QEMU ${text}`}${dep}`;
  }

  /** Bit i set when `order[i]` is in the set. */
  mask(set: VersionSet): number {
    let mask = 0;
    this.order.forEach((v, i) => {
      if (set.has(v)) mask |= 1 << i;
    });
    return mask;
  }
}
