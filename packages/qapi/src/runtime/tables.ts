/**
 * Runtime schema tables, format version 1. Generated code emits one `SchemaTables` value per
 * QEMU version; the validator and capability helpers read it. Type references are strings in
 * QAPI notation: a builtin (`str`, `int`, `uint8`, `size`, `number`, `bool`, `null`, `any`,
 * `QType`), a defined type name, or an array `[T]`.
 */

/** A type reference in QAPI notation, e.g. `'str'`, `'BlockdevOptions'`, `'[BlockInfo]'`. */
export type TypeRefString = string;

export interface MemberTable {
  /** Wire name. */
  readonly name: string;
  readonly type: TypeRefString;
  readonly optional?: true;
  readonly features?: readonly string[];
}

export interface EnumTable {
  readonly kind: 'enum';
  readonly values: readonly string[];
  /** Values carrying features, e.g. `{ 'rdma': ['deprecated'] }`. */
  readonly valueFeatures?: Readonly<Record<string, readonly string[]>>;
  readonly features?: readonly string[];
}

export interface ObjectTable {
  readonly kind: 'object';
  /** All members including the base chain; for unions the base members (with the tag). */
  readonly members: readonly MemberTable[];
  /** Discriminator member name (unions only). */
  readonly tag?: string;
  /** Discriminator value → type holding that branch's own members (unions only). */
  readonly variants?: Readonly<Record<string, TypeRefString>>;
  readonly features?: readonly string[];
}

export interface AlternateTable {
  readonly kind: 'alternate';
  readonly alternatives: readonly TypeRefString[];
  readonly features?: readonly string[];
}

export type TypeTable = EnumTable | ObjectTable | AlternateTable;

export interface CommandTable {
  /** Argument type (an object type); absent when the command takes no arguments. */
  readonly args?: TypeRefString;
  /** Return type; absent when the command returns `{}`. */
  readonly returns?: TypeRefString;
  readonly allowOob?: true;
  readonly allowPreconfig?: true;
  readonly noSuccessResponse?: true;
  /** QEMU does not check the arguments against the schema (`'gen': false`, e.g. `device_add`). */
  readonly openArgs?: true;
  readonly features?: readonly string[];
}

export interface EventTable {
  /** Data type (an object type); absent when the event carries no data. */
  readonly data?: TypeRefString;
  readonly features?: readonly string[];
}

export interface SchemaTables {
  readonly format: 1;
  /** QEMU version the tables describe, e.g. "7.2.22". */
  readonly qemuVersion: string;
  readonly types: Readonly<Record<string, TypeTable>>;
  readonly commands: Readonly<Record<string, CommandTable>>;
  readonly events: Readonly<Record<string, EventTable>>;
}

/** Builtin scalar types and the JSON values they accept. */
export const BUILTIN_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  // 64-bit limits as doubles: JSON.parse cannot represent them exactly, so values beyond
  // 2^53 arrive rounded; the check still catches wrong signs and absurd magnitudes.
  int64: [-(2 ** 63), 2 ** 63],
  int: [-(2 ** 63), 2 ** 63],
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
  uint64: [0, 2 ** 64],
  size: [0, 2 ** 64],
};

export const QTYPE_VALUES = [
  'none',
  'qnull',
  'qnum',
  'qstring',
  'qdict',
  'qlist',
  'qbool',
] as const;

/**
 * The tables as generated code ships them (packed format 1, JSON): entries are arrays
 * whose positions stand for the keys of {@link SchemaTables}; `0` marks an absent reference
 * and trailing absent fields are left out. Written by `packTables` of `@qmpkit/codegen`.
 */
export type PackedTables = readonly [
  format: 1,
  qemuVersion: string,
  types: readonly (readonly unknown[])[],
  commands: readonly (readonly unknown[])[],
  events: readonly (readonly unknown[])[],
];

const OOB = 1;
const PRECONFIG = 2;
const NO_SUCCESS_RESPONSE = 4;
const OPEN_ARGS = 8;

type Row = readonly unknown[];
const strings = (v: unknown): readonly string[] | undefined =>
  Array.isArray(v) ? (v as string[]) : undefined;
const ref = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const withFeatures = <T extends object>(entry: T, v: unknown): T => {
  const features = strings(v);
  return features === undefined ? entry : { ...entry, features };
};

function unpackType(row: Row): TypeTable {
  switch (row[1]) {
    case 0: {
      const valueFeatures = row[4] as Record<string, readonly string[]> | undefined;
      const table: EnumTable = { kind: 'enum', values: row[2] as string[] };
      return withFeatures(valueFeatures ? { ...table, valueFeatures } : table, row[3]);
    }
    case 1: {
      const members = (row[2] as Row[]).map((m) => {
        const member: MemberTable = { name: m[0] as string, type: m[1] as string };
        return withFeatures(m[2] === 1 ? { ...member, optional: true as const } : member, m[3]);
      });
      const tag = ref(row[4]);
      const table: ObjectTable =
        tag === undefined
          ? { kind: 'object', members }
          : {
              kind: 'object',
              members,
              tag,
              variants: row[5] as Record<string, TypeRefString>,
            };
      return withFeatures(table, row[3]);
    }
    case 2:
      return withFeatures({ kind: 'alternate', alternatives: row[2] as string[] }, row[3]);
    default:
      throw new TypeError(`packed tables: unknown kind ${String(row[1])} of ${String(row[0])}`);
  }
}

function unpackCommand(row: Row): CommandTable {
  const flags = typeof row[3] === 'number' ? row[3] : 0;
  const args = ref(row[1]);
  const returns = ref(row[2]);
  return withFeatures(
    {
      ...(args === undefined ? {} : { args }),
      ...(returns === undefined ? {} : { returns }),
      ...(flags & OOB ? { allowOob: true as const } : {}),
      ...(flags & PRECONFIG ? { allowPreconfig: true as const } : {}),
      ...(flags & NO_SUCCESS_RESPONSE ? { noSuccessResponse: true as const } : {}),
      ...(flags & OPEN_ARGS ? { openArgs: true as const } : {}),
    },
    row[4],
  );
}

/** Expands packed tables (generated code calls this once, when its module loads). */
export function unpackTables(packed: PackedTables): SchemaTables {
  const [format, qemuVersion, types, commands, events] = packed;
  if (format !== 1) throw new TypeError(`packed tables: unknown format ${String(format)}`);
  const byName = <T>(rows: readonly Row[], expand: (row: Row) => T): Record<string, T> => {
    const out: Record<string, T> = {};
    for (const row of rows) out[row[0] as string] = expand(row);
    return out;
  };
  return {
    format,
    qemuVersion,
    types: byName(types, unpackType),
    commands: byName(commands, unpackCommand),
    events: byName(events, (row) => {
      const data = ref(row[1]);
      return withFeatures(data === undefined ? {} : { data }, row[2]);
    }),
  };
}
