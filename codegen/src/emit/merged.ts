/**
 * The merged view of several QEMU versions: for every command, argument, event, enum value,
 * union branch and type member, the versions that have it (computed by diffing the schemas,
 * not taken from docs) and the versions where it is deprecated.
 *
 * Emits, next to the per-version bindings (`../qemu-<ver>/`):
 * - `versions.generated.ts`: `QemuVersion`, `qemuVersions`, `VersionMaps` (each version's maps);
 * - one `<module>.generated.ts` per QAPI module with merged types generic over a version set
 *   `V` — the meet of the versions' types (what every version in `V` accepts), built from
 *   `MeetObject`/`MeetEnum`/`MeetUnion`/`MeetAlternate` of the runtime — with JSDoc saying
 *   where each part exists ("QEMU 7.0+; deprecated in 8.0");
 * - `qmp-merged.generated.ts`: `MergedCommands<V>`, `CommandsFor<V>`, `EventsFor<V>`, and the
 *   type-level availability maps the typed capability checks narrow with;
 * - `availability.generated.ts`: the same availability as run-time data (`availability`).
 */

import type {
  CommandDef,
  EventDef,
  FeatureSets,
  Schema,
  Tracked,
  TypeDef,
  TypeRef,
  VersionedSchema,
  VersionSet,
} from '@qmpkit/schema';
import {
  allMembers,
  INTEGER_BUILTINS,
  isBuiltin,
  isDeprecated,
  noteFeatures,
  trackAvailability,
  typeRefToString,
  VersionOrder,
} from '@qmpkit/schema';
import ts from 'typescript';
import { CodegenError } from '../errors.js';
import {
  builtinTypeNode,
  exportAll,
  exportedInterface,
  FILE_SUFFIX,
  FileBuilder,
  generatedSpecifier,
  getOrCreate,
  importDeclaration,
  jsDoc,
  literal,
  moduleStem,
  preamble,
  printFile,
  prop,
  sortedEntries,
} from './kit.js';

const f = ts.factory;
const v = () => f.createTypeReferenceNode('V');
const exportModifiers = () => [f.createModifier(ts.SyntaxKind.ExportKeyword)];
const typeParam = (name: string, constraint: ts.TypeNode) =>
  f.createTypeParameterDeclaration(undefined, name, constraint);
const KIND_TITLES = { struct: 'Struct', union: 'Union', enum: 'Enum', alternate: 'Alternate' };

export type VersionInput = VersionedSchema;

export interface MergedEmitOptions {
  readonly runtimeImport: string;
  readonly generatorVersion: string;
}

/** One member of an object type across versions. */
interface MemberAcross {
  readonly in: Set<string>;
  readonly req: Set<string>;
  readonly deprecated: Set<string>;
  readonly types: Map<string, TypeRef>;
}

/** One command across versions, as the merged tables need it. */
interface CommandAcross {
  /** version → the arguments type (`undefined`: the command takes none there) */
  readonly args: Map<string, TypeRef | undefined>;
  /** Versions that allow the command out of band. */
  readonly oob: Set<string>;
  /** argument (`member`, `case.member`) → versions that have it / deprecate it */
  readonly argVersions: Map<string, Set<string>>;
  readonly argDeprecated: Map<string, Set<string>>;
  /** enum-typed argument → value → versions that accept it */
  readonly valueVersions: Map<string, Map<string, Set<string>>>;
}

/** Version sets rendered as types (`'7.0' | '7.1'`, `QemuVersion`, `never`). */
class Availability extends VersionOrder {
  /** The set as a union of string literals (`never` when empty). */
  node(set: VersionSet): ts.TypeNode {
    const present = this.present(set);
    if (present.length === 0) return f.createKeywordTypeNode(ts.SyntaxKind.NeverKeyword);
    if (present.length === this.order.length) return f.createTypeReferenceNode('QemuVersion');
    const lits = present.map((v) => f.createLiteralTypeNode(f.createStringLiteral(v)));
    return lits.length === 1 ? lits[0]! : f.createUnionTypeNode(lits);
  }
}

