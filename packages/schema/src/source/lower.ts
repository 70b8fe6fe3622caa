/**
 * Semantic checks (what QEMU's scripts/qapi/schema.py does: type resolution, kinds of
 * referenced types, member clashes, discriminators, alternates, command/event argument
 * rules, doc comment cross-checks) and lowering of the checked definitions into the IR.
 */
import { SchemaError } from '../errors.js';
import type {
  AlternateDef,
  Alternative,
  CommandDef,
  Condition,
  DefinitionDoc,
  DocSection,
  EnumDef,
  EnumValue,
  EventDef,
  Feature,
  ImplicitOrigin,
  Member,
  Schema,
  SourceLocation,
  StructDef,
  TypeDef,
  TypeRef,
  UnionDef,
} from '../model/ir.js';
import { BUILTIN_TYPES } from '../model/ir.js';
import { implicitNames } from '../model/naming.js';
import type { ParsedSchema, QapiDoc } from './ast.js';
import type {
  NAlternate,
  NBranch,
  NCommand,
  NDef,
  NEnum,
  NEnumValue,
  NEvent,
  NFeature,
  NMember,
  NNamedRef,
  NObjectRef,
  NStruct,
  NTypeRef,
  NUnion,
} from './check.js';
import { cName } from './names.js';

interface EntityBase {
  readonly name: string;
  /** Human-readable description for messages, e.g. `struct 'Foo'`. */
  readonly label: string;
  readonly loc?: SourceLocation;
}

interface BuiltinEntity extends EntityBase {
  readonly kind: 'builtin';
}

interface EnumEntity extends EntityBase {
  readonly kind: 'enum';
  readonly loc: SourceLocation;
  readonly module: string;
  readonly values: readonly NEnumValue[];
  readonly def?: NEnum;
  readonly implicit?: ImplicitOrigin;
  readonly if?: Condition;
}

interface StructEntity extends EntityBase {
  readonly kind: 'struct';
  readonly loc: SourceLocation;
  readonly module: string;
  readonly base?: NNamedRef;
  readonly members: readonly NMember[];
  readonly def?: NStruct;
  readonly implicit?: ImplicitOrigin;
  readonly if?: Condition;
}

interface UnionEntity extends EntityBase {
  readonly kind: 'union';
  readonly loc: SourceLocation;
  readonly def: NUnion;
  /** Name of the base struct (named or implicit); absent when the inline base is empty. */
  readonly baseName?: string;
  readonly discriminator: { readonly name: string; readonly loc: SourceLocation };
  /** Branch type names (wrappers for legacy simple unions). */
  readonly branchTypes: readonly NTypeRef[];
}

interface AlternateEntity extends EntityBase {
  readonly kind: 'alternate';
  readonly loc: SourceLocation;
  readonly def: NAlternate;
}

interface CommandEntity extends EntityBase {
  readonly kind: 'command';
  readonly loc: SourceLocation;
  readonly def: NCommand;
  readonly argsName?: string;
}

interface EventEntity extends EntityBase {
  readonly kind: 'event';
  readonly loc: SourceLocation;
  readonly def: NEvent;
  readonly dataName?: string;
}

type TypeEntity = BuiltinEntity | EnumEntity | StructEntity | UnionEntity | AlternateEntity;
type Entity = TypeEntity | CommandEntity | EventEntity;

const specialFeatures: ReadonlySet<string> = new Set(['deprecated', 'unstable']);
const maxFeatures = 64;
/** Real schemas nest bases and union branches a few levels deep; this bounds recursion. */
const maxNesting = 500;

function fail(loc: SourceLocation, message: string): never {
  throw new SchemaError(loc, message);
}

function where(loc: SourceLocation): string {
  return `${loc.file}:${loc.line}:${loc.col}`;
}

