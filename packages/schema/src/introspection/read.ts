import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SchemaError } from '../errors.js';
import type {
  AlternateDef,
  Alternative,
  CommandDef,
  EnumDef,
  EventDef,
  Feature,
  ImplicitOrigin,
  Member,
  Schema,
  StructDef,
  TypeDef,
  TypeRef,
  UnionDef,
} from '../model/ir.js';
import { implicitNames } from '../model/naming.js';
import { arrayElement, arrayOf, named, parseTypeRef } from '../model/schema.js';
import { parseJson, readSchemaInfo, type SchemaInfo, type SchemaInfoMember } from './info.js';

/**
 * Real names for masked introspection type names, recovered from QAPI source
 * (see `recoverNames`) and stored beside a capture as `names.json`.
 */
export interface NameMap {
  /** Masked name (e.g. `"262"`) → QAPI type name (e.g. `"RunState"`). */
  readonly types: Readonly<Record<string, string>>;
  /** Definition name (type, command or event) → QAPI module (e.g. `"run-state"`). */
  readonly modules?: Readonly<Record<string, string>>;
  /**
   * Commands declared `'gen': false` in the source (QEMU does not check their arguments
   * against the schema, e.g. `device_add` takes any device property).
   */
  readonly openArguments?: readonly string[];
  /**
   * Integer widths introspection hides (it reports every integer type as `int`): type name →
   * member → `uint8`, `size`, `[uint64]`, … as the QAPI source declares them.
   */
  readonly integers?: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

export interface IntrospectionInput {
  /** File name used in errors and in the schema's origin. */
  readonly file: string;
  /** The JSON text; read from `file` when absent. */
  readonly text?: string;
  readonly qemuVersion?: string;
  readonly names?: NameMap;
}

function features(list: readonly string[] | undefined): Feature[] {
  return (list ?? []).map((name) => ({ name }));
}

function jsonKindName(info: SchemaInfo | undefined, ref: string): string {
  if (arrayElement(ref) !== undefined) return 'list';
  if (!info) return 'value';
  switch (info['meta-type']) {
    case 'builtin':
      return info['json-type'];
    case 'enum':
      return 'enum';
    case 'object':
      return 'object';
    default:
      return info['meta-type'];
  }
}

/**
 * Reads `query-qmp-schema` output into the IR. Masked type names get names from `names`
 * where known, else stable owner + role names (`QueryStatusResult`, `BlockdevAddArguments`).
 */
export function readIntrospection(input: IntrospectionInput): Schema {
  const text = input.text ?? readFileSync(input.file, 'utf8');
  const raw = readSchemaInfo(input.file, parseJson(input.file, text));
  const infos = new Map<string, SchemaInfo>();
  for (const info of raw) {
    if (info['meta-type'] !== 'command' && info['meta-type'] !== 'event')
      infos.set(info.name, info);
  }
  const knownNames = input.names?.types ?? {};
  const modules = input.names?.modules ?? {};
  const fail = (reason: string): never => {
    throw new SchemaError({ file: input.file }, reason);
  };

  // Names: masked → final. Real (non-masked) names are kept; names from the map win.
  const finalName = new Map<string, string>();
  const origins = new Map<string, ImplicitOrigin>();
  const taken = new Set<string>();
  const isMasked = (name: string) => /^\d+$/.test(name);
  for (const info of infos.values()) {
    if (info['meta-type'] === 'builtin' || info['meta-type'] === 'array') continue;
    if (!isMasked(info.name)) {
      finalName.set(info.name, info.name);
      taken.add(info.name);
    } else if (knownNames[info.name] !== undefined) {
      const real = knownNames[info.name]!;
      if (taken.has(real))
        fail(`names map gives '${real}' to two types (one is masked '${info.name}')`);
      finalName.set(info.name, real);
      taken.add(real);
    }
  }
  const assign = (masked: string, wanted: string, origin: ImplicitOrigin): void => {
    if (finalName.has(masked)) {
      // A recovered name that is exactly the owner + role name marks an implicit type.
      if (finalName.get(masked) === wanted && !origins.has(masked)) origins.set(masked, origin);
      return;
    }
    let candidate = wanted;
    for (let n = 2; taken.has(candidate); n++) candidate = `${wanted}${n}`;
    finalName.set(masked, candidate);
    taken.add(candidate);
    origins.set(masked, origin);
  };

  const info = (name: string): SchemaInfo =>
    infos.get(name) ?? fail(`type '${name}' is referenced but not defined`);
  const isEmptyObject = (name: string): boolean => {
    const i = infos.get(name);
    return (
      i?.['meta-type'] === 'object' &&
      i.members.length === 0 &&
      i.variants === undefined &&
      !knownNames[name] &&
      isMasked(name)
    );
  };

  // Walk from commands and events in name order so fallback names do not depend on entry order.
  const visited = new Set<string>();
  const visit = (ref: string, wanted: string, origin: ImplicitOrigin): void => {
    if (arrayElement(ref) !== undefined) {
      const element = (info(ref) as Extract<SchemaInfo, { 'meta-type': 'array' }>)['element-type'];
      visit(element, wanted, {
        ...origin,
        role: origin.role === 'returns' ? 'returns' : 'element',
      });
      return;
    }
    const i = info(ref);
    if (i['meta-type'] === 'builtin') return;
    if (isMasked(ref)) assign(ref, wanted, origin);
    if (visited.has(ref)) return;
    visited.add(ref);
    const owner = finalName.get(ref)!;
    switch (i['meta-type']) {
      case 'object':
        for (const m of i.members)
          visit(m.type, implicitNames.memberType(owner, m.name), {
            owner,
            role: 'member',
            detail: m.name,
          });
        for (const v of (i.variants ?? []).filter((x) => !isEmptyObject(x.type)))
          visit(v.type, implicitNames.unionBranch(owner, v.case), {
            owner,
            role: 'branch',
            detail: v.case,
          });
        break;
      case 'alternate':
        for (const m of i.members) {
          const kind = jsonKindName(infos.get(m.type), m.type);
          visit(m.type, implicitNames.alternative(owner, kind), {
            owner,
            role: 'member',
            detail: kind,
          });
        }
        break;
      default:
        break;
    }
  };
  const commandsRaw = raw.filter(
    (r): r is Extract<SchemaInfo, { 'meta-type': 'command' }> => r['meta-type'] === 'command',
  );
  const eventsRaw = raw.filter(
    (r): r is Extract<SchemaInfo, { 'meta-type': 'event' }> => r['meta-type'] === 'event',
  );
  const byName = <T extends { name: string }>(a: T, b: T) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  for (const c of [...commandsRaw].sort(byName)) {
    if (!isEmptyObject(c['arg-type']))
      visit(c['arg-type'], implicitNames.commandArguments(c.name), {
        owner: c.name,
        role: 'arguments',
      });
    if (!isEmptyObject(c['ret-type']))
      visit(c['ret-type'], implicitNames.commandResult(c.name), { owner: c.name, role: 'returns' });
  }
  for (const e of [...eventsRaw].sort(byName)) {
    if (!isEmptyObject(e['arg-type']))
      visit(e['arg-type'], implicitNames.eventData(e.name), { owner: e.name, role: 'event-data' });
  }
  // Types not reachable from any command or event (should not happen in QEMU's output).
  for (const i of [...infos.values()].sort(byName)) {
    if (i['meta-type'] !== 'builtin' && i['meta-type'] !== 'array' && !isEmptyObject(i.name))
      visit(i.name, `Type${i.name}`, { owner: i.name, role: 'member' });
  }

  const ref = (name: string): TypeRef => {
    if (arrayElement(name) !== undefined) {
      const element = (info(name) as Extract<SchemaInfo, { 'meta-type': 'array' }>)['element-type'];
      return arrayOf(ref(element));
    }
    const i = info(name);
    return named(i['meta-type'] === 'builtin' ? name : finalName.get(name)!);
  };
  const common = (masked: string, feats: readonly string[] | undefined) => {
    const name = finalName.get(masked)!;
    const origin = origins.get(masked);
    const module = modules[name];
    return {
      name,
      features: features(feats),
      ...(origin ? { implicit: origin } : {}),
      ...(module ? { module } : {}),
    };
  };
  const integers = input.names?.integers ?? {};
  const members = (list: readonly SchemaInfoMember[], owner: string): Member[] =>
    list.map((m) => ({
      name: m.name,
      type:
        (m.type === 'int' || m.type === '[int]') && integers[owner]?.[m.name] !== undefined
          ? parseTypeRef(integers[owner][m.name]!)
          : ref(m.type),
      optional: 'default' in m,
      features: features(m.features),
      ...(m.default !== undefined && m.default !== null ? { default: m.default } : {}),
    }));

  const types = new Map<string, TypeDef>();
  const addType = (def: TypeDef) => {
    if (types.has(def.name)) fail(`two types are named '${def.name}'`);
    types.set(def.name, def);
  };
  for (const i of infos.values()) {
    if (!finalName.has(i.name)) continue; // the empty object type standing for "nothing"
    switch (i['meta-type']) {
      case 'builtin':
      case 'array':
        break;
      case 'enum': {
        const valueFeatures = new Map((i.members ?? []).map((m) => [m.name, m.features]));
        const def: EnumDef = {
          kind: 'enum',
          ...common(i.name, i.features),
          values: i.values.map((v) => ({ name: v, features: features(valueFeatures.get(v)) })),
        };
        addType(def);
        break;
      }
      case 'alternate': {
        const base = common(i.name, i.features);
        const alternatives: Alternative[] = i.members.map((m) => ({
          name: jsonKindName(infos.get(m.type), m.type),
          type: ref(m.type),
        }));
        const def: AlternateDef = { kind: 'alternate', ...base, alternatives };
        addType(def);
        break;
      }
      case 'object': {
        const base = common(i.name, i.features);
        if (i.tag === undefined) {
          const def: StructDef = {
            kind: 'struct',
            ...base,
            members: members(i.members, base.name),
          };
          addType(def);
          break;
        }
        let baseName = implicitNames.unionBase(base.name);
        for (let n = 2; taken.has(baseName); n++)
          baseName = `${implicitNames.unionBase(base.name)}${n}`;
        taken.add(baseName);
        const baseDef: StructDef = {
          kind: 'struct',
          name: baseName,
          features: [],
          implicit: { owner: base.name, role: 'base' },
          ...(base.module ? { module: base.module } : {}),
          members: members(i.members, base.name),
        };
        addType(baseDef);
        const def: UnionDef = {
          kind: 'union',
          ...base,
          base: baseName,
          discriminator: i.tag,
          // QEMU lists enum values without a branch as variants of the empty type: omit them.
          branches: (i.variants ?? [])
            .filter((v) => !isEmptyObject(v.type))
            .map((v) => ({
              case: v.case,
              type: finalName.get(v.type) ?? fail(`variant type '${v.type}' is not an object`),
            })),
        };
        addType(def);
        break;
      }
      default:
        break;
    }
  }

  const commands = new Map<string, CommandDef>();
  for (const c of commandsRaw) {
    const argsName = isEmptyObject(c['arg-type']) ? undefined : ref(c['arg-type']);
    if (argsName && argsName.kind !== 'named')
      fail(`command '${c.name}': arg-type must be an object type`);
    const returns = isEmptyObject(c['ret-type']) ? undefined : ref(c['ret-type']);
    const module = modules[c.name];
    commands.set(c.name, {
      kind: 'command',
      name: c.name,
      features: features(c.features),
      ...(module ? { module } : {}),
      ...(argsName?.kind === 'named' ? { args: argsName.name } : {}),
      ...(returns ? { returns } : {}),
      boxed: false,
      successResponse: true,
      gen: !(input.names?.openArguments ?? []).includes(c.name),
      allowOob: c['allow-oob'] === true,
      allowPreconfig: false,
      coroutine: false,
    });
  }
  const events = new Map<string, EventDef>();
  for (const e of eventsRaw) {
    const data = isEmptyObject(e['arg-type']) ? undefined : ref(e['arg-type']);
    const module = modules[e.name];
    events.set(e.name, {
      kind: 'event',
      name: e.name,
      features: features(e.features),
      ...(module ? { module } : {}),
      ...(data?.kind === 'named' ? { data: data.name } : {}),
      boxed: false,
    });
  }

  const moduleOrder = [...new Set(Object.values(modules))];
  return {
    origin: {
      kind: 'introspection',
      file: input.file,
      sha256: createHash('sha256').update(text).digest('hex'),
      ...(input.qemuVersion ? { qemuVersion: input.qemuVersion } : {}),
    },
    types,
    commands,
    events,
    modules: moduleOrder,
  };
}