class MergedEmitter {
  private readonly av: Availability;
  private readonly versions: readonly VersionInput[];
  private readonly types: ReadonlyMap<string, Tracked<TypeDef>>;
  private readonly commands: ReadonlyMap<string, Tracked<CommandDef>>;
  private readonly events: ReadonlyMap<string, Tracked<EventDef>>;
  /** type name → stem of the merged file holding it */
  private readonly home = new Map<string, string>();
  private readonly files = new Map<string, FileBuilder>();
  /** Run-time availability data. */
  private readonly data = {
    commands: {} as Record<string, number>,
    events: {} as Record<string, number>,
    arguments: {} as Record<string, number>,
    members: {} as Record<string, number>,
    values: {} as Record<string, number>,
    branches: {} as Record<string, number>,
    deprecated: {} as Record<string, number>,
    features: {} as Record<string, number>,
  };
  /** Features of types (`Type`), their members (`Type.member`) and enum values (`Enum.value`). */
  private readonly typeFeatures: FeatureSets = new Map();
  /**
   * Features of what a client can ask about: commands and events (`name`), arguments
   * (`cmd.member`, `cmd.case.member`) and values of enum-typed arguments (`cmd.member=value`).
   */
  private readonly subjectFeatures: FeatureSets = new Map();

  constructor(
    versions: readonly VersionInput[],
    private readonly options: MergedEmitOptions,
  ) {
    if (versions.length === 0) throw new CodegenError('the merged view needs at least one version');
    const seen = new Set<string>();
    for (const v of versions) {
      if (seen.has(v.version)) throw new CodegenError(`version ${v.version} is given twice`);
      seen.add(v.version);
    }
    this.versions = versions;
    this.av = new Availability(versions.map((v) => v.version));
    const tracked = trackAvailability(versions);
    this.types = tracked.types;
    this.commands = tracked.commands;
    this.events = tracked.events;
    const newest = versions.at(-1)!.version;
    for (const [name, t] of this.types) {
      const def = t.byVersion.get(newest) ?? [...t.byVersion.values()].at(-1)!;
      this.home.set(name, moduleStem(def.module));
    }
  }

  private schemaOf(version: string): Schema {
    return this.versions.find((v) => v.version === version)!.schema;
  }

  private file(stem: string): FileBuilder {
    return getOrCreate(this.files, stem, () => {
      const file = new FileBuilder(stem);
      file.importType('versions', 'QemuVersion');
      return file;
    });
  }

  private versionParam(): ts.TypeParameterDeclaration {
    return f.createTypeParameterDeclaration(
      undefined,
      'V',
      f.createTypeReferenceNode('QemuVersion'),
    );
  }

  /** A type reference rendered for the version parameter expression `param`. */
  private render(ref: TypeRef, param: ts.TypeNode, stem: string): ts.TypeNode {
    if (ref.kind === 'array') {
      const el = this.render(ref.element, param, stem);
      return f.createArrayTypeNode(
        ts.isUnionTypeNode(el) || ts.isIntersectionTypeNode(el) || ts.isConditionalTypeNode(el)
          ? f.createParenthesizedType(el)
          : el,
      );
    }
    const name = ref.name;
    if (isBuiltin(name)) return builtinTypeNode(name);
    const home = this.home.get(name);
    if (home === undefined)
      throw new CodegenError(`merged view: reference to unknown type '${name}'`);
    if (home !== stem) this.file(stem).importType(home, name);
    return f.createTypeReferenceNode(name, [param]);
  }

  /**
   * The meet of per-version type references: one reference for `V` when all versions agree,
   * else an intersection of each reference for the versions of `V` that used it.
   */
  private renderGrouped(
    byVersion: ReadonlyMap<string, TypeRef | undefined>,
    stem: string,
  ): ts.TypeNode {
    const groups = new Map<string, { ref: TypeRef | undefined; versions: Set<string> }>();
    for (const [version, ref] of byVersion) {
      const key =
        ref === undefined ? '' : typeRefToString(ref).replace(/^(u?int(8|16|32|64)?|size)$/, 'int');
      getOrCreate(groups, key, () => ({ ref, versions: new Set<string>() })).versions.add(version);
    }
    const v = f.createTypeReferenceNode('V');
    if (groups.size === 1) {
      const only = [...groups.values()][0]!;
      return only.ref === undefined
        ? f.createKeywordTypeNode(ts.SyntaxKind.UnknownKeyword)
        : this.render(only.ref, v, stem);
    }
    const parts = [...groups.values()].map(({ ref, versions }) => {
      if (ref === undefined) return f.createKeywordTypeNode(ts.SyntaxKind.UnknownKeyword);
      const sub = f.createTypeReferenceNode('Extract', [v, this.av.node(versions)]);
      // No version of V used this reference: no constraint from it.
      return f.createConditionalTypeNode(
        f.createTupleTypeNode([sub]),
        f.createTupleTypeNode([f.createKeywordTypeNode(ts.SyntaxKind.NeverKeyword)]),
        f.createKeywordTypeNode(ts.SyntaxKind.UnknownKeyword),
        this.render(ref, sub, stem),
      );
    });
    return f.createIntersectionTypeNode(
      parts.map((p) => (ts.isConditionalTypeNode(p) ? f.createParenthesizedType(p) : p)),
    );
  }

