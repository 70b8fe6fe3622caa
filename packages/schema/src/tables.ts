import type { Feature, Schema, TypeRef } from './model/ir.js';
import { allMembers, typeRefToString } from './model/schema.js';
import type {
  CommandTable,
  EventTable,
  MemberTable,
  SchemaTables,
  TypeTable,
} from './tables-format.js';

/**
 * The runtime tables (format 1) as plain data: `SchemaTables` (defined here in
 * `tables-format.ts`; `@qmpkit/qapi/runtime-v1` re-exports it).
 */
export type TablesData = SchemaTables;

function featureNames(list: readonly Feature[]): { features?: string[] } {
  return list.length > 0 ? { features: list.map((f) => f.name) } : {};
}

const sortedKeys = <V>(map: ReadonlyMap<string, V>): string[] => [...map.keys()].sort();

/** Builtin integer kinds collapse into `int` only in introspection; source keeps them. */
function ref(type: TypeRef): string {
  return typeRefToString(type);
}

export function buildTables(schema: Schema, qemuVersion: string): TablesData {
  const types: Record<string, TypeTable> = {};
  for (const name of sortedKeys(schema.types)) {
    const def = schema.types.get(name)!;
    switch (def.kind) {
      case 'enum': {
        const valueFeatures = Object.fromEntries(
          def.values
            .filter((v) => v.features.length > 0)
            .map((v) => [v.name, v.features.map((f) => f.name)]),
        );
        types[name] = {
          kind: 'enum',
          values: def.values.map((v) => v.name),
          ...(Object.keys(valueFeatures).length > 0 ? { valueFeatures } : {}),
          ...featureNames(def.features),
        };
        break;
      }
      case 'struct':
      case 'union': {
        const members = (allMembers(schema, name) ?? []).map(
          (m): MemberTable => ({
            name: m.name,
            type: ref(m.type),
            ...(m.optional ? { optional: true as const } : {}),
            ...featureNames(m.features),
          }),
        );
        types[name] = {
          kind: 'object',
          members,
          ...(def.kind === 'union'
            ? {
                tag: def.discriminator,
                variants: Object.fromEntries(def.branches.map((b) => [b.case, b.type])),
              }
            : {}),
          ...featureNames(def.features),
        };
        break;
      }
      case 'alternate':
        types[name] = {
          kind: 'alternate',
          alternatives: def.alternatives.map((a) => ref(a.type)),
          ...featureNames(def.features),
        };
        break;
    }
  }
  const commands: Record<string, CommandTable> = {};
  for (const name of sortedKeys(schema.commands)) {
    const c = schema.commands.get(name)!;
    commands[name] = {
      ...(c.args !== undefined ? { args: c.args } : {}),
      ...(c.returns !== undefined ? { returns: ref(c.returns) } : {}),
      ...(c.allowOob ? { allowOob: true } : {}),
      ...(c.allowPreconfig ? { allowPreconfig: true } : {}),
      ...(c.successResponse ? {} : { noSuccessResponse: true }),
      ...(c.gen ? {} : { openArgs: true }),
      ...featureNames(c.features),
    };
  }
  const events: Record<string, EventTable> = {};
  for (const name of sortedKeys(schema.events)) {
    const e = schema.events.get(name)!;
    events[name] = {
      ...(e.data !== undefined ? { data: e.data } : {}),
      ...featureNames(e.features),
    };
  }
  return { format: 1, qemuVersion, types, commands, events };
}

/**
 * The runtime tables packed positionally ("packed format 1"), as shipped in generated code:
 * `tables = unpackTables(JSON.parse('…'))`. Keys that every entry repeats (`name`, `type`,
 * `kind`, `optional`, …) become array positions and bit flags, trailing absent fields are
 * dropped, absent references are `0`. `unpackTables` in `@qmpkit/qapi/runtime-v1` is the
 * inverse; qapi's tests check the round trip on every captured version. Layout:
 *
 *     [format, qemuVersion, types, commands, events]
 *     type     enum:      [name, 0, values, features | 0, valueFeatures]
 *              object:    [name, 1, members, features | 0, tag, variants]
 *              alternate: [name, 2, alternatives, features]
 *     member   [name, type, optional ? 1 : 0, features]
 *     command  [name, args | 0, returns | 0, flags, features]   flags: PACKED_COMMAND_FLAGS
 *     event    [name, data | 0, features]
 */
export type PackedTables = [
  format: 1,
  qemuVersion: string,
  types: unknown[][],
  commands: unknown[][],
  events: unknown[][],
];

/** Bits of a packed command's `flags`. */
export const PACKED_COMMAND_FLAGS = {
  allowOob: 1,
  allowPreconfig: 2,
  noSuccessResponse: 4,
  openArgs: 8,
} as const;

/** Drops trailing entries that are absent (`undefined`, `0`, empty). */
function trimmed(row: unknown[]): unknown[] {
  let end = row.length;
  while (end > 2 && (row[end - 1] === undefined || row[end - 1] === 0)) end--;
  return row.slice(0, end).map((v) => (v === undefined ? 0 : v));
}

const features = (entry: { readonly features?: readonly string[] }) => entry.features ?? 0;

export function packTables(data: TablesData): PackedTables {
  const types = Object.entries(data.types).map(([name, t]) => {
    if (t.kind === 'enum') return trimmed([name, 0, t.values, features(t), t.valueFeatures]);
    if (t.kind === 'alternate') return trimmed([name, 2, t.alternatives, features(t)]);
    const members = t.members.map((m) =>
      trimmed([m.name, m.type, m.optional === true ? 1 : 0, features(m)]),
    );
    return trimmed([name, 1, members, features(t), t.tag, t.variants]);
  });
  const commands = Object.entries(data.commands).map(([name, c]) => {
    let flags = 0;
    for (const [key, bit] of Object.entries(PACKED_COMMAND_FLAGS) as [
      keyof typeof PACKED_COMMAND_FLAGS,
      number,
    ][])
      if (c[key] === true) flags |= bit;
    return trimmed([name, c.args ?? 0, c.returns ?? 0, flags, features(c)]);
  });
  const events = Object.entries(data.events).map(([name, e]) =>
    trimmed([name, e.data ?? 0, features(e)]),
  );
  return [data.format, data.qemuVersion, types, commands, events];
}

/**
 * The packed tables as the text of a single-quoted JavaScript string literal holding JSON
 * (`JSON.parse` of a string loads faster than the same object literal; single quotes need no
 * escaping of JSON's double quotes).
 */
export function packedTablesJson(data: TablesData): string {
  return JSON.stringify(packTables(data));
}
