import type { Feature, Schema, TypeRef } from './model/ir.js';
import { allMembers, typeRefToString } from './model/schema.js';

/**
 * The runtime tables (format 1) as plain data. The shape is `SchemaTables` of
 * `@qmpkit/qapi/runtime-v1`; generated code annotates the emitted literal with that type, so
 * `tsc` on the output catches any drift between this builder and the runtime.
 */
export interface TablesData {
  format: 1;
  qemuVersion: string;
  types: Record<string, Record<string, unknown>>;
  commands: Record<string, Record<string, unknown>>;
  events: Record<string, Record<string, unknown>>;
}

function featureNames(list: readonly Feature[]): { features?: string[] } {
  return list.length > 0 ? { features: list.map((f) => f.name) } : {};
}

const sortedKeys = <V>(map: ReadonlyMap<string, V>): string[] => [...map.keys()].sort();

/** Builtin integer kinds collapse into `int` only in introspection; source keeps them. */
function ref(type: TypeRef): string {
  return typeRefToString(type);
}

export function buildTables(schema: Schema, qemuVersion: string): TablesData {
  const types: TablesData['types'] = {};
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
        const members = (allMembers(schema, name) ?? []).map((m) => ({
          name: m.name,
          type: ref(m.type),
          ...(m.optional ? { optional: true } : {}),
          ...featureNames(m.features),
        }));
        const variants =
          def.kind === 'union'
            ? Object.fromEntries(def.branches.map((b) => [b.case, b.type]))
            : undefined;
        types[name] = {
          kind: 'object',
          members,
          ...(def.kind === 'union' ? { tag: def.discriminator, variants } : {}),
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
  const commands: TablesData['commands'] = {};
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
  const events: TablesData['events'] = {};
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

const KIND_CODES: Record<string, number> = { enum: 0, object: 1, alternate: 2 };

/** Drops trailing entries that are absent (`undefined`, `0`, empty). */
function trimmed(row: unknown[]): unknown[] {
  let end = row.length;
  while (end > 2 && (row[end - 1] === undefined || row[end - 1] === 0)) end--;
  return row.slice(0, end).map((v) => (v === undefined ? 0 : v));
}

const features = (entry: Record<string, unknown>) => (entry.features as string[] | undefined) ?? 0;

export function packTables(data: TablesData): PackedTables {
  const types = Object.entries(data.types).map(([name, t]) => {
    const kind = KIND_CODES[t.kind as string];
    if (kind === 0) return trimmed([name, 0, t.values, features(t), t.valueFeatures]);
    if (kind === 2) return trimmed([name, 2, t.alternatives, features(t)]);
    const members = (t.members as Record<string, unknown>[]).map((m) =>
      trimmed([m.name, m.type, m.optional === true ? 1 : 0, features(m)]),
    );
    return trimmed([name, 1, members, features(t), t.tag, t.variants]);
  });
  const commands = Object.entries(data.commands).map(([name, c]) => {
    let flags = 0;
    for (const [key, bit] of Object.entries(PACKED_COMMAND_FLAGS))
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