  /** `{ member: { in; req; t } }`; notes each member's availability under `path.member`. */
  private memberTable(members: Map<string, MemberAcross>, stem: string, path: string) {
    const entries = [...members.entries()].map(([name, m]) => {
      this.data.members[`${path}.${name}`] = this.av.mask(m.in);
      if (m.deprecated.size > 0)
        this.data.deprecated[`${path}.${name}`] = this.av.mask(m.deprecated);
      return jsDoc(prop(name, this.versioned(m.in, this.renderGrouped(m.types, stem), m.req)), [
        this.av.describe(m.in, m.deprecated),
      ]);
    });
    return f.createTypeLiteralNode(entries);
  }

  /** The members of object type `name` (without `exclude`) across `versions`. */
  private collectMembers(name: string, versions: Iterable<string>, exclude?: string) {
    const out = new Map<string, MemberAcross>();
    for (const version of versions) {
      for (const m of allMembers(this.schemaOf(version), name) ?? []) {
        if (m.name === exclude) continue;
        const e = getOrCreate(out, m.name, () => ({
          in: new Set<string>(),
          req: new Set<string>(),
          deprecated: new Set<string>(),
          types: new Map<string, TypeRef>(),
        }));
        e.in.add(version);
        if (!m.optional) e.req.add(version);
        if (isDeprecated(m.features)) e.deprecated.add(version);
        noteFeatures(this.typeFeatures, `${name}.${m.name}`, version, m.features);
        e.types.set(version, m.type);
      }
    }
    return out;
  }

  /** `export type <Name><V extends QemuVersion> = Meet…<V, …>` for one named type. */
  private emitType(name: string, t: Tracked<TypeDef>): void {
    const stem = this.home.get(name)!;
    const kind = [...t.byVersion.values()].at(-1)!.kind;
    // Versions where the type has the newest kind; others (rare kind changes) are left out.
    const versions = [...t.byVersion.entries()].filter(([, d]) => d.kind === kind).map(([v]) => v);
    const header = [
      `${KIND_TITLES[kind]} \`${name}\` over the QEMU versions \`V\` (what all of them accept). ${this.av.describe(t.in, t.deprecated)}.`,
    ];
    if (versions.length < t.in.size)
      header.push(
        `(Other kinds in ${[...t.in].filter((v) => !versions.includes(v)).join(', ')} are not merged.)`,
      );
    for (const [v, def] of t.byVersion) noteFeatures(this.typeFeatures, name, v, def.features);
    const body = {
      enum: () => this.enumBody(name, t, versions),
      struct: () => this.structBody(name, versions, stem),
      union: () => this.unionBody(name, t, versions, stem),
      alternate: () => this.alternateBody(t, versions, stem),
    }[kind]();
    this.file(stem).statements.push(
      jsDoc(
        f.createTypeAliasDeclaration(exportModifiers(), name, [this.versionParam()], body),
        header,
      ),
    );
  }

  /** `{ in: <versions>; t: <type> }`: one member, branch or alternative of a merged type. */
  private versioned(set: VersionSet, t: ts.TypeNode, req?: VersionSet): ts.TypeLiteralNode {
    return f.createTypeLiteralNode([
      prop('in', this.av.node(set)),
      ...(req === undefined ? [] : [prop('req', this.av.node(req))]),
      prop('t', t),
    ]);
  }