function refString(ref: TypeRef): string {
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

function implicitLabel(kind: string, name: string, origin: ImplicitOrigin): string {
  return `implicit ${kind} '${name}' for ${roleText[origin.role]} '${origin.owner}'`;
}

interface Seen {
  readonly name: string;
  /** How to describe the member in a clash message. */
  readonly describe: string;
}

/** Members keyed by C name: own entries plus a shared parent chain (bases are never copied). */
class MemberSet {
  readonly depth: number;

  constructor(
    readonly own: Map<string, Seen> = new Map(),
    readonly parent?: MemberSet,
  ) {
    this.depth = (parent?.depth ?? 0) + 1;
  }

  get(key: string): Seen | undefined {
    for (let set: MemberSet | undefined = this; set; set = set.parent) {
      const found = set.own.get(key);
      if (found) return found;
    }
    return undefined;
  }

  /** All entries, base members first. */
  entries(): [string, Seen][] {
    const chain: MemberSet[] = [];
    for (let set: MemberSet | undefined = this; set; set = set.parent) chain.push(set);
    return chain.reverse().flatMap((set) => [...set.own]);
  }
}

class Lowerer {
  private readonly entities = new Map<string, Entity>();
  /** Definition order, builtins excluded. */
  private readonly order: Entity[] = [];
  private readonly structMembers = new Map<string, MemberSet>();
  private readonly inProgress = new Set<string>();
  /** Member and feature docs that matched something, per doc. */
  private readonly connected = new Map<QapiDoc, Set<string>>();
  private readonly features = new Map<string, SourceLocation | undefined>();

  constructor(private readonly parsed: ParsedSchema) {
    for (const name of BUILTIN_TYPES) {
      this.entities.set(name, { kind: 'builtin', name, label: `built-in type '${name}'` });
    }
    for (const name of specialFeatures) this.features.set(name, undefined);
  }

  // ---- phase 1: definitions -------------------------------------------------------------

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

  // ---- phase 2: semantic checks -----------------------------------------------------------

  private lookupType(name: string): TypeEntity | undefined {
    const entity = this.entities.get(name);
    return entity && entity.kind !== 'command' && entity.kind !== 'event' ? entity : undefined;
  }

  private resolve(ref: NTypeRef, what: string): TypeEntity | undefined {
    let inner: TypeRef = ref.ref;
    while (inner.kind === 'array') inner = inner.element;
    const entity = this.lookupType(inner.name);
    if (!entity) fail(ref.loc, `${what} uses unknown type '${inner.name}'`);
    return ref.ref.kind === 'array' ? undefined : entity;
  }

  private resolveNamed(ref: NTypeRef | NNamedRef, what: string): TypeEntity {
    const typeRef: NTypeRef =
      'ref' in ref ? ref : { ref: { kind: 'named', name: ref.name }, loc: ref.loc };
    const entity = this.resolve(typeRef, what);
    if (!entity) fail(ref.loc, `${what} cannot be an array`);
    return entity;
  }

  /** Guards the recursion through bases and union branches against cycles and absurd depth. */
  private enter(entity: StructEntity | UnionEntity): void {
    if (this.inProgress.has(entity.name)) fail(entity.loc, `object ${entity.name} contains itself`);
    if (this.inProgress.size >= maxNesting) {
      fail(
        entity.loc,
        `${entity.label} nests bases and branches more than ${maxNesting} levels deep`,
      );
    }
    this.inProgress.add(entity.name);
  }

  /** Members of a struct including its base chain, keyed by C name. */
  private membersOf(entity: StructEntity): MemberSet {
    const done = this.structMembers.get(entity.name);
    if (done) return done;
    this.enter(entity);
    let parent: MemberSet | undefined;
    if (entity.base) {
      const base = this.resolveNamed(entity.base, "'base'");
      if (base.kind !== 'struct')
        fail(entity.base.loc, `'base' requires a struct type, ${base.label} isn't`);
      parent = this.membersOf(base);
      if (parent.depth >= maxNesting) {
        fail(entity.loc, `${entity.label} has more than ${maxNesting} levels of base types`);
      }
    }
    const seen = new MemberSet(new Map(), parent);
    for (const member of entity.members) {
      const key = cName(member.name);
      const previous = seen.get(key);
      if (previous) fail(member.loc, `member '${member.name}' collides with ${previous.describe}`);
      seen.own.set(key, {
        name: member.name,
        describe: this.memberDescription(member.name, entity),
      });
    }
    this.inProgress.delete(entity.name);
    this.structMembers.set(entity.name, seen);
    return seen;
  }

  private memberDescription(member: string, owner: StructEntity): string {
    if (owner.implicit?.role === 'arguments')
      return `parameter '${member}' of command '${owner.implicit.owner}'`;
    if (owner.implicit?.role === 'base')
      return `base member '${member}' of union '${owner.implicit.owner}'`;
    if (owner.implicit) return `member '${member}' of ${owner.label}`;
    return `member '${member}' of type '${owner.name}'`;
  }

  /** Members of an object type (struct, or union with each branch checked separately). */
  private checkClash(
    entity: TypeEntity,
    seen: MemberSet,
    at: SourceLocation,
    context: string,
  ): void {
    if (entity.kind === 'struct') {
      for (const [key, member] of this.membersOf(entity).entries()) {
        const previous = seen.get(key);
        if (previous) fail(at, `${context}: ${member.describe} collides with ${previous.describe}`);
      }
      return;
    }
    if (entity.kind !== 'union') return;
    this.enter(entity);
    const base = entity.baseName ? this.lookupType(entity.baseName) : undefined;
    const merged = new MemberSet(new Map(), seen);
    if (base?.kind === 'struct') {
      for (const [key, member] of this.membersOf(base).entries()) {
        const previous = merged.get(key);
        if (previous) fail(at, `${context}: ${member.describe} collides with ${previous.describe}`);
        merged.own.set(key, member);
      }
    }
    for (const ref of entity.branchTypes) {
      const branch = this.resolveNamed(ref, 'branch');
      this.checkClash(branch, merged, at, context);
    }
    this.inProgress.delete(entity.name);
  }

  private checkMember(member: NMember): void {
    this.resolve(member.type, `member '${member.name}'`);
    this.checkFeatureList(member.features);
  }

  private checkFeatureList(features: readonly NFeature[]): void {
    for (const feature of features) {
      if (!this.features.has(feature.name)) this.features.set(feature.name, feature.loc);
    }
  }

  private checkTypeFeatures(features: readonly NFeature[]): void {
    for (const feature of features) {
      if (specialFeatures.has(feature.name)) {
        fail(feature.loc, `feature '${feature.name}' is not supported for types`);
      }
    }
  }

  private checkEnum(entity: EnumEntity): void {
    if (entity.def) this.checkTypeFeatures(entity.def.features);
    const seen = new Map<string, string>();
    for (const value of entity.values) {
      const key = cName(value.name);
      const previous = seen.get(key);
      if (previous !== undefined)
        fail(value.loc, `value '${value.name}' collides with value '${previous}'`);
      seen.set(key, value.name);
      this.checkFeatureList(value.features);
    }
  }

  private checkStruct(entity: StructEntity): void {
    if (entity.def) this.checkTypeFeatures(entity.def.features);
    for (const member of entity.members) this.checkMember(member);
    this.membersOf(entity);
  }

  private enumOf(name: string): EnumEntity | undefined {
    const entity = this.lookupType(name);
    return entity?.kind === 'enum' ? entity : undefined;
  }

  private checkUnion(entity: UnionEntity): void {
    const { def } = entity;
    this.checkTypeFeatures(def.features);
    let seen = new MemberSet();
    let baseDesc = "'base'";
    if (entity.baseName) {
      const namedBase = def.base?.kind === 'named' ? def.base : undefined;
      const base = namedBase
        ? this.resolveNamed(namedBase, "'base'")
        : this.lookupType(entity.baseName);
      if (base?.kind !== 'struct') {
        fail(
          namedBase?.loc ?? def.loc,
          `'base' requires a struct type, ${base?.label ?? 'none'} isn't`,
        );
      }
      seen = this.membersOf(base);
      if (namedBase) baseDesc = `base type '${namedBase.name}'`;
    }
    const { discriminator } = entity;
    const tagSeen = seen.get(cName(discriminator.name));
    if (!tagSeen || tagSeen.name !== discriminator.name) {
      fail(
        discriminator.loc,
        `discriminator '${discriminator.name}' is not a member of ${baseDesc}`,
      );
    }
    const tag = this.findMember(entity.baseName ?? '', discriminator.name);
    const tagType = tag?.type.ref.kind === 'named' ? this.enumOf(tag.type.ref.name) : undefined;
    if (!tag || !tagType) {
      fail(
        discriminator.loc,
        `discriminator member '${discriminator.name}' of ${baseDesc} must be of enum type`,
      );
    }
    if (tag.optional) {
      fail(
        discriminator.loc,
        `discriminator member '${discriminator.name}' of ${baseDesc} must not be optional`,
      );
    }
    if (tag.if) {
      fail(
        discriminator.loc,
        `discriminator member '${discriminator.name}' of ${baseDesc} must not be conditional`,
      );
    }
    if (def.branches.length === 0 && tagType.values.length === 0)
      fail(def.loc, `union '${def.name}' has no branches`);
    const values = new Set(tagType.values.map((v) => v.name));
    this.enter(entity);
    def.branches.forEach((branch: NBranch, i: number) => {
      if (!values.has(branch.name)) {
        fail(branch.loc, `branch '${branch.name}' is not a value of ${tagType.label}`);
      }
      const ref = entity.branchTypes[i] ?? branch.type;
      const type = this.resolveNamed(ref, `branch '${branch.name}'`);
      if (type.kind !== 'struct' && type.kind !== 'union') {
        fail(ref.loc, `branch '${branch.name}' cannot use ${type.label}`);
      }
      this.checkClash(type, seen, branch.loc, `branch '${branch.name}'`);
    });
    this.inProgress.delete(entity.name);
  }

  /** Finds a member by name in a struct or its base chain. */
  private findMember(structName: string, member: string): NMember | undefined {
    for (let entity = this.lookupType(structName); entity?.kind === 'struct'; ) {
      const found = entity.members.find((m) => m.name === member);
      if (found) return found;
      entity = entity.base ? this.lookupType(entity.base.name) : undefined;
    }
    return undefined;
  }

  private checkAlternate(entity: AlternateEntity): void {
    const { def } = entity;
    this.checkTypeFeatures(def.features);
    const names = new Map<string, string>();
    const seenTypes = new Map<string, string>();
    for (const branch of def.branches) {
      const key = cName(branch.name);
      const previous = names.get(key);
      if (previous !== undefined)
        fail(branch.loc, `branch '${branch.name}' collides with branch '${previous}'`);
      names.set(key, branch.name);
      const type = this.resolve(branch.type, `branch '${branch.name}'`);
      const conflicting = new Set<string>();
      if (!type) {
        conflicting.add('array');
      } else if (type.kind === 'builtin') {
        const json = builtinJson(type.name);
        if (json === 'value') fail(branch.loc, `branch '${branch.name}' cannot use ${type.label}`);
        conflicting.add(json);
        if (json === 'string') {
          conflicting.add('number');
          conflicting.add('boolean');
        }
      } else if (type.kind === 'enum') {
        conflicting.add('string');
        for (const value of type.values) {
          if (value.name === 'on' || value.name === 'off') conflicting.add('boolean');
          if (/^[-+0-9.]/.test(value.name)) conflicting.add('number');
        }
      } else if (type.kind === 'struct' || type.kind === 'union') {
        conflicting.add('object');
      } else {
        fail(branch.loc, `branch '${branch.name}' cannot use ${type.label}`);
      }
      for (const json of conflicting) {
        const other = seenTypes.get(json);
        if (other !== undefined) {
          fail(branch.loc, `branch '${branch.name}' can't be distinguished from '${other}'`);
        }
        seenTypes.set(json, branch.name);
      }
    }
  }

  private argsEntity(
    ref: NObjectRef | undefined,
    implicitName: string | undefined,
    what: string,
    boxed: boolean,
  ): StructEntity | UnionEntity | undefined {
    if (!ref) return undefined;
    if (ref.kind === 'inline') {
      const entity = implicitName ? this.lookupType(implicitName) : undefined;
      return entity?.kind === 'struct' ? entity : undefined;
    }
    const entity = this.resolveNamed(ref, what);
    if (entity.kind !== 'struct' && entity.kind !== 'union')
      fail(ref.loc, `${what} cannot take ${entity.label}`);
    if (entity.kind === 'union' && !boxed) {
      fail(ref.loc, `${what} can take ${entity.label} only with 'boxed': true`);
    }
    return entity;
  }

  private hasConditionalMembers(entity: StructEntity | UnionEntity): boolean {
    const structName = entity.kind === 'struct' ? entity.name : entity.baseName;
    for (let at = structName ? this.lookupType(structName) : undefined; at?.kind === 'struct'; ) {
      if (at.members.some((m) => m.if)) return true;
      at = at.base ? this.lookupType(at.base.name) : undefined;
    }
    return false;
  }

  private checkCommand(entity: CommandEntity): void {
    const { def } = entity;
    const args = this.argsEntity(def.data, entity.argsName, "command's 'data'", def.boxed);
    if (args && !def.boxed && this.hasConditionalMembers(args)) {
      fail(def.data?.loc ?? def.loc, "conditional command arguments require 'boxed': true");
    }
    if (def.returns) {
      const returns = def.returns;
      let inner: TypeRef = returns.ref;
      while (inner.kind === 'array') inner = inner.element;
      const type = this.resolve(returns, "command's 'returns'");
      const element = type ?? this.lookupType(inner.name);
      if (!this.parsed.pragmas.commandReturnsExceptions.includes(def.name)) {
        if (element?.kind !== 'struct' && element?.kind !== 'union') {
          const label = type ? type.label : `array type '${refString(returns.ref)}'`;
          fail(returns.loc, `command's 'returns' cannot take ${label}`);
        }
      }
    }
  }

  private checkEvent(entity: EventEntity): void {
    const { def } = entity;
    const data = this.argsEntity(def.data, entity.dataName, "event's 'data'", def.boxed);
    if (data && !def.boxed && this.hasConditionalMembers(data)) {
      fail(def.data?.loc ?? def.loc, "conditional event arguments require 'boxed': true");
    }
  }

  checkAll(): void {
    for (const entity of this.order) {
      switch (entity.kind) {
        case 'builtin':
          break;
        case 'enum':
          this.checkEnum(entity);
          break;
        case 'struct':
          this.checkStruct(entity);
          break;
        case 'union':
          this.checkUnion(entity);
          break;
        case 'alternate':
          this.checkAlternate(entity);
          break;
        case 'command':
          this.checkCommand(entity);
          break;
        case 'event':
          this.checkEvent(entity);
          break;
      }
      if ('def' in entity && entity.def && 'meta' in entity.def) {
        this.checkFeatureList(entity.def.features);
        this.connectDoc(entity.def);
      }
    }
    const all = [...this.features.entries()];
    const extra = all[maxFeatures];
    if (extra) {
      fail(
        extra[1] ?? { file: this.parsed.mainFile, line: 1, col: 1 },
        `maximum of ${maxFeatures} schema features is permitted`,
      );
    }
    this.checkDocs();
  }

  // ---- doc comments -----------------------------------------------------------------------

  private connectFeatures(doc: QapiDoc, features: readonly NFeature[], used: Set<string>): void {
    for (const feature of features) {
      const documented = doc.sections.some((s) => s.kind === 'feature' && s.name === feature.name);
      if (!documented) fail(feature.loc, `feature '${feature.name}' lacks documentation`);
      used.add(`feature:${feature.name}`);
    }
  }

  private connectMembers(doc: QapiDoc, members: readonly NMember[], used: Set<string>): void {
    for (const member of members) {
      used.add(`member:${member.name}`);
      this.connectFeatures(doc, member.features, used);
    }
  }

  private implicitMembers(name: string | undefined): readonly NMember[] {
    const entity = name ? this.lookupType(name) : undefined;
    return entity?.kind === 'struct' && entity.implicit ? entity.members : [];
  }

  private connectDoc(def: NDef): void {
    const { doc } = def;
    if (!doc) return;
    const used = new Set<string>();
    this.connectFeatures(doc, def.features, used);
    switch (def.meta) {
      case 'enum':
        for (const value of def.values) {
          used.add(`member:${value.name}`);
          this.connectFeatures(doc, value.features, used);
        }
        break;
      case 'struct':
        this.connectMembers(doc, def.members, used);
        break;
      case 'union': {
        const entity = this.entities.get(def.name);
        if (entity?.kind === 'union')
          this.connectMembers(doc, this.implicitMembers(entity.baseName), used);
        if (def.legacySimple) {
          for (const branch of def.branches) used.add(`member:${branch.name}`);
          used.add('member:data');
        }
        break;
      }
      case 'alternate':
        for (const branch of def.branches) used.add(`member:${branch.name}`);
        break;
      case 'command':
      case 'event': {
        const entity = this.entities.get(def.name);
        const implicit =
          entity?.kind === 'command'
            ? entity.argsName
            : entity?.kind === 'event'
              ? entity.dataName
              : undefined;
        this.connectMembers(doc, this.implicitMembers(implicit), used);
        break;
      }
    }
    this.connected.set(doc, used);
  }

  private checkDocs(): void {
    for (const doc of this.parsed.docs) {
      const used = this.connected.get(doc) ?? new Set<string>();
      for (const section of doc.sections) {
        if (section.kind !== 'member' && section.kind !== 'feature') continue;
        if (!used.has(`${section.kind}:${section.name}`)) {
          fail(section.loc, `documented ${section.kind} '${section.name}' does not exist`);
        }
      }
    }
  }

  // ---- phase 3: IR ------------------------------------------------------------------------

  build(): Schema {
    const types = new Map<string, TypeDef>();
    const commands = new Map<string, CommandDef>();
    const events = new Map<string, EventDef>();
    for (const entity of this.order) {
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
    const owner = this.entities.get(origin.owner);
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

function builtinJson(name: string): 'string' | 'number' | 'boolean' | 'null' | 'value' {
  switch (name) {
    case 'str':
    case 'QType':
      return 'string';
    case 'bool':
      return 'boolean';
    case 'null':
      return 'null';
    case 'any':
      return 'value';
    default:
      return 'number';
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

/** Semantic checks and lowering of checked definitions into the IR. */
export function lowerSchema(parsed: ParsedSchema, defs: readonly NDef[]): Schema {
  const lowerer = new Lowerer(parsed);
  lowerer.defineAll(defs);
  lowerer.checkAll();
  return lowerer.build();
}
