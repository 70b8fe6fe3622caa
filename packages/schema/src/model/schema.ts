import {
  BUILTIN_TYPES,
  type BuiltinTypeName,
  type Feature,
  type Member,
  type Schema,
  type TypeDef,
  type TypeRef,
} from './ir.js';

const builtins: ReadonlySet<string> = new Set(BUILTIN_TYPES);

/** Builtin integer types (introspection reports all of them as `int`). */
export const INTEGER_BUILTINS: ReadonlySet<string> = new Set([
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
]);

/** Whether a feature list marks something deprecated. */
export const isDeprecated = (features: readonly Feature[]): boolean =>
  features.some((f) => f.name === 'deprecated');

export function isBuiltin(name: string): name is BuiltinTypeName {
  return builtins.has(name);
}

export function named(name: string): TypeRef {
  return { kind: 'named', name };
}

export function arrayOf(element: TypeRef): TypeRef {
  return { kind: 'array', element };
}

/**
 * The element of an array reference in QAPI notation (`'[BlockInfo]'` → `'BlockInfo'`), or
 * `undefined` when `ref` is not an array. The one place that reads the `[T]` notation (array
 * type names of introspection, type references of the runtime tables).
 */
export function arrayElement(ref: string): string | undefined {
  return ref.length > 2 && ref.startsWith('[') && ref.endsWith(']') ? ref.slice(1, -1) : undefined;
}

/** A type reference in QAPI notation (`'[[str]]'`, `'int'`) as a `TypeRef`. */
export function parseTypeRef(ref: string): TypeRef {
  const element = arrayElement(ref);
  return element === undefined ? named(ref) : arrayOf(parseTypeRef(element));
}

/** `[BlockInfo]` style rendering of a type reference, as QAPI writes it. */
export function typeRefToString(ref: TypeRef): string {
  return ref.kind === 'named' ? ref.name : `[${typeRefToString(ref.element)}]`;
}

/** The innermost named type of a reference. */
export function baseName(ref: TypeRef): string {
  return ref.kind === 'named' ? ref.name : baseName(ref.element);
}

export function lookupType(schema: Schema, name: string): TypeDef | undefined {
  return schema.types.get(name);
}

/**
 * Members of a struct or union including its base chain, base members first — the view
 * introspection gives. Returns `undefined` for types that have no members.
 */
export function allMembers(schema: Schema, name: string): readonly Member[] | undefined {
  const def = schema.types.get(name);
  if (!def) return undefined;
  if (def.kind === 'struct') {
    const inherited = def.base ? (allMembers(schema, def.base) ?? []) : [];
    return [...inherited, ...def.members];
  }
  if (def.kind === 'union') return allMembers(schema, def.base) ?? [];
  return undefined;
}
