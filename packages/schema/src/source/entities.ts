/**
 * The entity table of a checked schema: every named definition, the implicit types QEMU's
 * generator derives from inline members (argument/data structs, union bases, legacy simple-union
 * enums and wrappers) and the built-in types. Building it reports duplicate names and implicit
 * type clashes; the semantic checks (`semantic.ts`) and the lowering (`lower.ts`) both read it.
 */
import { SchemaError } from '../errors.js';
import type { Condition, ImplicitOrigin, SourceLocation, TypeRef } from '../model/ir.js';
import { BUILTIN_TYPES } from '../model/ir.js';
import { implicitNames } from '../model/naming.js';
import type { ParsedSchema } from './ast.js';
import type {
  NAlternate,
  NCommand,
  NDef,
  NEnum,
  NEnumValue,
  NEvent,
  NMember,
  NNamedRef,
  NObjectRef,
  NStruct,
  NTypeRef,
  NUnion,
} from './check.js';

export interface EntityBase {
  readonly name: string;
  /** Human-readable description for messages, e.g. `struct 'Foo'`. */
  readonly label: string;
  readonly loc?: SourceLocation;
}

export interface BuiltinEntity extends EntityBase {
  readonly kind: 'builtin';
}

export interface EnumEntity extends EntityBase {
  readonly kind: 'enum';
  readonly loc: SourceLocation;
  readonly module: string;
  readonly values: readonly NEnumValue[];
  readonly def?: NEnum;
  readonly implicit?: ImplicitOrigin;
  readonly if?: Condition;
}

export interface StructEntity extends EntityBase {
  readonly kind: 'struct';
  readonly loc: SourceLocation;
  readonly module: string;
  readonly base?: NNamedRef;
  readonly members: readonly NMember[];
  readonly def?: NStruct;
  readonly implicit?: ImplicitOrigin;
  readonly if?: Condition;
}

export interface UnionEntity extends EntityBase {
  readonly kind: 'union';
  readonly loc: SourceLocation;
  readonly def: NUnion;
  /** Name of the base struct (named or implicit); absent when the inline base is empty. */
  readonly baseName?: string;
  readonly discriminator: { readonly name: string; readonly loc: SourceLocation };
  /** Branch type names (wrappers for legacy simple unions). */
  readonly branchTypes: readonly NTypeRef[];
}

export interface AlternateEntity extends EntityBase {
  readonly kind: 'alternate';
  readonly loc: SourceLocation;
  readonly def: NAlternate;
}

export interface CommandEntity extends EntityBase {
  readonly kind: 'command';
  readonly loc: SourceLocation;
  readonly def: NCommand;
  readonly argsName?: string;
}

export interface EventEntity extends EntityBase {
  readonly kind: 'event';
  readonly loc: SourceLocation;
  readonly def: NEvent;
  readonly dataName?: string;
}

export type TypeEntity = BuiltinEntity | EnumEntity | StructEntity | UnionEntity | AlternateEntity;
export type Entity = TypeEntity | CommandEntity | EventEntity;

export function fail(loc: SourceLocation, message: string): never {
  throw new SchemaError(loc, message);
}

export function where(loc: SourceLocation): string {
  return `${loc.file}:${loc.line}:${loc.col}`;
}

export function refString(ref: TypeRef): string {
  return ref.kind === 'named' ? ref.name : `[${refString(ref.element)}]`;
}

const roleText: Readonly<Record<ImplicitOrigin['role'], string>> = {
  arguments: 'the arguments of command',
  returns: 'the result of command',
  'event-data': 'the data of event',
  base: 'the base of union',
  branch: 'a branch of union',
  member: 'a member of',
  element: 'an element of',
  wrapper: 'a branch wrapper of union',
  'kind-enum': 'the branch enum of union',
};

export function implicitLabel(kind: string, name: string, origin: ImplicitOrigin): string {
  return `implicit ${kind} '${name}' for ${roleText[origin.role]} '${origin.owner}'`;
}

/** Entities by name (built-ins included) and in definition order (built-ins excluded). */
export class EntityTable {
  readonly entities = new Map<string, Entity>();
  /** Definition order, builtins excluded. */
  readonly order: Entity[] = [];

  constructor(private readonly parsed: ParsedSchema) {
    for (const name of BUILTIN_TYPES) {
      this.entities.set(name, { kind: 'builtin', name, label: `built-in type '${name}'` });
    }
  }

  /** Fails when `name` is taken; `implicit` tells how to describe the newcomer. */
  private assertFree(name: string, label: string, loc: SourceLocation, implicit: boolean): void {
    const previous = this.entities.get(name);
    if (!previous) return;
    if (previous.kind === 'builtin') fail(loc, `'${name}' is already defined as a built-in type`);
    const prevAt = previous.loc ? ` (${where(previous.loc)})` : '';
    if (implicit || ('implicit' in previous && previous.implicit)) {
      fail(loc, `${label} clashes with ${previous.label}${prevAt}`);
    }
    fail(loc, `'${name}' is already defined${prevAt}`);
  }

  private define(entity: Entity): void {
    const implicit = 'implicit' in entity && entity.implicit !== undefined;
    const loc = entity.loc ?? { file: this.parsed.mainFile, line: 1, col: 1 };
    this.assertFree(entity.name, entity.label, loc, implicit);
    this.entities.set(entity.name, entity);
    this.order.push(entity);
  }

