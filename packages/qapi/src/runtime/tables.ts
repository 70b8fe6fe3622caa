/**
 * Runtime schema tables, format version 1. Generated code emits one `SchemaTables` value per
 * QEMU version; the validator and capability helpers read it. Type references are strings in
 * QAPI notation: a builtin (`str`, `int`, `uint8`, `size`, `number`, `bool`, `null`, `any`,
 * `QType`), a defined type name, or an array `[T]`.
 */

import type {
  AlternateTable,
  CommandTable,
  EnumTable,
  EventTable,
  MemberTable,
  ObjectTable,
  SchemaTables,
  TypeRefString,
  TypeTable,
} from '@qmpkit/schema/info';

export type {
  AlternateTable,
  CommandTable,
  EnumTable,
  EventTable,
  MemberTable,
  ObjectTable,
  SchemaTables,
  TypeRefString,
  TypeTable,
} from '@qmpkit/schema/info';

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
/** The entries are built mutable (then frozen in type only): no spreads on the load path. */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function unpackType(row: Row): TypeTable {
  const features = row[3];
  switch (row[1]) {
    case 0: {
      const table: Mutable<EnumTable> = { kind: 'enum', values: row[2] as string[] };
      if (row[4] !== undefined) table.valueFeatures = row[4] as Record<string, string[]>;
      if (features) table.features = features as string[];
      return table;
    }
    case 1: {
      const rows = row[2] as Row[];
      const members = new Array<MemberTable>(rows.length);
      for (let i = 0; i < rows.length; i++) {
        const m = rows[i]!;
        const member: Mutable<MemberTable> = { name: m[0] as string, type: m[1] as string };
        if (m[2] === 1) member.optional = true;
        if (m[3]) member.features = m[3] as string[];
        members[i] = member;
      }
      const table: Mutable<ObjectTable> = { kind: 'object', members };
      if (typeof row[4] === 'string') {
        table.tag = row[4];
        table.variants = row[5] as Record<string, TypeRefString>;
      }
      if (features) table.features = features as string[];
      return table;
    }
    case 2: {
      const table: Mutable<AlternateTable> = {
        kind: 'alternate',
        alternatives: row[2] as string[],
      };
      if (features) table.features = features as string[];
      return table;
    }
    default:
      throw new TypeError(`packed tables: unknown kind ${String(row[1])} of ${String(row[0])}`);
  }
}

function unpackCommand(row: Row): CommandTable {
  const flags = typeof row[3] === 'number' ? row[3] : 0;
  const table: Mutable<CommandTable> = {};
  if (row[1]) table.args = row[1] as string;
  if (row[2]) table.returns = row[2] as string;
  if (flags & OOB) table.allowOob = true;
  if (flags & PRECONFIG) table.allowPreconfig = true;
  if (flags & NO_SUCCESS_RESPONSE) table.noSuccessResponse = true;
  if (flags & OPEN_ARGS) table.openArgs = true;
  if (row[4]) table.features = row[4] as string[];
  return table;
}

function unpackEvent(row: Row): EventTable {
  const table: Mutable<EventTable> = {};
  if (row[1]) table.data = row[1] as string;
  if (row[2]) table.features = row[2] as string[];
  return table;
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
    events: byName(events, unpackEvent),
  };
}