  /** `MeetEnum<V, { value: <versions> }>`; notes each value's availability and features. */
  private enumBody(name: string, t: Tracked<TypeDef>, versions: readonly string[]): ts.TypeNode {
    this.file(this.home.get(name)!).importRuntimeType('MeetEnum');
    const values = new Map<string, { in: Set<string>; deprecated: Set<string> }>();
    for (const v of versions) {
      const def = t.byVersion.get(v)!;
      if (def.kind !== 'enum') continue;
      for (const value of def.values) {
        const e = getOrCreate(values, value.name, () => ({
          in: new Set<string>(),
          deprecated: new Set<string>(),
        }));
        e.in.add(v);
        if (isDeprecated(value.features)) e.deprecated.add(v);
        noteFeatures(this.typeFeatures, `${name}.${value.name}`, v, value.features);
      }
    }
    for (const [value, e] of values) {
      this.data.values[`${name}.${value}`] = this.av.mask(e.in);
      if (e.deprecated.size > 0)
        this.data.deprecated[`${name}.${value}`] = this.av.mask(e.deprecated);
    }
    const entries = [...values.entries()].map(([value, e]) =>
      jsDoc(prop(value, this.av.node(e.in)), [this.av.describe(e.in, e.deprecated)]),
    );
    return f.createTypeReferenceNode('MeetEnum', [v(), f.createTypeLiteralNode(entries)]);
  }

  /** `MeetObject<V, { member: { in; req; t } }>`. */
  private structBody(name: string, versions: readonly string[], stem: string): ts.TypeNode {
    this.file(stem).importRuntimeType('MeetObject');
    const members = this.memberTable(this.collectMembers(name, versions), stem, name);
    return f.createTypeReferenceNode('MeetObject', [v(), members]);
  }

  /** `MeetUnion<V, 'tag', MeetObject<V, base>, { case: { in; t } }>`. */
  private unionBody(
    name: string,
    t: Tracked<TypeDef>,
    versions: readonly string[],
    stem: string,
  ): ts.TypeNode {
    const file = this.file(stem);
    file.importRuntimeType('MeetUnion');
    file.importRuntimeType('MeetObject');
    const def = [...t.byVersion.values()].at(-1)!;
    if (def.kind !== 'union') throw new CodegenError('unreachable');
    const tag = def.discriminator;
    const base = this.memberTable(this.collectMembers(name, versions, tag), stem, name);
    const branches = this.collectBranches(t, versions);
    for (const [c, e] of branches) this.data.branches[`${name}[${c}]`] = this.av.mask(e.in);
    const entries = [...branches.entries()].map(([c, e]) =>
      jsDoc(prop(c, this.versioned(e.in, this.renderGrouped(e.types, stem))), [
        this.av.describe(e.in),
      ]),
    );
    return f.createTypeReferenceNode('MeetUnion', [
      v(),
      f.createLiteralTypeNode(f.createStringLiteral(tag)),
      f.createTypeReferenceNode('MeetObject', [v(), base]),
      f.createTypeLiteralNode(entries),
    ]);
  }

  /**
   * The branches of a union across versions: every value of the discriminator's enum is a
   * branch (one without its own members has no type), with the versions that have it.
   */
  private collectBranches(t: Tracked<TypeDef>, versions: readonly string[]) {
    const branches = new Map<
      string,
      { in: Set<string>; types: Map<string, TypeRef | undefined> }
    >();
    for (const v of versions) {
      const d = t.byVersion.get(v)!;
      if (d.kind !== 'union') continue;
      const schema = this.schemaOf(v);
      const tagMember = (allMembers(schema, d.base) ?? []).find((m) => m.name === d.discriminator);
      const tagType =
        tagMember?.type.kind === 'named' ? schema.types.get(tagMember.type.name) : undefined;
      const cases =
        tagType?.kind === 'enum'
          ? tagType.values.map((x) => x.name)
          : d.branches.map((b) => b.case);
      for (const c of cases) {
        const branch = d.branches.find((b) => b.case === c);
        const e = getOrCreate(branches, c, () => ({
          in: new Set<string>(),
          types: new Map<string, TypeRef | undefined>(),
        }));
        e.in.add(v);
        e.types.set(v, branch ? { kind: 'named', name: branch.type } : undefined);
      }
    }
    return branches;
  }

