/**
 * Run-time availability of schema elements across QEMU versions (the merged view's data).
 * Each entry is a bit mask over `versions`: bit i set = present in `versions[i]`.
 */
export interface AvailabilityTables {
  /** Known versions, oldest first (`major.minor`). */
  readonly versions: readonly string[];
  /** Command name → mask. */
  readonly commands: Readonly<Record<string, number>>;
  /** Event name → mask. */
  readonly events: Readonly<Record<string, number>>;
  /** `command.member` or `command.case.member` (union arguments) → mask. */
  readonly arguments: Readonly<Record<string, number>>;
  /** `Type.member` → mask. */
  readonly members: Readonly<Record<string, number>>;
  /** `Enum.value` → mask. */
  readonly values: Readonly<Record<string, number>>;
  /** `Union[case]` → mask. */
  readonly branches: Readonly<Record<string, number>>;
  /** Any of the keys above → mask of the versions where it is deprecated. */
  readonly deprecated: Readonly<Record<string, number>>;
  /**
   * `<key>/$<feature>` → mask of the versions where the element carries the QAPI feature
   * (`blockdev-snapshot/$allow-write-only-overlay`). Keys are those above, plus `Type` for a
   * type's own features, `cmd[case]` for a union branch of a command's arguments and
   * `cmd.member=value` for a value of an enum-typed argument.
   * Optional: tables generated before features were recorded lack it.
   */
  readonly features?: Readonly<Record<string, number>>;
}

export type AvailabilityKind =
  | 'commands'
  | 'events'
  | 'arguments'
  | 'members'
  | 'values'
  | 'branches';

export interface ElementAvailability {
  /** Versions that have the element, oldest first. */
  readonly versions: readonly string[];
  /** First version that has it. */
  readonly since: string;
  /** Last version that has it, when the newest known version does not. */
  readonly until?: string;
  /** Versions where it is deprecated. */
  readonly deprecated: readonly string[];
}

function fromMask(tables: AvailabilityTables, mask: number): string[] {
  return tables.versions.filter((_, i) => (mask & (1 << i)) !== 0);
}

/** Where an element exists; `undefined` when no known version has it. */
export function availabilityOf(
  tables: AvailabilityTables,
  kind: AvailabilityKind,
  key: string,
): ElementAvailability | undefined {
  const mask = tables[kind][key];
  if (mask === undefined) return undefined;
  const versions = fromMask(tables, mask);
  const newest = tables.versions.at(-1);
  const last = versions.at(-1)!;
  return {
    versions,
    since: versions[0]!,
    ...(last !== newest ? { until: last } : {}),
    deprecated: fromMask(tables, tables.deprecated[key] ?? 0),
  };
}

/**
 * The versions where an element carries a QAPI feature (`key` as in the tables, e.g.
 * `blockdev-snapshot` or `block-commit.base`); `undefined` when no known version has it.
 */
export function featureAvailability(
  tables: AvailabilityTables,
  key: string,
  feature: string,
): readonly string[] | undefined {
  const mask = tables.features?.[`${key}/$${feature}`];
  return mask === undefined ? undefined : fromMask(tables, mask);
}

/** "7.0+; deprecated in 8.0", "4.2–6.2", "5.0, 6.2+" for an element. */
export function describeAvailability(
  tables: AvailabilityTables,
  kind: AvailabilityKind,
  key: string,
): string | undefined {
  const found = availabilityOf(tables, kind, key);
  if (!found) return undefined;
  const runs: string[][] = [];
  let run: string[] = [];
  for (const v of tables.versions) {
    if (found.versions.includes(v)) run.push(v);
    else if (run.length > 0) {
      runs.push(run);
      run = [];
    }
  }
  if (run.length > 0) runs.push(run);
  const newest = tables.versions.at(-1);
  const text = runs
    .map((r) => (r.at(-1) === newest ? `${r[0]}+` : r.length === 1 ? r[0]! : `${r[0]}–${r.at(-1)}`))
    .join(', ');
  return found.deprecated.length > 0 ? `${text}; deprecated in ${found.deprecated[0]}` : text;
}
