/**
 * The x86 machine types of the QEMU versions the fake imitates (what `-machine help` lists,
 * Debian's builds): versioned i440FX and Q35 types, their `pc`/`q35` aliases (the newest) and
 * the unversioned machines. Process mode prints this list, and resolves `-machine pc` to the
 * versioned type a migration stream carries.
 */

/** Release versions from `from` up to and including `to` ('major.minor'), QEMU's cadence. */
function releases(from: string, to: string, extra: readonly string[] = []): string[] {
  // Minor releases per major series (1.x from 1.4; 2.x had 13, 3.x two, then three a year).
  const series: Record<number, number[]> = {
    1: [4, 5, 6, 7],
    2: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    3: [0, 1],
    4: [0, 1, 2],
    5: [0, 1, 2],
    6: [0, 1, 2],
    7: [0, 1, 2],
    8: [0, 1, 2],
    9: [0, 1, 2],
    10: [0],
  };
  const key = (v: string) => {
    const [a = 0, b = 0, c = 0] = v.split('.').map(Number);
    return a * 10000 + b * 100 + c;
  };
  const all = Object.entries(series).flatMap(([major, minors]) =>
    minors.map((minor) => `${major}.${minor}`),
  );
  // Within a family QEMU lists names in reverse strcmp order (2.9 … 2.2, 2.12, 2.11, 2.10).
  return [...all, ...extra]
    .filter((v) => key(v) >= key(from) && key(v) <= key(to))
    .sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
}

export interface FakeMachineType {
  readonly name: string;
  readonly description: string;
  /** `pc` → `pc-i440fx-7.2`. */
  readonly alias?: string;
  readonly isDefault?: boolean;
}

/** The machine types of QEMU `version` ('7.2' or '10.0'), in `-machine help` order. */
export function machineTypesOf(version: string): FakeMachineType[] {
  const i440fx = 'Standard PC (i440FX + PIIX, 1996)';
  const q35 = 'Standard PC (Q35 + ICH9, 2009)';
  const oldest = version === '7.2' ? '1.4' : '2.4';
  // Deprecated types: 7.2 the 1.x ones, 10.0 everything up to 7.0 (its six-year window).
  const deprecated = new Set(version === '7.2' ? releases('1.0', '1.7') : releases('2.0', '7.0'));
  const newestPc = `pc-i440fx-${version}`;
  const newestQ35 = `pc-q35-${version}`;
  // An alias is listed just before the type it names.
  const family = (prefix: string, versions: string[], description: string, newest: string) =>
    versions.flatMap((v): FakeMachineType[] => {
      const name = `${prefix}-${v}`;
      const entry: FakeMachineType = {
        name,
        description:
          name === newestPc
            ? `${description} (default)`
            : deprecated.has(v) || (v === '4.0.1' && deprecated.has('4.0'))
              ? `${description} (deprecated)`
              : description,
        ...(name === newestPc ? { isDefault: true } : {}),
      };
      if (name !== newest) return [entry];
      const alias = prefix === 'pc-i440fx' ? 'pc' : 'q35';
      return [
        { name: alias, description: `${description} (alias of ${name})`, alias: name },
        entry,
      ];
    });
  return [
    { name: 'microvm', description: 'microvm (i386)' },
    ...family('pc-i440fx', releases(oldest, version), i440fx, newestPc),
    ...family('pc-q35', releases('2.4', version, ['4.0.1']), q35, newestQ35),
    { name: 'isapc', description: 'ISA-only PC' },
    { name: 'none', description: 'empty machine' },
    { name: 'x-remote', description: 'Experimental remote machine' },
  ];
}

/** `-machine help` as QEMU prints it. */
export function machineHelp(version: string): string {
  const lines = machineTypesOf(version).map((m) => `${m.name.padEnd(20)} ${m.description}`);
  return `Supported machines are:\n${lines.join('\n')}\n`;
}

/** The versioned type `type` stands for (`pc` → `pc-i440fx-7.2`), or `type` itself. */
export function resolveMachineType(version: string, type: string): string {
  return machineTypesOf(version).find((m) => m.name === type)?.alias ?? type;
}
