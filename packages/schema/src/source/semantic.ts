/**
 * Semantic checks (what QEMU's scripts/qapi/schema.py does after parsing): type resolution,
 * kinds of referenced types, member clashes, union discriminators and branches, alternate
 * distinguishability, command/event argument rules, feature limits and doc comment
 * cross-checks. Runs over the entity table; throws `SchemaError` at the first problem.
 */
import type { SourceLocation, TypeRef } from '../model/ir.js';
import type { ParsedSchema, QapiDoc } from './ast.js';
import type { NBranch, NDef, NFeature, NMember, NNamedRef, NObjectRef, NTypeRef } from './check.js';
import {
  type AlternateEntity,
  type CommandEntity,
  type EntityTable,
  type EnumEntity,
  type EventEntity,
  fail,
  refString,
  type StructEntity,
  type TypeEntity,
  type UnionEntity,
} from './entities.js';
import { cName } from './names.js';

const specialFeatures: ReadonlySet<string> = new Set(['deprecated', 'unstable']);
const maxFeatures = 64;
/** Real schemas nest bases and union branches a few levels deep; this bounds recursion. */
const maxNesting = 500;

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

class SemanticChecker {
  private readonly structMembers = new Map<string, MemberSet>();
  private readonly inProgress = new Set<string>();
  /** Member and feature docs that matched something, per doc. */
  private readonly connected = new Map<QapiDoc, Set<string>>();
  private readonly features = new Map<string, SourceLocation | undefined>();

  constructor(
    private readonly parsed: ParsedSchema,
    private readonly table: EntityTable,
  ) {
    for (const name of specialFeatures) this.features.set(name, undefined);
  }

  private lookupType(name: string): TypeEntity | undefined {
    return this.table.lookupType(name);
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
    const needBoxed = this.parsed.rules.conditionalArgumentsNeedBoxed;
    if (needBoxed && args && !def.boxed && this.hasConditionalMembers(args)) {
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
    const needBoxed = this.parsed.rules.conditionalArgumentsNeedBoxed;
    if (needBoxed && data && !def.boxed && this.hasConditionalMembers(data)) {
      fail(def.data?.loc ?? def.loc, "conditional event arguments require 'boxed': true");
    }
  }

  checkAll(): void {
    for (const entity of this.table.order) {
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
        const entity = this.table.entities.get(def.name);
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
        const entity = this.table.entities.get(def.name);
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

/** Runs the semantic checks over a built entity table, in definition order, then the docs. */
export function checkSemantics(parsed: ParsedSchema, table: EntityTable): void {
  new SemanticChecker(parsed, table).checkAll();
}
