/**
 * The intermediate representation (IR) shared by both schema readers (QAPI source and
 * `query-qmp-schema` introspection) and consumed by the emitters.
 *
 * Design rules:
 * - No TypeScript knowledge here: names are QAPI names, types are QAPI type references.
 * - Every definition records where it came from (`module`, `loc`) when the input knows it.
 * - Implicit (anonymous) types get stable readable names (owner + role, see `naming.ts`)
 *   and keep `implicit` so emitters and comparisons can tell them apart.
 * - Struct members are the struct's *own* members; `base` links to the base struct.
 *   Use `allMembers()` in `schema.ts` for the flattened view introspection gives.
 */

/** A position in a QAPI source file: 1-based line and column. */
export interface SourceLocation {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

/** A QAPI `if` condition. A plain string is a `config` leaf. */
export type Condition =
  | { readonly kind: 'config'; readonly name: string }
  | { readonly kind: 'all'; readonly of: readonly Condition[] }
  | { readonly kind: 'any'; readonly of: readonly Condition[] }
  | { readonly kind: 'not'; readonly of: Condition };

export interface Feature {
  readonly name: string;
  readonly if?: Condition;
  /** Feature documentation from the doc comment, when the input has docs. */
  readonly doc?: string;
}

/** Reference to a type: a named type (builtin or defined) or an array of a type. */
export type TypeRef =
  | { readonly kind: 'named'; readonly name: string }
  | { readonly kind: 'array'; readonly element: TypeRef };

/** Builtin QAPI types. `QType` is the builtin enum of JSON types. */
export const BUILTIN_TYPES = [
  'str',
  'number',
  'int',
  'int8',
  'int16',
  'int32',
  'int64',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
  'size',
  'bool',
  'null',
  'any',
  'QType',
] as const;
export type BuiltinTypeName = (typeof BUILTIN_TYPES)[number];

/** A tagged doc section such as `Returns:`, `Since:`, `Errors:`, `Example:`, `Notes:`. */
export interface DocSection {
  readonly tag: string;
  readonly text: string;
}

/** Documentation of one definition, parsed from a `##` … `##` doc comment block. */
export interface DefinitionDoc {
  /** Free text describing the definition (paragraphs before/after the member list). */
  readonly text: string;
  /** Tagged sections in source order (excluding member and feature docs). */
  readonly sections: readonly DocSection[];
  /** The `Since:` value, if present (e.g. "7.2"). */
  readonly since?: string;
}

interface DefinitionCommon {
  readonly name: string;
  /** QAPI module (file name without `.json`, e.g. `block-core`), when known. */
  readonly module?: string;
  readonly loc?: SourceLocation;
  readonly if?: Condition;
  readonly features: readonly Feature[];
  readonly doc?: DefinitionDoc;
}

/** A type synthesized from an inline definition, with what it belongs to. */
export interface ImplicitOrigin {
  /** Name of the definition this type was written inside (command, event, union, type). */
  readonly owner: string;
  readonly role:
    | 'arguments'
    | 'returns'
    | 'event-data'
    | 'base'
    | 'branch'
    | 'member'
    | 'element'
    | 'wrapper'
    | 'kind-enum';
  /** Branch case, member name or alternative, where the role needs one. */
  readonly detail?: string;
}

interface TypeCommon extends DefinitionCommon {
  /** Set when the type had no name in the input (inline definition or masked introspection name). */
  readonly implicit?: ImplicitOrigin;
}

export interface EnumValue {
  readonly name: string;
  readonly if?: Condition;
  readonly features: readonly Feature[];
  readonly doc?: string;
}

export interface EnumDef extends TypeCommon {
  readonly kind: 'enum';
  readonly values: readonly EnumValue[];
  /** The `prefix` key (affects only C names; kept for completeness). */
  readonly prefix?: string;
}

export interface Member {
  readonly name: string;
  readonly type: TypeRef;
  readonly optional: boolean;
  readonly if?: Condition;
  readonly features: readonly Feature[];
  readonly doc?: string;
  readonly loc?: SourceLocation;
  /** Default value as documented by introspection (`default` in SchemaInfoObjectMember). */
  readonly default?: unknown;
}

export interface StructDef extends TypeCommon {
  readonly kind: 'struct';
  /** Name of the base struct (named or implicit), if any. */
  readonly base?: string;
  /** Own members, not including the base's. */
  readonly members: readonly Member[];
}

export interface UnionBranch {
  /** The discriminator value (an enum value of the discriminator's type). */
  readonly case: string;
  /** Name of the struct type holding the branch's members. */
  readonly type: string;
  readonly if?: Condition;
  readonly loc?: SourceLocation;
}

/**
 * A flat (discriminated) union. Legacy simple unions are normalized into this form with an
 * implicit `<Name>Kind` enum, an implicit base `{ type: <Name>Kind }` and wrapper structs
 * `{ data: T }`, exactly as QEMU's generator does (`legacySimple` records it).
 */
export interface UnionDef extends TypeCommon {
  readonly kind: 'union';
  /** Name of the base struct (named or implicit). Holds the discriminator member. */
  readonly base: string;
  readonly discriminator: string;
  readonly branches: readonly UnionBranch[];
  readonly legacySimple?: boolean;
}

export interface Alternative {
  readonly name: string;
  readonly type: TypeRef;
  readonly if?: Condition;
  readonly doc?: string;
}

export interface AlternateDef extends TypeCommon {
  readonly kind: 'alternate';
  readonly alternatives: readonly Alternative[];
}

export type TypeDef = EnumDef | StructDef | UnionDef | AlternateDef;

export interface CommandDef extends DefinitionCommon {
  readonly kind: 'command';
  /** Name of the argument type (struct or, when boxed, union/struct); absent = no arguments. */
  readonly args?: string;
  readonly boxed: boolean;
  readonly returns?: TypeRef;
  readonly successResponse: boolean;
  readonly gen: boolean;
  readonly allowOob: boolean;
  readonly allowPreconfig: boolean;
  readonly coroutine: boolean;
}

export interface EventDef extends DefinitionCommon {
  readonly kind: 'event';
  /** Name of the data type; absent = the event carries no data. */
  readonly data?: string;
  readonly boxed: boolean;
}

export type Definition = TypeDef | CommandDef | EventDef;

/** Pragmas from the source (`doc-required`, `command-name-exceptions`, …). */
export interface Pragmas {
  readonly docRequired: boolean;
  readonly commandNameExceptions: readonly string[];
  readonly commandReturnsExceptions: readonly string[];
  readonly memberNameExceptions: readonly string[];
  readonly documentationExceptions: readonly string[];
}

export interface SchemaOrigin {
  readonly kind: 'qapi-source' | 'introspection';
  /** Main input file as given (relative paths are kept relative). */
  readonly file: string;
  /** sha256 of the main input (introspection) or of all included files in order (source). */
  readonly sha256?: string;
  /** QEMU version the input belongs to, when known (e.g. "7.2.22"). */
  readonly qemuVersion?: string;
}

/**
 * A checked schema. Maps are keyed by QAPI name; iteration order is the input's definition
 * order (emitters sort where they need determinism independent of input order).
 */
export interface Schema {
  readonly origin: SchemaOrigin;
  readonly types: ReadonlyMap<string, TypeDef>;
  readonly commands: ReadonlyMap<string, CommandDef>;
  readonly events: ReadonlyMap<string, EventDef>;
  /** Module names in include order (source), empty for introspection without a module map. */
  readonly modules: readonly string[];
  readonly pragmas?: Pragmas;
}
