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
