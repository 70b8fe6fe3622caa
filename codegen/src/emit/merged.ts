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
  propertyName,
  sortedEntries,
} from './kit.js';

const f = ts.factory;
const v = () => f.createTypeReferenceNode('V');
const exportModifiers = () => [f.createModifier(ts.SyntaxKind.ExportKeyword)];

export type VersionInput = VersionedSchema;

export interface MergedEmitOptions {
  readonly runtimeImport: string;
  readonly generatorVersion: string;
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

  private memberTable(
    members: Map<
      string,
      { in: Set<string>; req: Set<string>; deprecated: Set<string>; types: Map<string, TypeRef> }
    >,
    stem: string,
    path: string,
  ): ts.TypeLiteralNode {
    return f.createTypeLiteralNode(
      [...members.entries()].map(([name, m]) => {
        this.data.members[`${path}.${name}`] = this.av.mask(m.in);
        if (m.deprecated.size > 0)
          this.data.deprecated[`${path}.${name}`] = this.av.mask(m.deprecated);
        return jsDoc(
          f.createPropertySignature(
            undefined,
            propertyName(name),
            undefined,
            f.createTypeLiteralNode([
              f.createPropertySignature(undefined, 'in', undefined, this.av.node(m.in)),
              f.createPropertySignature(undefined, 'req', undefined, this.av.node(m.req)),
              f.createPropertySignature(
                undefined,
                't',
                undefined,
                this.renderGrouped(m.types, stem),
              ),
            ]),
          ),
          [this.av.describe(m.in, m.deprecated)],
        );
      }),
    );
  }

