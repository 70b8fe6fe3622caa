/**
 * Both sources together: the schema of a real binary (introspection — exactly what it
 * accepts) enriched with what only the QAPI source knows (docs, `since`, `if` conditions,
 * feature docs, modules). Matching is by name; nothing the target lacks is added.
 */
import type {
  AlternateDef,
  CommandDef,
  Definition,
  EnumDef,
  EventDef,
  Feature,
  Member,
  Schema,
  StructDef,
  TypeDef,
} from './ir.js';

function features(target: readonly Feature[], source: readonly Feature[]): Feature[] {
  const docs = new Map(source.map((f) => [f.name, f]));
  return target.map((f) => {
    const s = docs.get(f.name);
    return {
      ...f,
      ...(s?.doc !== undefined ? { doc: s.doc } : {}),
      ...(s?.if !== undefined ? { if: s.if } : {}),
    };
  });
}

function common<T extends Definition>(target: T, source: Definition | undefined): T {
  if (!source) return target;
  return {
    ...target,
    ...(source.doc !== undefined ? { doc: source.doc } : {}),
    ...(source.if !== undefined ? { if: source.if } : {}),
    ...(source.module !== undefined && target.module === undefined
      ? { module: source.module }
      : {}),
    features: features(target.features, source.features),
  };
}

function members(target: readonly Member[], source: readonly Member[] | undefined): Member[] {
  const byName = new Map((source ?? []).map((m) => [m.name, m]));
  return target.map((m) => {
    const s = byName.get(m.name);
    if (!s) return m;
    return {
      ...m,
      ...(s.doc !== undefined ? { doc: s.doc } : {}),
      ...(s.if !== undefined ? { if: s.if } : {}),
      features: features(m.features, s.features),
    };
  });
}

/** All members of a struct/union along its base chain, for looking up docs by member name. */
function memberDocs(schema: Schema, name: string): Member[] {
  const def = schema.types.get(name);
  if (def?.kind === 'struct')
    return [...(def.base ? memberDocs(schema, def.base) : []), ...def.members];
  if (def?.kind === 'union') return memberDocs(schema, def.base);
  return [];
}

function enrichType(def: TypeDef, source: Schema): TypeDef {
  const src = source.types.get(def.name);
  switch (def.kind) {
    case 'enum': {
      const values = src?.kind === 'enum' ? new Map(src.values.map((v) => [v.name, v])) : new Map();
      const out: EnumDef = {
        ...common(def, src),
        values: def.values.map((v) => {
          const s = values.get(v.name);
          return s
            ? {
                ...v,
                ...(s.doc !== undefined ? { doc: s.doc } : {}),
                ...(s.if !== undefined ? { if: s.if } : {}),
                features: features(v.features, s.features),
              }
            : v;
        }),
      };
      return out;
    }
    case 'struct': {
      // Introspection flattens bases; docs of inherited members live on the source's bases.
      const out: StructDef = {
        ...common(def, src),
        members: members(def.members, src ? memberDocs(source, src.name) : undefined),
      };
      return out;
    }
    case 'union':
      return common(def, src);
    case 'alternate': {
      const out: AlternateDef = common(def, src);
      return out;
    }
  }
}

/** Returns `target` with docs, conditions and modules taken from `source` where names match. */
export function withSourceDocs(target: Schema, source: Schema): Schema {
  const types = new Map<string, TypeDef>();
  for (const [name, def] of target.types) {
    let enriched = enrichType(def, source);
    // A synthesized union base (introspection) takes member docs from the source union's base.
    if (
      enriched.kind === 'struct' &&
      enriched.implicit?.role === 'base' &&
      !source.types.has(name)
    ) {
      const union = source.types.get(enriched.implicit.owner);
      if (union?.kind === 'union')
        enriched = {
          ...enriched,
          members: members(enriched.members, memberDocs(source, union.base)),
        };
    }
    types.set(name, enriched);
  }
  const commands = new Map<string, CommandDef>();
  for (const [name, def] of target.commands)
    commands.set(name, common(def, source.commands.get(name)));
  const events = new Map<string, EventDef>();
  for (const [name, def] of target.events) events.set(name, common(def, source.events.get(name)));
  return { ...target, types, commands, events };
}