  /** `MeetAlternate<V, { <json kind>: { in; t } }>`: alternatives keyed by the JSON they accept. */
  private alternateBody(t: Tracked<TypeDef>, versions: readonly string[], stem: string) {
    this.file(stem).importRuntimeType('MeetAlternate');
    const alts = new Map<string, { in: Set<string>; types: Map<string, TypeRef> }>();
    for (const v of versions) {
      const d = t.byVersion.get(v)!;
      if (d.kind !== 'alternate') continue;
      for (const a of d.alternatives) {
        const e = getOrCreate(alts, this.jsonKind(a.type, v), () => ({
          in: new Set<string>(),
          types: new Map<string, TypeRef>(),
        }));
        e.in.add(v);
        e.types.set(v, a.type);
      }
    }
    const entries = [...alts.entries()].map(([key, e]) =>
      prop(key, this.versioned(e.in, this.renderGrouped(e.types, stem))),
    );
    return f.createTypeReferenceNode('MeetAlternate', [v(), f.createTypeLiteralNode(entries)]);
  }

  /** The JSON kind an alternative accepts, used as its key across versions. */
  private jsonKind(ref: TypeRef, version: string): string {
    if (ref.kind === 'array') return 'array';
    if (isBuiltin(ref.name)) {
      if (ref.name === 'str' || ref.name === 'QType') return 'string';
      if (ref.name === 'bool') return 'boolean';
      if (ref.name === 'null') return 'null';
      if (ref.name === 'number') return 'number';
      return INTEGER_BUILTINS.has(ref.name) ? 'integer' : 'value';
    }
    const def = this.schemaOf(version).types.get(ref.name);
    return def?.kind === 'enum' ? 'string' : 'object';
  }

  /** `qmp-merged`: availability of commands, arguments, events and features; range maps. */
  private emitCommandsAndEvents(): void {
    const file = this.file('qmp-merged');
    file.importType('versions', 'QemuVersion');
    file.importType('versions', 'VersionMaps');
    this.emitCommandTables(file);
    this.emitEventTables(file);
    this.emitRangeMaps(file);
  }

  /** What one command looks like across versions: arguments, oob, argument and value sets. */
  private collectCommand(name: string, c: Tracked<CommandDef>): CommandAcross {
    const args = new Map<string, TypeRef | undefined>();
    const oob = new Set<string>();
    const argVersions = new Map<string, Set<string>>();
    const argDeprecated = new Map<string, Set<string>>();
    const valueVersions = new Map<string, Map<string, Set<string>>>();
    for (const [version, def] of c.byVersion) {
      noteFeatures(this.subjectFeatures, name, version, def.features);
      args.set(version, def.args === undefined ? undefined : { kind: 'named', name: def.args });
      if (def.allowOob) oob.add(version);
      if (def.args === undefined) continue;
      const schema = this.schemaOf(version);
      const argsDef = schema.types.get(def.args);
      const note = (key: string, type: TypeRef, features: Parameters<typeof isDeprecated>[0]) => {
        getOrCreate(argVersions, key, () => new Set<string>()).add(version);
        noteFeatures(this.subjectFeatures, `${name}.${key}`, version, features);
        if (isDeprecated(features))
          getOrCreate(argDeprecated, key, () => new Set<string>()).add(version);
        const enumDef = type.kind === 'named' ? schema.types.get(type.name) : undefined;
        if (enumDef?.kind !== 'enum') return;
        const values = getOrCreate(valueVersions, key, () => new Map<string, Set<string>>());
        for (const value of enumDef.values) {
          getOrCreate(values, value.name, () => new Set<string>()).add(version);
          noteFeatures(
            this.subjectFeatures,
            `${name}.${key}=${value.name}`,
            version,
            value.features,
          );
        }
      };
      for (const m of allMembers(schema, def.args) ?? []) note(m.name, m.type, m.features);
      if (argsDef?.kind === 'union') {
        for (const b of argsDef.branches) {
          // A branch's own features (`blockdev-add[file]` / `dynamic-auto-read-only`).
          const branchDef = schema.types.get(b.type);
          if (branchDef)
            noteFeatures(this.subjectFeatures, `${name}[${b.case}]`, version, branchDef.features);
          for (const m of allMembers(schema, b.type) ?? [])
            note(`${b.case}.${m.name}`, m.type, m.features);
        }
      }
    }
    return { args, oob, argVersions, argDeprecated, valueVersions };
  }