  private collectMembers(name: string, versions: Iterable<string>, exclude?: string) {
    const out = new Map<
      string,
      { in: Set<string>; req: Set<string>; deprecated: Set<string>; types: Map<string, TypeRef> }
    >();
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

  private emitType(name: string, t: Tracked<TypeDef>): void {
    const stem = this.home.get(name)!;
    const file = this.file(stem);
    const newest = [...t.byVersion.entries()].at(-1)!;
    const kind = newest[1].kind;
    // Versions where the type has the newest kind; others (rare kind changes) are left out.
    const versions = [...t.byVersion.entries()].filter(([, d]) => d.kind === kind).map(([v]) => v);
    const header = [
      `${kind === 'struct' ? 'Struct' : kind === 'union' ? 'Union' : kind === 'enum' ? 'Enum' : 'Alternate'} \`${name}\` over the QEMU versions \`V\` (what all of them accept). ${this.av.describe(t.in, t.deprecated)}.`,
    ];
    if (versions.length < t.in.size)
      header.push(
        `(Other kinds in ${[...t.in].filter((v) => !versions.includes(v)).join(', ')} are not merged.)`,
      );
    for (const [v, def] of t.byVersion) noteFeatures(this.typeFeatures, name, v, def.features);
    let body: ts.TypeNode;
    switch (kind) {
      case 'enum': {
        file.importRuntimeType('MeetEnum');
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
        body = f.createTypeReferenceNode('MeetEnum', [
          f.createTypeReferenceNode('V'),
          f.createTypeLiteralNode(
            [...values.entries()].map(([value, e]) =>
              jsDoc(
                f.createPropertySignature(
                  undefined,
                  propertyName(value),
                  undefined,
                  this.av.node(e.in),
                ),
                [this.av.describe(e.in, e.deprecated)],
              ),
            ),
          ),
        ]);
        break;
      }
      case 'struct': {
        file.importRuntimeType('MeetObject');
        body = f.createTypeReferenceNode('MeetObject', [
          f.createTypeReferenceNode('V'),
          this.memberTable(this.collectMembers(name, versions), stem, name),
        ]);
        break;
      }
      case 'union': {
        file.importRuntimeType('MeetUnion');
        file.importRuntimeType('MeetObject');
        const def = newest[1];
        if (def.kind !== 'union') throw new CodegenError('unreachable');
        const tag = def.discriminator;
        const base = this.memberTable(this.collectMembers(name, versions, tag), stem, name);
        const branches = new Map<
          string,
          { in: Set<string>; types: Map<string, TypeRef | undefined> }
        >();
        for (const v of versions) {
          const d = t.byVersion.get(v)!;
          if (d.kind !== 'union') continue;
          const schema = this.schemaOf(v);
          const tagMember = (allMembers(schema, d.base) ?? []).find(
            (m) => m.name === d.discriminator,
          );
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
        for (const [c, e] of branches) this.data.branches[`${name}[${c}]`] = this.av.mask(e.in);
        body = f.createTypeReferenceNode('MeetUnion', [
          f.createTypeReferenceNode('V'),
          f.createLiteralTypeNode(f.createStringLiteral(tag)),
          f.createTypeReferenceNode('MeetObject', [f.createTypeReferenceNode('V'), base]),
          f.createTypeLiteralNode(
            [...branches.entries()].map(([c, e]) =>
              jsDoc(
                f.createPropertySignature(
                  undefined,
                  propertyName(c),
                  undefined,
                  f.createTypeLiteralNode([
                    f.createPropertySignature(undefined, 'in', undefined, this.av.node(e.in)),
                    f.createPropertySignature(
                      undefined,
                      't',
                      undefined,
                      this.renderGrouped(e.types, stem),
                    ),
                  ]),
                ),
                [this.av.describe(e.in)],
              ),
            ),
          ),
        ]);
        break;
      }
      case 'alternate': {
        file.importRuntimeType('MeetAlternate');
        const alts = new Map<string, { in: Set<string>; types: Map<string, TypeRef> }>();
        for (const v of versions) {
          const d = t.byVersion.get(v)!;
          if (d.kind !== 'alternate') continue;
          for (const a of d.alternatives) {
            const key = this.jsonKind(a.type, v);
            const e = getOrCreate(alts, key, () => ({
              in: new Set<string>(),
              types: new Map<string, TypeRef>(),
            }));
            e.in.add(v);
            e.types.set(v, a.type);
          }
        }
        body = f.createTypeReferenceNode('MeetAlternate', [
          f.createTypeReferenceNode('V'),
          f.createTypeLiteralNode(
            [...alts.entries()].map(([key, e]) =>
              f.createPropertySignature(
                undefined,
                propertyName(key),
                undefined,
                f.createTypeLiteralNode([
                  f.createPropertySignature(undefined, 'in', undefined, this.av.node(e.in)),
                  f.createPropertySignature(
                    undefined,
                    't',
                    undefined,
                    this.renderGrouped(e.types, stem),
                  ),
                ]),
              ),
            ),
          ),
        ]);
        break;
      }
    }
    file.statements.push(
      jsDoc(
        f.createTypeAliasDeclaration(
          [f.createModifier(ts.SyntaxKind.ExportKeyword)],
          name,
          [this.versionParam()],
          body,
        ),
        header,
      ),
    );
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
    file.importRuntimeType('IsSingleVersion');
    this.emitCommandTables(file);
    this.emitEventTables(file);
    this.emitRangeMaps(file);
  }

  /** What one command looks like across versions: arguments, oob, argument and value sets. */
  private collectCommand(name: string, c: Tracked<CommandDef>) {
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
    const stem = 'qmp-merged';
    const commandEntries: ts.TypeElement[] = [];
    const versionEntries: ts.TypeElement[] = [];
    const argumentEntries: ts.TypeElement[] = [];
    const valueEntries: ts.TypeElement[] = [];
    for (const [name, c] of sortedEntries(this.commands)) {
      this.data.commands[name] = this.av.mask(c.in);
      if (c.deprecated.size > 0) this.data.deprecated[name] = this.av.mask(c.deprecated);
      const { args, oob, argVersions, argDeprecated, valueVersions } = this.collectCommand(name, c);
      const allUndefined = [...args.values()].every((a) => a === undefined);
      const argsNode = allUndefined
        ? f.createKeywordTypeNode(ts.SyntaxKind.UndefinedKeyword)
        : [...args.values()].some((a) => a === undefined)
          ? // Some versions took no arguments: sending any would fail there.
            f.createKeywordTypeNode(ts.SyntaxKind.UndefinedKeyword)
          : this.renderGrouped(args as Map<string, TypeRef>, stem);
      commandEntries.push(
        jsDoc(
          f.createPropertySignature(
            undefined,
            propertyName(name),
            undefined,
            f.createTypeLiteralNode([
              f.createPropertySignature(undefined, 'in', undefined, this.av.node(c.in)),
              f.createPropertySignature(undefined, 'args', undefined, argsNode),
              f.createPropertySignature(undefined, 'oob', undefined, this.av.node(oob)),
            ]),
          ),
          [
            `\`${name}\`: ${this.av.describe(c.in, c.deprecated)}.`,
            ...this.describeFeatures(this.subjectFeatures.get(name)),
          ],
        ),
      );
      versionEntries.push(
        f.createPropertySignature(undefined, propertyName(name), undefined, this.av.node(c.in)),
      );
      for (const [member, values] of valueVersions) {
        for (const [value, set] of values) {
          valueEntries.push(
            f.createPropertySignature(
              undefined,
              f.createStringLiteral(`${name}.${member}=${value}`),
              undefined,
              this.av.node(set),
            ),
          );
        }
      }
      if (argVersions.size > 0) {
        for (const [member, set] of argVersions) {
          this.data.arguments[`${name}.${member}`] = this.av.mask(set);
          // `deprecated` is keyed like every other table (issue: arguments were missing).
          const deprecated = argDeprecated.get(member);
          if (deprecated) this.data.deprecated[`${name}.${member}`] = this.av.mask(deprecated);
        }
        argumentEntries.push(
          f.createPropertySignature(
            undefined,
            propertyName(name),
            undefined,
            f.createTypeLiteralNode(
              [...argVersions.entries()].map(([member, set]) =>
                f.createPropertySignature(
                  undefined,
                  propertyName(member),
                  undefined,
                  this.av.node(set),
                ),
              ),
            ),
          ),
        );
      }
    }
    file.statements.push(
      jsDoc(
        f.createInterfaceDeclaration(
          exportModifiers(),
          'MergedCommands',
          [this.versionParam()],
          undefined,
          commandEntries,
        ),
        [
          'Every command of any known QEMU version: the versions that have it (`in`), its arguments as',
          'accepted by all versions of `V` (`args`), and the versions that allow it out of band (`oob`).',
        ],
      ),
      jsDoc(
        f.createInterfaceDeclaration(
          exportModifiers(),
          'CommandVersions',
          undefined,
          undefined,
          versionEntries,
        ),
        ['The versions that have each command.'],
      ),
      jsDoc(
        f.createInterfaceDeclaration(
          exportModifiers(),
          'ArgumentVersions',
          undefined,
          undefined,
          argumentEntries,
        ),
        [
          "The versions that have each argument of each command; a union branch's own members are",
          'keyed `<case>.<member>` (e.g. `nbd.open-timeout` of `blockdev-add`).',
        ],
      ),
      jsDoc(
        f.createInterfaceDeclaration(
          exportModifiers(),
          'ArgumentValueVersions',
          undefined,
          undefined,
          valueEntries,
        ),
        [
          'For arguments of enum type, keyed `command.member=value` (`blockdev-add.driver=preallocate`):',
          'the versions that accept the value. Flat on purpose: nested lookups over generic keys are',
          'more than TypeScript can relate in a reasonable time.',
        ],
      ),
    );
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
        jsDoc(
          f.createPropertySignature(undefined, propertyName(name), undefined, this.av.node(e.in)),
          [this.av.describe(e.in, e.deprecated)],
        ),
      );
    }
    file.statements.push(
      jsDoc(
        f.createInterfaceDeclaration(
          exportModifiers(),
          'EventVersions',
          undefined,
          undefined,
          eventVersions,
        ),
        ['The versions that have each event.'],
      ),
      jsDoc(
        f.createInterfaceDeclaration(
          exportModifiers(),
          'FeatureVersions',
          undefined,
          undefined,
          [...this.subjectFeatures.entries()]
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([subject, features]) =>
              f.createPropertySignature(
                undefined,
                propertyName(subject),
                undefined,
                f.createTypeLiteralNode(
                  [...features.entries()].map(([feature, set]) =>
                    f.createPropertySignature(
                      undefined,
                      propertyName(feature),
                      undefined,
                      this.av.node(set),
                    ),
                  ),
                ),
              ),
            ),
        ),
        [
          'The QAPI features (`deprecated`, `unstable`, `allow-write-only-overlay`, …) of commands and',
          'events (`blockdev-snapshot`), their arguments (`block-commit.base`, `blockdev-add.nbd.x-dirty-bitmap`),',
          'union branches of arguments (`blockdev-add[file]`) and the values of enum-typed arguments',
          '(`object-add.qom-type=x-remote-object`): the versions',
          'where the subject carries each feature. Only subjects with a feature in some version appear.',
        ],
      ),
    );
  }

  /**
   * `ReturnsIn`, `DataIn`, `CommandsFor<V>`, `EventsFor<V>`: exact per-version maps for one
   * version, the meet (args) and join (returns, event data) over the versions for a range.
   */
  private emitRangeMaps(file: FileBuilder): void {
    // CommandsFor<V> / EventsFor<V>: exact per-version maps for one version, the meet (args) and
    // join (returns, event data) over the versions for a range.
    const K = () => f.createTypeReferenceNode('K');
    const single = (then: ts.TypeNode, otherwise: ts.TypeNode) =>
      f.createConditionalTypeNode(
        f.createTupleTypeNode([f.createTypeReferenceNode('IsSingleVersion', [v()])]),
        f.createTupleTypeNode([f.createLiteralTypeNode(f.createTrue())]),
        then,
        otherwise,
      );
    const perVersion = (what: 'commands' | 'events', prop: 'returns' | 'data') =>
      // V extends QemuVersion ? (K extends keyof VersionMaps[V][what] ? VersionMaps[V][what][K][prop] : never) : never
      f.createConditionalTypeNode(
        v(),
        f.createTypeReferenceNode('QemuVersion'),
        f.createConditionalTypeNode(
          K(),
          f.createTypeOperatorNode(
            ts.SyntaxKind.KeyOfKeyword,
            f.createIndexedAccessTypeNode(
              f.createIndexedAccessTypeNode(f.createTypeReferenceNode('VersionMaps'), v()),
              f.createLiteralTypeNode(f.createStringLiteral(what)),
            ),
          ),
          // VersionMaps[V][what][K] extends { [prop]: infer R } ? R : never
          f.createConditionalTypeNode(
            f.createIndexedAccessTypeNode(
              f.createIndexedAccessTypeNode(
                f.createIndexedAccessTypeNode(f.createTypeReferenceNode('VersionMaps'), v()),
                f.createLiteralTypeNode(f.createStringLiteral(what)),
              ),
              K(),
            ),
            f.createTypeLiteralNode([
              f.createPropertySignature(
                undefined,
                prop,
                undefined,
                f.createInferTypeNode(f.createTypeParameterDeclaration(undefined, 'R')),
              ),
            ]),
            f.createTypeReferenceNode('R'),
            f.createKeywordTypeNode(ts.SyntaxKind.NeverKeyword),
          ),
          f.createKeywordTypeNode(ts.SyntaxKind.NeverKeyword),
        ),
        f.createKeywordTypeNode(ts.SyntaxKind.NeverKeyword),
      );
    const kParam = (constraint: ts.TypeNode) =>
      f.createTypeParameterDeclaration(undefined, 'K', constraint);
    file.statements.push(
      jsDoc(
        f.createTypeAliasDeclaration(
          exportModifiers(),
          'ReturnsIn',
          [this.versionParam(), kParam(f.createKeywordTypeNode(ts.SyntaxKind.StringKeyword))],
          perVersion('commands', 'returns'),
        ),
        ['What command `K` returns in any version of `V` (the union over the versions).'],
      ),
      jsDoc(
        f.createTypeAliasDeclaration(
          exportModifiers(),
          'DataIn',
          [this.versionParam(), kParam(f.createKeywordTypeNode(ts.SyntaxKind.StringKeyword))],
          perVersion('events', 'data'),
        ),
        ['The data of event `K` in any version of `V` (the union over the versions).'],
      ),
    );
    const M = f.createTypeReferenceNode('MergedCommands', [v()]);
    const MK = (prop: string) =>
      f.createIndexedAccessTypeNode(
        f.createIndexedAccessTypeNode(M, K()),
        f.createLiteralTypeNode(f.createStringLiteral(prop)),
      );
    const inAll = (set: ts.TypeNode) =>
      f.createConditionalTypeNode(
        f.createTupleTypeNode([v()]),
        f.createTupleTypeNode([set]),
        K(),
        f.createKeywordTypeNode(ts.SyntaxKind.NeverKeyword),
      );
    const rangeCommands = f.createMappedTypeNode(
      undefined,
      f.createTypeParameterDeclaration(
        undefined,
        'K',
        f.createTypeOperatorNode(ts.SyntaxKind.KeyOfKeyword, M),
      ),
      inAll(MK('in')),
      undefined,
      f.createIntersectionTypeNode([
        f.createTypeLiteralNode([
          f.createPropertySignature(undefined, 'args', undefined, MK('args')),
          f.createPropertySignature(
            undefined,
            'returns',
            undefined,
            f.createTypeReferenceNode('ReturnsIn', [
              v(),
              f.createIntersectionTypeNode([
                K(),
                f.createKeywordTypeNode(ts.SyntaxKind.StringKeyword),
              ]),
            ]),
          ),
        ]),
        f.createParenthesizedType(
          f.createConditionalTypeNode(
            f.createTupleTypeNode([v()]),
            f.createTupleTypeNode([MK('oob')]),
            f.createTypeLiteralNode([
              f.createPropertySignature(
                undefined,
                'oob',
                undefined,
                f.createLiteralTypeNode(f.createTrue()),
              ),
            ]),
            f.createTypeLiteralNode([]),
          ),
        ),
      ]),
      undefined,
    );
    const EV = f.createTypeReferenceNode('EventVersions');
    const rangeEvents = f.createMappedTypeNode(
      undefined,
      f.createTypeParameterDeclaration(
        undefined,
        'K',
        f.createTypeOperatorNode(ts.SyntaxKind.KeyOfKeyword, EV),
      ),
      // events any version of V may send
      f.createConditionalTypeNode(
        f.createTupleTypeNode([
          f.createTypeReferenceNode('Extract', [v(), f.createIndexedAccessTypeNode(EV, K())]),
        ]),
        f.createTupleTypeNode([f.createKeywordTypeNode(ts.SyntaxKind.NeverKeyword)]),
        f.createKeywordTypeNode(ts.SyntaxKind.NeverKeyword),
        K(),
      ),
      undefined,
      f.createTypeLiteralNode([
        f.createPropertySignature(
          undefined,
          'data',
          undefined,
          f.createTypeReferenceNode('DataIn', [
            v(),
            f.createIntersectionTypeNode([
              K(),
              f.createKeywordTypeNode(ts.SyntaxKind.StringKeyword),
            ]),
          ]),
        ),
      ]),
      undefined,
    );
    const vm = (what: string) =>
      f.createIndexedAccessTypeNode(
        f.createIndexedAccessTypeNode(f.createTypeReferenceNode('VersionMaps'), v()),
        f.createLiteralTypeNode(f.createStringLiteral(what)),
      );
    file.statements.push(
      jsDoc(
        f.createTypeAliasDeclaration(
          exportModifiers(),
          'CommandsFor',
          [this.versionParam()],
          single(vm('commands'), rangeCommands),
        ),
        [
          'The `Commands` map for a set of QEMU versions: the exact bindings for one version; for a range,',
          'the commands every version has, with arguments all of them accept and the union of returns.',
        ],
      ),
      jsDoc(
        f.createTypeAliasDeclaration(
          exportModifiers(),
          'EventsFor',
          [this.versionParam()],
          single(vm('events'), rangeEvents),
        ),
        [
          'The `Events` map for a set of QEMU versions: events any of them may send, with the union of data.',
        ],
      ),
    );
  }

  private emitVersions(): ts.Statement[] {
    const order = this.versions.map((x) => x.version);
    const statements: ts.Statement[] = [];
    for (const version of order) {
      statements.push(
        f.createImportDeclaration(
          undefined,
          f.createImportClause(
            true,
            undefined,
            f.createNamespaceImport(f.createIdentifier(`Qemu${version.replace('.', '_')}`)),
          ),
          f.createStringLiteral(`../qemu-${version}/index.generated.js`),
        ),
      );
    }
    statements.push(
      jsDoc(
        f.createTypeAliasDeclaration(
          exportModifiers(),
          'QemuVersion',
          undefined,
          f.createUnionTypeNode(
            order.map((x) => f.createLiteralTypeNode(f.createStringLiteral(x))),
          ),
        ),
        ['The QEMU versions (`major.minor`) these bindings know.'],
      ),
      jsDoc(
        f.createVariableStatement(
          exportModifiers(),
          f.createVariableDeclarationList(
            [
              f.createVariableDeclaration(
                'qemuVersions',
                undefined,
                undefined,
                f.createAsExpression(
                  f.createArrayLiteralExpression(order.map((x) => f.createStringLiteral(x))),
                  f.createTypeReferenceNode('const'),
                ),
              ),
            ],
            ts.NodeFlags.Const,
          ),
        ),
        ['The known QEMU versions, oldest first.'],
      ),
      jsDoc(
        f.createInterfaceDeclaration(
          exportModifiers(),
          'VersionMaps',
          undefined,
          undefined,
          order.map((version) => {
            const ns = `Qemu${version.replace('.', '_')}`;
            return f.createPropertySignature(
              undefined,
              f.createStringLiteral(version),
              undefined,
              f.createTypeLiteralNode([
                f.createPropertySignature(
                  undefined,
                  'commands',
                  undefined,
                  f.createTypeReferenceNode(
                    f.createQualifiedName(f.createIdentifier(ns), 'Commands'),
                  ),
                ),
                f.createPropertySignature(
                  undefined,
                  'events',
                  undefined,
                  f.createTypeReferenceNode(
                    f.createQualifiedName(f.createIdentifier(ns), 'Events'),
                  ),
                ),
              ]),
            );
          }),
        ),
        ["Each version's exact `Commands` and `Events` maps."],
      ),
    );
    return statements;
  }

  /** JSDoc lines for a subject's features ("Feature `json-cli`: QEMU 6.2+."). */
  private describeFeatures(features: ReadonlyMap<string, VersionSet> | undefined): string[] {
    return [...(features ?? [])]
      .filter(([feature]) => feature !== 'deprecated') // already in the availability line
      .map(([feature, set]) => `Feature \`${feature}\`: ${this.av.describe(set)}.`);
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
    // Run-time availability.
    const data = { versions: this.versions.map((x) => x.version), ...this.data };
    out.set(
      'availability.generated.ts',
      printFile(head, [
        importDeclaration(['AvailabilityTables'], this.options.runtimeImport, true),
        jsDoc(
          f.createVariableStatement(
            [f.createModifier(ts.SyntaxKind.ExportKeyword)],
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
          ),
          [
            'Where each command, event, argument (`cmd.member`, `cmd.case.member`), type member',
            '(`Type.member`), enum value (`Enum.value`) and union branch (`Union[case]`) exists: a bit',
            'mask over `versions` (bit i = versions[i]); `deprecated` uses the same keys. `features`:',
            'where a command, event, argument, argument branch (`cmd[case]`), argument value',
            '(`cmd.member=value`), type, type member or enum value carries a QAPI feature, keyed',
            '`<key>/$<feature>` (libvirt writes it so).',
          ],
        ),
      ]),
    );
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
