/**
 * The runtime schema tables, format version 1, as types: what `buildTables` produces and
 * `@qmpkit/qapi/runtime-v1` reads (it re-exports these). Type references are strings in QAPI
 * notation: a builtin (`str`, `int`, `uint8`, `size`, `number`, `bool`, `null`, `any`,
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
