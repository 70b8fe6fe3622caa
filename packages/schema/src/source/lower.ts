/**
 * Lowering of a checked schema (its entity table, after `checkSemantics`) into the IR.
 */
import type {
  AlternateDef,
  Alternative,
  CommandDef,
  DefinitionDoc,
  DocSection,
  EnumDef,
  EnumValue,
  EventDef,
  Feature,
  ImplicitOrigin,
  Member,
  Schema,
  StructDef,
  TypeDef,
  UnionDef,
} from '../model/ir.js';
import type { ParsedSchema, QapiDoc } from './ast.js';
import type { NDef, NFeature } from './check.js';
import {
  type AlternateEntity,
  type CommandEntity,
  type EntityTable,
  type EnumEntity,
  type EventEntity,
  refString,
  type StructEntity,
  type UnionEntity,
} from './entities.js';

class Lowerer {
  constructor(
    private readonly parsed: ParsedSchema,
    private readonly table: EntityTable,
  ) {}

  build(): Schema {
    const types = new Map<string, TypeDef>();
    const commands = new Map<string, CommandDef>();
    const events = new Map<string, EventDef>();
    for (const entity of this.table.order) {
      switch (entity.kind) {
        case 'builtin':
          break;
        case 'enum':
          types.set(entity.name, this.enumDef(entity));
          break;
        case 'struct':
          types.set(entity.name, this.structDef(entity));
          break;
        case 'union':
          types.set(entity.name, this.unionDef(entity));
          break;
        case 'alternate':
          types.set(entity.name, this.alternateDef(entity));
          break;
        case 'command':
          commands.set(entity.name, this.commandDef(entity));
          break;
        case 'event':
          events.set(entity.name, this.eventDef(entity));
          break;
      }
    }
    const modules: string[] = [];
    for (const file of this.parsed.files)
      if (!modules.includes(file.module)) modules.push(file.module);
    return {
      origin: { kind: 'qapi-source', file: this.parsed.mainFile, sha256: this.parsed.sha256 },
      types,
      commands,
      events,
      modules,
      pragmas: this.parsed.pragmas,
    };
  }

  private common(def: NDef) {
    const doc = def.doc ? definitionDoc(def.doc) : undefined;
    return {
      name: def.name,
      module: def.module,
      loc: def.loc,
      ...(def.if ? { if: def.if } : {}),
      features: features(def.features, def.doc),
      ...(doc ? { doc } : {}),
    };
  }

  private implicitCommon(entity: StructEntity | EnumEntity, origin: ImplicitOrigin) {
    return {
      name: entity.name,
      module: entity.module,
      loc: entity.loc,
      ...(entity.if ? { if: entity.if } : {}),
      features: [],
      implicit: origin,
    };
  }

  /** The doc comment that documents the members of an implicit type. */
  private ownerDoc(origin: ImplicitOrigin | undefined): QapiDoc | undefined {
    if (!origin) return undefined;
    const owner = this.table.entities.get(origin.owner);
    return owner && 'def' in owner && owner.def && 'doc' in owner.def ? owner.def.doc : undefined;
  }

  private enumDef(entity: EnumEntity): EnumDef {
    const doc = entity.def?.doc ?? this.ownerDoc(entity.implicit);
    const values = entity.values.map((v): EnumValue => {
      const text = memberDoc(doc, v.name);
      return {
        name: v.name,
        ...(v.if ? { if: v.if } : {}),
        features: features(v.features, doc),
        ...(text !== undefined ? { doc: text } : {}),
      };
    });
    if (entity.def) {
      const def = entity.def;
      return {
        kind: 'enum',
        ...this.common(def),
        values,
        ...(def.prefix !== undefined ? { prefix: def.prefix } : {}),
      };
    }
    return {
      kind: 'enum',
      ...this.implicitCommon(entity, entity.implicit ?? { owner: '', role: 'kind-enum' }),
      values,
    };
  }