  private implicitStruct(
    name: string,
    origin: ImplicitOrigin,
    members: readonly NMember[],
    loc: SourceLocation,
    module: string,
    cond: Condition | undefined,
  ): StructEntity {
    const entity: StructEntity = {
      kind: 'struct',
      name,
      label: implicitLabel('struct', name, origin),
      loc,
      module,
      members,
      implicit: origin,
      ...(cond ? { if: cond } : {}),
    };
    this.define(entity);
    return entity;
  }

  /** Defines the implicit struct of inline members; returns its name, or none when empty. */
  private objectRef(
    ref: NObjectRef | undefined,
    name: string,
    origin: ImplicitOrigin,
    def: NDef,
  ): string | undefined {
    if (!ref) return undefined;
    if (ref.kind === 'named') return ref.name;
    if (ref.members.length === 0) return undefined;
    return this.implicitStruct(name, origin, ref.members, ref.loc, def.module, def.if).name;
  }

  defineAll(defs: readonly NDef[]): void {
    for (const def of defs) {
      const label = `${def.meta} '${def.name}'`;
      // Report a duplicate definition as such, before its implicit types could clash.
      this.assertFree(def.name, label, def.loc, false);
      switch (def.meta) {
        case 'enum':
          this.define({
            kind: 'enum',
            name: def.name,
            label,
            loc: def.loc,
            module: def.module,
            values: def.values,
            def,
          });
          break;
        case 'struct':
          this.define({
            kind: 'struct',
            name: def.name,
            label,
            loc: def.loc,
            module: def.module,
            ...(def.base ? { base: def.base } : {}),
            members: def.members,
            def,
          });
          break;
        case 'union':
          this.defineUnion(def, label);
          break;
        case 'alternate':
          this.define({ kind: 'alternate', name: def.name, label, loc: def.loc, def });
          break;
        case 'command': {
          const argsName = this.objectRef(
            def.data,
            implicitNames.commandArguments(def.name),
            { owner: def.name, role: 'arguments' },
            def,
          );
          this.define({
            kind: 'command',
            name: def.name,
            label,
            loc: def.loc,
            def,
            ...(argsName ? { argsName } : {}),
          });
          break;
        }
        case 'event': {
          const dataName = this.objectRef(
            def.data,
            implicitNames.eventData(def.name),
            { owner: def.name, role: 'event-data' },
            def,
          );
          this.define({
            kind: 'event',
            name: def.name,
            label,
            loc: def.loc,
            def,
            ...(dataName ? { dataName } : {}),
          });
          break;
        }
      }
    }
  }

  private defineUnion(def: NUnion, label: string): void {
    if (!def.legacySimple) {
      const baseName = this.objectRef(
        def.base,
        implicitNames.unionBase(def.name),
        { owner: def.name, role: 'base' },
        def,
      );
      const discriminator = def.discriminator ?? { name: '', loc: def.loc };
      this.define({
        kind: 'union',
        name: def.name,
        label,
        loc: def.loc,
        def,
        ...(baseName ? { baseName } : {}),
        discriminator,
        branchTypes: def.branches.map((b) => b.type),
      });
      return;
    }
    // Legacy simple union: normalize like QEMU's generator did before 6.2.
    const kindName = implicitNames.simpleUnionKind(def.name);
    const kindOrigin: ImplicitOrigin = { owner: def.name, role: 'kind-enum' };
    this.define({
      kind: 'enum',
      name: kindName,
      label: implicitLabel('enum', kindName, kindOrigin),
      loc: def.loc,
      module: def.module,
      values: def.branches.map((b) => ({
        name: b.name,
        ...(b.if ? { if: b.if } : {}),
        features: [],
        loc: b.loc,
      })),
      implicit: kindOrigin,
      ...(def.if ? { if: def.if } : {}),
    });
    const baseName = implicitNames.unionBase(def.name);
    const typeMember: NMember = {
      name: 'type',
      optional: false,
      type: { ref: { kind: 'named', name: kindName }, loc: def.loc },
      features: [],
      loc: def.loc,
    };
    this.implicitStruct(
      baseName,
      { owner: def.name, role: 'base' },
      [typeMember],
      def.loc,
      def.module,
      def.if,
    );
    const branchTypes = def.branches.map((b): NTypeRef => {
      const wrapper = this.implicitStruct(
        implicitNames.simpleUnionWrapper(def.name, b.name),
        { owner: def.name, role: 'wrapper', detail: b.name },
        [{ name: 'data', optional: false, type: b.type, features: [], loc: b.loc }],
        b.loc,
        def.module,
        b.if,
      );
      return { ref: { kind: 'named', name: wrapper.name }, loc: b.type.loc };
    });
    this.define({
      kind: 'union',
      name: def.name,
      label,
      loc: def.loc,
      def,
      baseName,
      discriminator: { name: 'type', loc: def.loc },
      branchTypes,
    });
  }

  /** The type (not command or event) called `name`, if any. */
  lookupType(name: string): TypeEntity | undefined {
    const entity = this.entities.get(name);
    return entity && entity.kind !== 'command' && entity.kind !== 'event' ? entity : undefined;
  }
}
