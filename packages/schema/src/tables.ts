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