  /** `MergedCommands`, `CommandVersions`, `ArgumentVersions`, `ArgumentValueVersions`. */
  private emitCommandTables(file: FileBuilder): void {
    const commandEntries: ts.TypeElement[] = [];
    const versionEntries: ts.TypeElement[] = [];
    const argumentEntries: ts.TypeElement[] = [];
    const valueEntries: ts.TypeElement[] = [];
    for (const [name, c] of sortedEntries(this.commands)) {
      this.data.commands[name] = this.av.mask(c.in);
      if (c.deprecated.size > 0) this.data.deprecated[name] = this.av.mask(c.deprecated);
      const collected = this.collectCommand(name, c);
      commandEntries.push(this.mergedCommand(name, c, collected));
      versionEntries.push(prop(name, this.av.node(c.in)));
      for (const [member, values] of collected.valueVersions)
        for (const [value, set] of values)
          valueEntries.push(prop(`${name}.${member}=${value}`, this.av.node(set), true));
      if (collected.argVersions.size > 0)
        argumentEntries.push(this.commandArguments(name, collected));
    }
    file.statements.push(
      exportedInterface('MergedCommands', [this.versionParam()], commandEntries, [
        'Every command of any known QEMU version: the versions that have it (`in`), its arguments as',
        'accepted by all versions of `V` (`args`), and the versions that allow it out of band (`oob`).',
      ]),
      exportedInterface('CommandVersions', undefined, versionEntries, [
        'The versions that have each command.',
      ]),
      exportedInterface('ArgumentVersions', undefined, argumentEntries, [
        "The versions that have each argument of each command; a union branch's own members are",
        'keyed `<case>.<member>` (e.g. `nbd.open-timeout` of `blockdev-add`).',
      ]),
      exportedInterface('ArgumentValueVersions', undefined, valueEntries, [
        'For arguments of enum type, keyed `command.member=value` (`blockdev-add.driver=preallocate`):',
        'the versions that accept the value. Flat on purpose: nested lookups over generic keys are',
        'more than TypeScript can relate in a reasonable time.',
      ]),
    );
  }

  /** One entry of `MergedCommands<V>`: `{ in; args; oob }` with its availability and features. */
  private mergedCommand(
    name: string,
    c: Tracked<CommandDef>,
    { args, oob }: CommandAcross,
  ): ts.TypeElement {
    // Some versions took no arguments: sending any would fail there.
    const argsNode = [...args.values()].some((a) => a === undefined)
      ? f.createKeywordTypeNode(ts.SyntaxKind.UndefinedKeyword)
      : this.renderGrouped(args, 'qmp-merged');
    const entry = f.createTypeLiteralNode([
      prop('in', this.av.node(c.in)),
      prop('args', argsNode),
      prop('oob', this.av.node(oob)),
    ]);
    return jsDoc(prop(name, entry), [
      `\`${name}\`: ${this.av.describe(c.in, c.deprecated)}.`,
      ...this.describeFeatures(this.subjectFeatures.get(name)),
    ]);
  }

  /** One entry of `ArgumentVersions`; notes each argument's availability and deprecation. */
  private commandArguments(
    name: string,
    { argVersions, argDeprecated }: CommandAcross,
  ): ts.TypeElement {
    for (const [member, set] of argVersions) {
      this.data.arguments[`${name}.${member}`] = this.av.mask(set);
      // `deprecated` is keyed like every other table (issue: arguments were missing).
      const deprecated = argDeprecated.get(member);
      if (deprecated) this.data.deprecated[`${name}.${member}`] = this.av.mask(deprecated);
    }
    const entries = [...argVersions.entries()].map(([member, set]) =>
      prop(member, this.av.node(set)),
    );
    return prop(name, f.createTypeLiteralNode(entries));
  }