  private structDef(entity: StructEntity): StructDef {
    const doc = entity.def?.doc ?? this.ownerDoc(entity.implicit);
    const members = entity.members.map((m): Member => {
      const text = memberDoc(doc, m.name);
      return {
        name: m.name,
        type: m.type.ref,
        optional: m.optional,
        ...(m.if ? { if: m.if } : {}),
        features: features(m.features, doc),
        ...(text !== undefined ? { doc: text } : {}),
        loc: m.loc,
      };
    });
    const base = entity.base ? { base: entity.base.name } : {};
    if (entity.def) return { kind: 'struct', ...this.common(entity.def), ...base, members };
    return {
      kind: 'struct',
      ...this.implicitCommon(entity, entity.implicit ?? { owner: '', role: 'member' }),
      ...base,
      members,
    };
  }

  private unionDef(entity: UnionEntity): UnionDef {
    const { def } = entity;
    return {
      kind: 'union',
      ...this.common(def),
      base: entity.baseName ?? '',
      discriminator: entity.discriminator.name,
      branches: def.branches.map((b, i) => {
        const ref = entity.branchTypes[i]?.ref ?? b.type.ref;
        return {
          case: b.name,
          type: ref.kind === 'named' ? ref.name : refString(ref),
          ...(b.if ? { if: b.if } : {}),
          loc: b.loc,
        };
      }),
      ...(def.legacySimple ? { legacySimple: true } : {}),
    };
  }

  private alternateDef(entity: AlternateEntity): AlternateDef {
    const { def } = entity;
    return {
      kind: 'alternate',
      ...this.common(def),
      alternatives: def.branches.map((b): Alternative => {
        const text = memberDoc(def.doc, b.name);
        return {
          name: b.name,
          type: b.type.ref,
          ...(b.if ? { if: b.if } : {}),
          ...(text !== undefined ? { doc: text } : {}),
        };
      }),
    };
  }

  private commandDef(entity: CommandEntity): CommandDef {
    const { def } = entity;
    const args = def.data?.kind === 'named' ? def.data.name : entity.argsName;
    return {
      kind: 'command',
      ...this.common(def),
      ...(args ? { args } : {}),
      boxed: def.boxed,
      ...(def.returns ? { returns: def.returns.ref } : {}),
      successResponse: def.successResponse,
      gen: def.gen,
      allowOob: def.allowOob,
      allowPreconfig: def.allowPreconfig,
      coroutine: def.coroutine,
    };
  }

  private eventDef(entity: EventEntity): EventDef {
    const { def } = entity;
    const data = def.data?.kind === 'named' ? def.data.name : entity.dataName;
    return { kind: 'event', ...this.common(def), ...(data ? { data } : {}), boxed: def.boxed };
  }
}

function memberDoc(doc: QapiDoc | undefined, name: string): string | undefined {
  return doc?.sections.find((s) => s.kind === 'member' && s.name === name)?.text;
}

function features(list: readonly NFeature[], doc: QapiDoc | undefined): Feature[] {
  return list.map((f) => {
    const text = doc?.sections.find((s) => s.kind === 'feature' && s.name === f.name)?.text;
    return {
      name: f.name,
      ...(f.if ? { if: f.if } : {}),
      ...(text !== undefined ? { doc: text } : {}),
    };
  });
}

function definitionDoc(doc: QapiDoc): DefinitionDoc {
  const text = doc.sections
    .filter((s) => s.kind === 'plain' && s.text !== '')
    .map((s) => s.text)
    .join('\n\n');
  const sections: DocSection[] = doc.sections
    .filter((s) => s.kind === 'tagged')
    .map((s) => ({ tag: s.name ?? '', text: s.text }));
  const since = sections.find((s) => s.tag === 'Since')?.text;
  return { text, sections, ...(since !== undefined ? { since } : {}) };
}

/** Lowers a semantically checked schema into the IR. */
export function lowerSchema(parsed: ParsedSchema, table: EntityTable): Schema {
  return new Lowerer(parsed, table).build();
}
