import { SchemaError } from '../errors.js';
import type { Schema, TypeDef, TypeRef } from '../model/ir.js';
import { allMembers, arrayElement, isBuiltin, named } from '../model/schema.js';
import { parseJson, readSchemaInfo, type SchemaInfo } from './info.js';
import type { NameMap } from './read.js';

export interface RecoveredNames extends NameMap {
  readonly modules: Readonly<Record<string, string>>;
  readonly openArguments: readonly string[];
  readonly integers: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Masked names that could not be matched to a source type (schema drift between inputs). */
  readonly unmatched: readonly string[];
  /** Places where the two inputs disagree, as readable sentences. */
  readonly conflicts: readonly string[];
}

const SIZED_INTEGERS = new Set([
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

/** `uint8`, `[size]`, … for a sized integer type (or a list of one); else undefined. */
function sizedInteger(ref: TypeRef): string | undefined {
  if (ref.kind === 'array') {
    const inner = sizedInteger(ref.element);
    return inner === undefined ? undefined : `[${inner}]`;
  }
  return SIZED_INTEGERS.has(ref.name) ? ref.name : undefined;
}

type JsonKind = 'string' | 'number' | 'boolean' | 'null' | 'object' | 'array' | 'value';

function sourceJsonKind(source: Schema, ref: TypeRef): JsonKind {
  if (ref.kind === 'array') return 'array';
  const name = ref.name;
  if (isBuiltin(name)) {
    if (name === 'str' || name === 'QType') return 'string';
    if (name === 'bool') return 'boolean';
    if (name === 'null') return 'null';
    if (name === 'any') return 'value';
    return 'number';
  }
  const def: TypeDef | undefined = source.types.get(name);
  if (!def) return 'value';
  if (def.kind === 'enum') return 'string';
  if (def.kind === 'alternate') return 'value';
  return 'object';
}

function rawJsonKind(infos: ReadonlyMap<string, SchemaInfo>, ref: string): JsonKind {
  if (arrayElement(ref) !== undefined) return 'array';
  const info = infos.get(ref);
  if (!info) return 'value';
  switch (info['meta-type']) {
    case 'builtin': {
      const json = info['json-type'];
      if (json === 'string' || json === 'boolean' || json === 'null') return json;
      if (json === 'int' || json === 'number') return 'number';
      return 'value';
    }
    case 'enum':
      return 'string';
    case 'object':
      return 'object';
    default:
      return 'value';
  }
}

/**
 * Recovers the real names of masked introspection types by walking a `query-qmp-schema`
 * result and the IR of the matching QAPI source side by side, from every command and event.
 * Also records each definition's module. Both inputs stay untouched.
 */
export function recoverNames(
  file: string,
  introspectionText: string,
  source: Schema,
): RecoveredNames {
  const raw = readSchemaInfo(file, parseJson(file, introspectionText));
  const infos = new Map<string, SchemaInfo>();
  for (const info of raw)
    if (info['meta-type'] !== 'command' && info['meta-type'] !== 'event')
      infos.set(info.name, info);
  const types: Record<string, string> = {};
  const integers: Record<string, Record<string, string>> = {};
  const claimedBy = new Map<string, string>();
  const conflicts: string[] = [];
  const isMasked = (name: string) => /^\d+$/.test(name);

  const unify = (rawRef: string, srcRef: TypeRef, where: string): void => {
    if (arrayElement(rawRef) !== undefined) {
      if (srcRef.kind !== 'array') {
        conflicts.push(`${where}: introspection has a list, the source has '${srcRef.name}'`);
        return;
      }
      const info = infos.get(rawRef);
      if (info?.['meta-type'] !== 'array')
        throw new SchemaError({ file }, `array type '${rawRef}' is not defined`);
      unify(info['element-type'], srcRef.element, `${where}[]`);
      return;
    }
    const info = infos.get(rawRef);
    if (!info) throw new SchemaError({ file }, `type '${rawRef}' is referenced but not defined`);
    if (info['meta-type'] === 'builtin') return;
    if (srcRef.kind !== 'named') {
      conflicts.push(`${where}: the source has a list, introspection does not`);
      return;
    }
    const srcDef = source.types.get(srcRef.name);
    if (!srcDef) {
      conflicts.push(`${where}: source type '${srcRef.name}' is not a defined type`);
      return;
    }
    if (
      info['meta-type'] === 'object' &&
      info.members.length === 0 &&
      info.variants === undefined &&
      (srcDef.kind !== 'struct' || (allMembers(source, srcDef.name) ?? []).length > 0)
    ) {
      // An empty object matched to a type with members: a newer source added arguments to a
      // command that had none. The empty object keeps meaning "nothing" (it is not named).
      return;
    }
    if (isMasked(rawRef)) {
      const known = types[rawRef];
      if (known !== undefined) {
        if (known !== srcRef.name)
          conflicts.push(`${where}: masked type ${rawRef} is both '${known}' and '${srcRef.name}'`);
        return;
      }
      const owner = claimedBy.get(srcRef.name);
      if (owner !== undefined) {
        // Two masked types matched one source type: older schemas had separate types where
        // newer ones share one (e.g. a simple union's implicit kind enum). Keep the first.
        conflicts.push(
          `${where}: masked types ${owner} and ${rawRef} both look like '${srcRef.name}'`,
        );
        return;
      }
      types[rawRef] = srcRef.name;
      claimedBy.set(srcRef.name, rawRef);
    } else if (rawRef !== srcRef.name) {
      conflicts.push(`${where}: introspection names '${rawRef}', the source '${srcRef.name}'`);
      return;
    }
    switch (info['meta-type']) {
      case 'object': {
        const members = new Map((allMembers(source, srcRef.name) ?? []).map((m) => [m.name, m]));
        for (const m of info.members) {
          const srcMember = members.get(m.name);
          if (srcMember) {
            // Introspection reports every integer type as `int`; the source knows the width.
            const width = sizedInteger(srcMember.type);
            if (width !== undefined && (m.type === 'int' || m.type === '[int]')) {
              integers[srcRef.name] = { ...integers[srcRef.name], [m.name]: width };
            }
          }
          if (srcMember) unify(m.type, srcMember.type, `${srcRef.name}.${m.name}`);
          else conflicts.push(`${srcRef.name}: member '${m.name}' only in introspection`);
        }
        if (srcDef.kind === 'union') {
          const branches = new Map(srcDef.branches.map((b) => [b.case, b.type]));
          for (const v of info.variants ?? []) {
            const branch = branches.get(v.case);
            if (branch !== undefined) unify(v.type, named(branch), `${srcRef.name}[${v.case}]`);
          }
        }
        break;
      }
      case 'alternate': {
        if (srcDef.kind !== 'alternate') {
          conflicts.push(`${where}: introspection has an alternate, the source a ${srcDef.kind}`);
          break;
        }
        for (const m of info.members) {
          const kind = rawJsonKind(infos, m.type);
          const alt = srcDef.alternatives.find((a) => {
            const k = sourceJsonKind(source, a.type);
            return k === kind || (k === 'number' && kind === 'number');
          });
          if (alt) unify(m.type, alt.type, `${srcRef.name}(${kind})`);
        }
        break;
      }
      default:
        break;
    }
  };

  for (const entry of raw) {
    if (entry['meta-type'] === 'command') {
      const cmd = source.commands.get(entry.name);
      if (!cmd) {
        conflicts.push(`command '${entry.name}' is not in the source`);
        continue;
      }
      if (cmd.args !== undefined)
        unify(entry['arg-type'], named(cmd.args), `${entry.name} arguments`);
      if (cmd.returns !== undefined) unify(entry['ret-type'], cmd.returns, `${entry.name} returns`);
    } else if (entry['meta-type'] === 'event') {
      const event = source.events.get(entry.name);
      if (!event) {
        conflicts.push(`event '${entry.name}' is not in the source`);
        continue;
      }
      if (event.data !== undefined)
        unify(entry['arg-type'], named(event.data), `${entry.name} data`);
    }
  }

  // Types no command or event reaches (QEMU still lists a few): match by shape when exactly
  // one unclaimed source type of the same kind has the same member or value names.
  const claimed = new Set(Object.values(types));
  const signature = (kind: string, names: readonly string[]) =>
    `${kind}:${[...names].sort().join(',')}`;
  const sourceBySignature = new Map<string, string[]>();
  for (const def of source.types.values()) {
    if (claimed.has(def.name)) continue;
    let sig: string | undefined;
    if (def.kind === 'enum')
      sig = signature(
        'enum',
        def.values.map((v) => v.name),
      );
    else if (def.kind === 'struct')
      sig = signature(
        'object',
        (allMembers(source, def.name) ?? []).map((m) => m.name),
      );
    if (sig === undefined) continue;
    const list = sourceBySignature.get(sig) ?? [];
    list.push(def.name);
    sourceBySignature.set(sig, list);
  }
  for (const info of infos.values()) {
    if (!isMasked(info.name) || types[info.name] !== undefined) continue;
    let sig: string | undefined;
    if (info['meta-type'] === 'enum') sig = signature('enum', info.values);
    else if (
      info['meta-type'] === 'object' &&
      info.variants === undefined &&
      info.members.length > 0
    ) {
      sig = signature(
        'object',
        info.members.map((m) => m.name),
      );
    }
    const candidates = sig === undefined ? undefined : sourceBySignature.get(sig);
    if (candidates?.length === 1) types[info.name] = candidates[0]!;
  }

  const modules: Record<string, string> = {};
  const addModule = (name: string, module: string | undefined) => {
    if (module !== undefined) modules[name] = module;
  };
  for (const name of Object.values(types)) addModule(name, source.types.get(name)?.module);
  for (const entry of raw) {
    if (entry['meta-type'] === 'command')
      addModule(entry.name, source.commands.get(entry.name)?.module);
    if (entry['meta-type'] === 'event')
      addModule(entry.name, source.events.get(entry.name)?.module);
  }
  const unmatched = [...infos.values()]
    .filter((i) => isMasked(i.name) && types[i.name] === undefined)
    .filter(
      (i) => !(i['meta-type'] === 'object' && i.members.length === 0 && i.variants === undefined),
    )
    .map((i) => i.name);
  const sortObject = (o: Record<string, string>) =>
    Object.fromEntries(
      Object.entries(o).sort(([a], [b]) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)),
    );
  const openArguments = raw
    .filter((e) => e['meta-type'] === 'command' && source.commands.get(e.name)?.gen === false)
    .map((e) => e.name)
    .sort();
  const sortedIntegers = Object.fromEntries(
    Object.keys(integers)
      .sort()
      .map((t) => [
        t,
        Object.fromEntries(Object.entries(integers[t]!).sort(([a], [b]) => (a < b ? -1 : 1))),
      ]),
  );
  return {
    types: sortObject(types),
    modules: sortObject(modules),
    openArguments,
    integers: sortedIntegers,
    unmatched,
    conflicts,
  };
}