  /** `EventVersions` and `FeatureVersions` (after every subject's features are noted). */
  private emitEventTables(file: FileBuilder): void {
    const eventVersions: ts.TypeElement[] = [];
    for (const [name, e] of sortedEntries(this.events)) {
      for (const [version, def] of e.byVersion)
        noteFeatures(this.subjectFeatures, name, version, def.features);
      this.data.events[name] = this.av.mask(e.in);
      if (e.deprecated.size > 0) this.data.deprecated[name] = this.av.mask(e.deprecated);
      eventVersions.push(
        jsDoc(prop(name, this.av.node(e.in)), [this.av.describe(e.in, e.deprecated)]),
      );
    }
    const featureEntries = sortedEntries(this.subjectFeatures).map(([subject, features]) => {
      const sets = [...features.entries()].map(([feature, set]) =>
        prop(feature, this.av.node(set)),
      );
      return prop(subject, f.createTypeLiteralNode(sets));
    });
    file.statements.push(
      exportedInterface('EventVersions', undefined, eventVersions, [
        'The versions that have each event.',
      ]),
      exportedInterface('FeatureVersions', undefined, featureEntries, [
        'The QAPI features (`deprecated`, `unstable`, `allow-write-only-overlay`, …) of commands and',
        'events (`blockdev-snapshot`), their arguments (`block-commit.base`, `blockdev-add.nbd.x-dirty-bitmap`),',
        'union branches of arguments (`blockdev-add[file]`) and the values of enum-typed arguments',
        '(`object-add.qom-type=x-remote-object`): the versions',
        'where the subject carries each feature. Only subjects with a feature in some version appear.',
      ]),
    );
  }

  /**
   * `ReturnsIn`, `DataIn`, `CommandsFor<V>`, `EventsFor<V>`: the runtime's range maps
   * (`RangeReturns`, …), instantiated with this view's `VersionMaps`, `MergedCommands<V>` and
   * `EventVersions`. The machinery is the same for every schema, so it is written once there.
   */
  private emitRangeMaps(file: FileBuilder): void {
    const alias = (name: string, kParam: boolean, generic: string, extra: ts.TypeNode[]) => {
      file.importRuntimeType(generic);
      const params = [this.versionParam()];
      const args = [f.createTypeReferenceNode('VersionMaps'), v(), ...extra];
      if (kParam) params.push(typeParam('K', f.createKeywordTypeNode(ts.SyntaxKind.StringKeyword)));
      if (kParam) args.push(f.createTypeReferenceNode('K'));
      return f.createTypeAliasDeclaration(
        exportModifiers(),
        name,
        params,
        f.createTypeReferenceNode(generic, args),
      );
    };
    file.statements.push(
      jsDoc(alias('ReturnsIn', true, 'RangeReturns', []), [
        'What command `K` returns in any version of `V` (the union over the versions).',
      ]),
      jsDoc(alias('DataIn', true, 'RangeData', []), [
        'The data of event `K` in any version of `V` (the union over the versions).',
      ]),
      jsDoc(
        alias('CommandsFor', false, 'RangeCommands', [
          f.createTypeReferenceNode('MergedCommands', [v()]),
        ]),
        [
          'The `Commands` map for a set of QEMU versions: the exact bindings for one version; for a range,',
          'the commands every version has, with arguments all of them accept and the union of returns.',
        ],
      ),
      jsDoc(
        alias('EventsFor', false, 'RangeEvents', [f.createTypeReferenceNode('EventVersions')]),
        [
          'The `Events` map for a set of QEMU versions: events any of them may send, with the union of data.',
        ],
      ),
    );
  }

  /** `versions`: `QemuVersion`, `qemuVersions` and `VersionMaps` (each version's exact maps). */
  private emitVersions(): ts.Statement[] {
    const order = this.versions.map((x) => x.version);
    const namespace = (version: string) => `Qemu${version.replace('.', '_')}`;
    const literals = order.map((x) => f.createStringLiteral(x));
    const imports = order.map((version) =>
      f.createImportDeclaration(
        undefined,
        f.createImportClause(
          true,
          undefined,
          f.createNamespaceImport(f.createIdentifier(namespace(version))),
        ),
        f.createStringLiteral(`../qemu-${version}/index.generated.js`),
      ),
    );
    const qualified = (version: string, name: string) =>
      f.createTypeReferenceNode(
        f.createQualifiedName(f.createIdentifier(namespace(version)), name),
      );
    const maps = order.map((version) =>
      prop(
        version,
        f.createTypeLiteralNode([
          prop('commands', qualified(version, 'Commands')),
          prop('events', qualified(version, 'Events')),
        ]),
        true,
      ),
    );
    const versionList = f.createVariableStatement(
      exportModifiers(),
      f.createVariableDeclarationList(
        [
          f.createVariableDeclaration(
            'qemuVersions',
            undefined,
            undefined,
            f.createAsExpression(
              f.createArrayLiteralExpression(literals),
              f.createTypeReferenceNode('const'),
            ),
          ),
        ],
        ts.NodeFlags.Const,
      ),
    );
    return [
      ...imports,
      jsDoc(
        f.createTypeAliasDeclaration(
          exportModifiers(),
          'QemuVersion',
          undefined,
          f.createUnionTypeNode(literals.map((x) => f.createLiteralTypeNode(x))),
        ),
        ['The QEMU versions (`major.minor`) these bindings know.'],
      ),
      jsDoc(versionList, ['The known QEMU versions, oldest first.']),
      exportedInterface('VersionMaps', undefined, maps, [
        "Each version's exact `Commands` and `Events` maps.",
      ]),
    ];
  }

  /** JSDoc lines for a subject's features ("Feature `json-cli`: QEMU 6.2+."). */
  private describeFeatures(features: ReadonlyMap<string, VersionSet> | undefined): string[] {
    return [...(features ?? [])]
      .filter(([feature]) => feature !== 'deprecated') // already in the availability line
      .map(([feature, set]) => `Feature \`${feature}\`: ${this.av.describe(set)}.`);
  }

  /** `availability`: the run-time availability data (bit masks over `versions`). */
  private emitAvailability(): ts.Statement[] {
    const data = { versions: this.versions.map((x) => x.version), ...this.data };
    const declaration = f.createVariableStatement(
      exportModifiers(),
      f.createVariableDeclarationList(
        [
          f.createVariableDeclaration(
            'availability',
            undefined,
            f.createTypeReferenceNode('AvailabilityTables'),
            literal(data, 2),
          ),
        ],
        ts.NodeFlags.Const,
      ),
    );
    return [
      importDeclaration(['AvailabilityTables'], this.options.runtimeImport, true),
      jsDoc(declaration, [
        'Where each command, event, argument (`cmd.member`, `cmd.case.member`), type member',
        '(`Type.member`), enum value (`Enum.value`) and union branch (`Union[case]`) exists: a bit',
        'mask over `versions` (bit i = versions[i]); `deprecated` uses the same keys. `features`:',
        'where a command, event, argument, argument branch (`cmd[case]`), argument value',
        '(`cmd.member=value`), type, type member or enum value carries a QAPI feature, keyed',
        '`<key>/$<feature>` (libvirt writes it so).',
      ]),
    ];
  }

  emit(): Map<string, string> {
    for (const [name, t] of sortedEntries(this.types)) this.emitType(name, t);
    const moduleStems = [...this.files.keys()].sort();
    this.emitCommandsAndEvents();
    for (const map of [this.subjectFeatures, this.typeFeatures]) {
      for (const [key, features] of sortedEntries(map))
        for (const [feature, set] of features)
          this.data.features[`${key}/$${feature}`] = this.av.mask(set);
    }

    const head = preamble(this.options.generatorVersion, [
      `// Merged view of QEMU ${this.versions.map((x) => x.version).join(', ')}`,
    ]);
    const out = new Map<string, string>();
    out.set('versions.generated.ts', printFile(head, this.emitVersions()));
    for (const [stem, file] of sortedEntries(this.files)) {
      const statements = [...file.imports(this.options.runtimeImport), ...file.statements];
      out.set(`${stem}${FILE_SUFFIX}`, printFile(head, statements));
    }
    out.set('availability.generated.ts', printFile(head, this.emitAvailability()));
    const index = [
      ...['versions', 'qmp-merged', 'availability'].map((stem) =>
        exportAll(generatedSpecifier(stem)),
      ),
      ...moduleStems.map((stem) => exportAll(generatedSpecifier(stem))),
    ];
    out.set('index.generated.ts', printFile(head, index));
    return out;
  }
}

/** Emits the merged view of several versions (oldest first). */
export function emitMerged(
  versions: readonly VersionInput[],
  options: MergedEmitOptions,
): Map<string, string> {
  return new MergedEmitter(versions, options).emit();
}
