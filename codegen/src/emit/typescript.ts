/**
 * The TypeScript emitter: IR → a map of file name → file text. Pure: no I/O.
 *
 * Code is built with the TypeScript compiler's node factory and printed by its printer, so
 * every file is syntactically valid by construction and output is byte-identical for the
 * same input. Definitions are sorted by name inside each file.
 */

import type {
  AlternateDef,
  CommandDef,
  Condition,
  Definition,
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
} from '@qmpkit/schema';
import { allMembers, buildTables, isBuiltin, typeRefToString } from '@qmpkit/schema';
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
  jsDoc,
  moduleStem,
  preamble,
  printFile,
  prop,
  propertyName,
  sortedEntries,
} from './kit.js';

export { FILE_SUFFIX } from './kit.js';

import { tablesExpression } from './tables-expression.js';

const f = ts.factory;

export interface EmitOptions {
  /** Module specifier generated code imports the runtime from. */
  readonly runtimeImport: string;
  /** Version of the generator, written into each file's preamble. */
  readonly generatorVersion: string;
  /** Human description of the input (path relative to the repo, or a file name). */
  readonly inputDescription: string;
  /** The QEMU version the bindings describe (e.g. "7.2.22"). */
  readonly qemuVersion: string;
  /** Put doc comments from the input into JSDoc (default true). */
  readonly docs?: boolean;
}

/** Names a generated type may not take: they would shadow globals the output relies on. */
const RESERVED_TYPE_NAMES = new Set([
  'Record',
  'Array',
  'Object',
  'Promise',
  'Partial',
  'Readonly',
  'unknown',
  'never',
]);

const SPECIAL_FILES = ['index', 'qmp-commands', 'qmp-events', 'qmp-tables'];
const lowerFirst = (name: string) => name.charAt(0).toLowerCase() + name.slice(1);

function conditionText(cond: Condition): string {
  switch (cond.kind) {
    case 'config':
      return cond.name;
    case 'not':
      return `!${conditionText(cond.of)}`;
    case 'all':
      return cond.of
        .map((c) => (c.kind === 'any' ? `(${conditionText(c)})` : conditionText(c)))
        .join(' && ');
    case 'any':
      return cond.of
        .map((c) => (c.kind === 'all' ? `(${conditionText(c)})` : conditionText(c)))
        .join(' || ');
  }
}

function implicitOrigin(origin: ImplicitOrigin): string {
  const owner = `\`${origin.owner}\``;
  const detail = origin.detail !== undefined ? `\`${origin.detail}\`` : '';
  switch (origin.role) {
    case 'arguments':
      return `Arguments of command ${owner}`;
    case 'returns':
      return `Return type of command ${owner}`;
    case 'event-data':
      return `Data of event ${owner}`;
    case 'base':
      return `Base of union ${owner}`;
    case 'branch':
      return `Branch ${detail} of union ${owner}`;
    case 'member':
      return `Type of ${detail} in ${owner}`;
    case 'element':
      return `Element type of ${owner}`;
    case 'wrapper':
      return `Wrapper of branch ${detail} of union ${owner}`;
    case 'kind-enum':
      return `Discriminator values of union ${owner}`;
  }
}

function featureTags(features: readonly Feature[]): string[] {
  const lines: string[] = [];
  for (const feature of features) {
    if (feature.name === 'deprecated')
      lines.push(`@deprecated${feature.doc ? ` ${feature.doc}` : ' (QAPI feature `deprecated`)'}`);
    else if (feature.name === 'unstable')
      lines.push(`@experimental${feature.doc ? ` ${feature.doc}` : ' (QAPI feature `unstable`)'}`);
  }
  const other = features.filter((x) => x.name !== 'deprecated' && x.name !== 'unstable');
  if (other.length > 0)
    lines.push(
      `Features: ${other.map((x) => `\`${x.name}\`${x.doc ? ` — ${x.doc}` : ''}`).join('; ')}`,
    );
  return lines;
}

class Emitter {
  private readonly docs: boolean;
  private readonly files = new Map<string, FileBuilder>();
  /** type name → file stem */
  private readonly home = new Map<string, string>();

  constructor(
    private readonly schema: Schema,
    private readonly options: EmitOptions,
  ) {
    this.docs = options.docs ?? true;
    for (const def of schema.types.values()) {
      if (RESERVED_TYPE_NAMES.has(def.name)) {
        throw new CodegenError(
          `type name '${def.name}' would shadow a TypeScript global; rename it in the schema`,
        );
      }
      this.home.set(def.name, moduleStem(def.module));
    }
    for (const stem of new Set(this.home.values())) {
      if (SPECIAL_FILES.includes(stem))
        throw new CodegenError(`QAPI module '${stem}' clashes with a generated file name`);
    }
  }

  private file(stem: string): FileBuilder {
    return getOrCreate(this.files, stem, () => new FileBuilder(stem));
  }

  private typeNode(ref: TypeRef, file: FileBuilder): ts.TypeNode {
    if (ref.kind === 'array')
      return f.createArrayTypeNode(this.parenthesize(this.typeNode(ref.element, file)));
    const name = ref.name;
    if (isBuiltin(name)) return builtinTypeNode(name);
    const stem = this.home.get(name);
    if (stem === undefined) throw new CodegenError(`reference to undefined type '${name}'`);
    file.importType(stem, name);
    return f.createTypeReferenceNode(name);
  }

  private parenthesize(node: ts.TypeNode): ts.TypeNode {
    return ts.isUnionTypeNode(node) ? f.createParenthesizedType(node) : node;
  }

  private definitionDoc(def: Definition, what: string): string[] {
    const lines: string[] = [];
    if (this.docs && def.doc?.text) lines.push(def.doc.text, '');
    if (this.docs) {
      for (const section of def.doc?.sections ?? []) {
        if (section.tag.toLowerCase() === 'since') continue;
        lines.push(`${section.tag}: ${section.text}`, '');
      }
    }
    const implicit = 'implicit' in def ? def.implicit : undefined;
    const origin = implicit ? implicitOrigin(implicit) : what;
    lines.push(`${origin}${def.module ? ` — QAPI module \`${def.module}\`` : ''}.`);
    if (def.if) lines.push(`Only when built with: \`${conditionText(def.if)}\``);
    if (def.doc?.since) lines.push(`@since ${def.doc.since}`);
    lines.push(...featureTags(def.features));
    return lines;
  }

  private memberDoc(member: {
    doc?: string;
    if?: Condition;
    features: readonly Feature[];
  }): string[] {
    const lines: string[] = [];
    if (this.docs && member.doc) lines.push(member.doc);
    if (member.if) lines.push(`Only when built with: \`${conditionText(member.if)}\``);
    lines.push(...featureTags(member.features));
    return lines;
  }

  private exportModifiers() {
    return [f.createModifier(ts.SyntaxKind.ExportKeyword)];
  }

  private members(list: readonly Member[], file: FileBuilder): ts.TypeElement[] {
    return list.map((m) =>
      jsDoc(
        f.createPropertySignature(
          undefined,
          propertyName(m.name),
          m.optional ? f.createToken(ts.SyntaxKind.QuestionToken) : undefined,
          this.typeNode(m.type, file),
        ),
        this.memberDoc(m),
      ),
    );
  }

  private emitEnum(def: EnumDef, file: FileBuilder): void {
    const doc = this.definitionDoc(def, 'QAPI enum');
    const union =
      def.values.length === 0
        ? f.createKeywordTypeNode(ts.SyntaxKind.NeverKeyword)
        : f.createUnionTypeNode(
            def.values.map((v) => f.createLiteralTypeNode(f.createStringLiteral(v.name))),
          );
    file.statements.push(
      jsDoc(f.createTypeAliasDeclaration(this.exportModifiers(), def.name, undefined, union), doc),
    );
    const object = f.createObjectLiteralExpression(
      def.values.map((v) =>
        jsDoc(
          f.createPropertyAssignment(propertyName(v.name), f.createStringLiteral(v.name)),
          this.memberDoc(v),
        ),
      ),
      true,
    );
    file.statements.push(
      jsDoc(
        f.createVariableStatement(
          this.exportModifiers(),
          f.createVariableDeclarationList(
            [
              f.createVariableDeclaration(
                def.name,
                undefined,
                undefined,
                f.createAsExpression(object, f.createTypeReferenceNode('const')),
              ),
            ],
            ts.NodeFlags.Const,
          ),
        ),
        [`The values of {@link ${def.name}}, keyed by wire name.`],
      ),
    );
  }

  private emitStruct(def: StructDef, file: FileBuilder): void {
    if (def.base) this.typeNode({ kind: 'named', name: def.base }, file); // records the import
    const heritage = def.base
      ? [
          f.createHeritageClause(ts.SyntaxKind.ExtendsKeyword, [
            f.createExpressionWithTypeArguments(f.createIdentifier(def.base), undefined),
          ]),
        ]
      : undefined;
    file.statements.push(
      jsDoc(
        f.createInterfaceDeclaration(
          this.exportModifiers(),
          def.name,
          undefined,
          heritage,
          this.members(def.members, file),
        ),
        this.definitionDoc(def, 'QAPI struct'),
      ),
    );
  }

  private emitUnion(def: UnionDef, file: FileBuilder): void {
    const baseRef = this.typeNode({ kind: 'named', name: def.base }, file);
    const tagMember = (allMembers(this.schema, def.base) ?? []).find(
      (m) => m.name === def.discriminator,
    );
    const tagType =
      tagMember?.type.kind === 'named' ? this.schema.types.get(tagMember.type.name) : undefined;
    if (tagType?.kind !== 'enum') {
      throw new CodegenError(
        `union '${def.name}': discriminator '${def.discriminator}' is not an enum member of its base`,
      );
    }
    const branchOf = new Map(def.branches.map((b) => [b.case, b]));
    const tagLiteral = (values: readonly string[]) =>
      f.createTypeLiteralNode([
        f.createPropertySignature(
          undefined,
          propertyName(def.discriminator),
          undefined,
          values.length === 1
            ? f.createLiteralTypeNode(f.createStringLiteral(values[0]!))
            : f.createUnionTypeNode(
                values.map((v) => f.createLiteralTypeNode(f.createStringLiteral(v))),
              ),
        ),
      ]);
    const arms: ts.TypeNode[] = [];
    for (const value of tagType.values) {
      const branch = branchOf.get(value.name);
      if (!branch) continue;
      arms.push(
        f.createIntersectionTypeNode([
          baseRef,
          tagLiteral([value.name]),
          this.typeNode({ kind: 'named', name: branch.type }, file),
        ]),
      );
    }
    const empty = tagType.values.filter((v) => !branchOf.has(v.name)).map((v) => v.name);
    if (empty.length > 0) arms.push(f.createIntersectionTypeNode([baseRef, tagLiteral(empty)]));
    const type = arms.length === 1 ? arms[0]! : f.createUnionTypeNode(arms);
    file.statements.push(
      jsDoc(f.createTypeAliasDeclaration(this.exportModifiers(), def.name, undefined, type), [
        ...this.definitionDoc(def, 'QAPI union'),
        `Discriminated by \`${def.discriminator}\`.`,
      ]),
    );
  }

  private emitAlternate(def: AlternateDef, file: FileBuilder): void {
    const alternatives = def.alternatives.map((a) => this.typeNode(a.type, file));
    file.statements.push(
      jsDoc(
        f.createTypeAliasDeclaration(
          this.exportModifiers(),
          def.name,
          undefined,
          alternatives.length === 1 ? alternatives[0]! : f.createUnionTypeNode(alternatives),
        ),
        [
          ...this.definitionDoc(def, 'QAPI alternate'),
          ...(this.docs
            ? def.alternatives.filter((a) => a.doc).map((a) => `- \`${a.name}\`: ${a.doc}`)
            : []),
        ],
      ),
    );
    // Runtime guard: which alternative a value is, decided by JSON type as QEMU does.
    file.importRuntimeValue('alternateBranch');
    file.importValue('qmp-tables', 'tables');
    const refs = def.alternatives.map((a) => typeRefToString(a.type));
    const resultType = f.createUnionTypeNode(
      refs.map((r) => f.createLiteralTypeNode(f.createStringLiteral(r))),
    );
    const body = f.createBlock(
      [
        f.createReturnStatement(
          f.createAsExpression(
            f.createCallExpression(f.createIdentifier('alternateBranch'), undefined, [
              f.createIdentifier('tables'),
              f.createStringLiteral(def.name),
              f.createIdentifier('value'),
            ]),
            f.createUnionTypeNode([
              resultType,
              f.createKeywordTypeNode(ts.SyntaxKind.UndefinedKeyword),
            ]),
          ),
        ),
      ],
      true,
    );
    file.statements.push(
      jsDoc(
        f.createFunctionDeclaration(
          this.exportModifiers(),
          undefined,
          `${lowerFirst(def.name)}Branch`,
          undefined,
          [
            f.createParameterDeclaration(
              undefined,
              undefined,
              'value',
              undefined,
              f.createKeywordTypeNode(ts.SyntaxKind.UnknownKeyword),
            ),
          ],
          f.createUnionTypeNode([
            resultType,
            f.createKeywordTypeNode(ts.SyntaxKind.UndefinedKeyword),
          ]),
          body,
        ),
        [
          `Which alternative of {@link ${def.name}} \`value\` is, decided by its JSON type as QEMU decides;`,
          '`undefined` when no alternative accepts it.',
        ],
      ),
    );
  }

  private emitType(def: TypeDef): void {
    const file = this.file(this.home.get(def.name)!);
    switch (def.kind) {
      case 'enum':
        this.emitEnum(def, file);
        break;
      case 'struct':
        this.emitStruct(def, file);
        break;
      case 'union':
        this.emitUnion(def, file);
        break;
      case 'alternate':
        this.emitAlternate(def, file);
        break;
    }
  }

  private emitCommands(): FileBuilder {
    const file = this.file('qmp-commands');
    const emptyReturn = f.createTypeReferenceNode('Record', [
      f.createKeywordTypeNode(ts.SyntaxKind.StringKeyword),
      f.createKeywordTypeNode(ts.SyntaxKind.NeverKeyword),
    ]);
    const entries = [...this.schema.commands.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((c: CommandDef) => {
        const props = [
          prop('args', this.commandArgs(c, file)),
          prop('returns', c.returns ? this.typeNode(c.returns, file) : emptyReturn),
          ...(c.allowOob ? [prop('oob', f.createLiteralTypeNode(f.createTrue()))] : []),
        ];
        return jsDoc(
          prop(c.name, f.createTypeLiteralNode(props)),
          this.definitionDoc(c, 'QMP command'),
        );
      });
    file.statements.push(
      exportedInterface('Commands', undefined, entries, [
        `Every QMP command of QEMU ${this.options.qemuVersion}, keyed by wire name: \`args\` is the`,
        '`arguments` object (`undefined`: none), `returns` what `return` holds, `oob` marks commands',
        'allowed with `exec-oob`.',
      ]),
    );
    return file;
  }

  /**
   * A command's `args`: `undefined` when it takes none; with `'gen': false` QEMU passes further
   * members through unchecked (device properties), so an index signature is added.
   */
  private commandArgs(c: CommandDef, file: FileBuilder): ts.TypeNode {
    if (c.args === undefined) return f.createKeywordTypeNode(ts.SyntaxKind.UndefinedKeyword);
    const args = this.typeNode({ kind: 'named', name: c.args }, file);
    if (c.gen) return args;
    const property = f.createParameterDeclaration(
      undefined,
      undefined,
      'property',
      undefined,
      f.createKeywordTypeNode(ts.SyntaxKind.StringKeyword),
    );
    const rest = f.createIndexSignature(
      undefined,
      [property],
      f.createKeywordTypeNode(ts.SyntaxKind.UnknownKeyword),
    );
    return f.createIntersectionTypeNode([args, f.createTypeLiteralNode([rest])]);
  }

  private emitEvents(): FileBuilder {
    const file = this.file('qmp-events');
    const entries = [...this.schema.events.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((e: EventDef) =>
        jsDoc(
          f.createPropertySignature(
            undefined,
            propertyName(e.name),
            undefined,
            f.createTypeLiteralNode([
              f.createPropertySignature(
                undefined,
                'data',
                undefined,
                e.data !== undefined
                  ? this.typeNode({ kind: 'named', name: e.data }, file)
                  : f.createKeywordTypeNode(ts.SyntaxKind.UndefinedKeyword),
              ),
            ]),
          ),
          this.definitionDoc(e, 'QMP event'),
        ),
      );
    file.statements.push(
      jsDoc(
        f.createInterfaceDeclaration(
          this.exportModifiers(),
          'Events',
          undefined,
          undefined,
          entries,
        ),
        [
          `Every QMP event of QEMU ${this.options.qemuVersion}, keyed by wire name; \`data\` is the`,
          "event's `data` (`undefined`: the event carries none).",
        ],
      ),
    );
    return file;
  }

  private emitTables(): FileBuilder {
    const file = this.file('qmp-tables');
    file.importRuntimeType('SchemaTables');
    file.importRuntimeValue('unpackTables');
    const data = buildTables(this.schema, this.options.qemuVersion);
    file.statements.push(
      jsDoc(
        f.createVariableStatement(
          this.exportModifiers(),
          f.createVariableDeclarationList(
            [
              f.createVariableDeclaration(
                'tables',
                undefined,
                f.createTypeReferenceNode('SchemaTables'),
                tablesExpression(data),
              ),
            ],
            ts.NodeFlags.Const,
          ),
        ),
        [
          `Runtime schema tables of QEMU ${this.options.qemuVersion} (format 1), read by the validator.`,
        ],
      ),
    );
    return file;
  }

  /**
   * `index`: every module, `Commands`, `Events`, `tables`, `qemuVersion`, and the validators
   * bound to this version's tables (the runtime's, which take the tables first).
   */
  private emitIndex(moduleStems: readonly string[]): FileBuilder {
    const file = this.file('index');
    const reexport = (name: string, stem: string, typeOnly: boolean) =>
      f.createExportDeclaration(
        undefined,
        typeOnly,
        f.createNamedExports([f.createExportSpecifier(false, undefined, name)]),
        f.createStringLiteral(generatedSpecifier(stem)),
      );
    const qemuVersion = f.createVariableStatement(
      this.exportModifiers(),
      f.createVariableDeclarationList(
        [
          f.createVariableDeclaration(
            'qemuVersion',
            undefined,
            undefined,
            f.createStringLiteral(this.options.qemuVersion),
          ),
        ],
        ts.NodeFlags.Const,
      ),
    );
    file.importValue('qmp-tables', 'tables');
    file.statements.push(
      ...moduleStems.map((stem) => exportAll(generatedSpecifier(stem))),
      reexport('Commands', 'qmp-commands', true),
      reexport('Events', 'qmp-events', true),
      reexport('tables', 'qmp-tables', false),
      jsDoc(qemuVersion, ['The QEMU version these bindings were generated for.']),
      this.boundValidator(file, 'validateArgs', 'command', [
        'Validates the `arguments` of a command against the schema.',
      ]),
      this.boundValidator(file, 'validateReturn', 'command', [
        'Validates what a command returned against the schema.',
      ]),
      this.boundValidator(file, 'validateEvent', 'event', [
        "Validates an event's `data` against the schema.",
      ]),
    );
    return file;
  }

  /**
   * `export function <name>(<param>: string, value: unknown, options?: ValidateOptions)`
   * calling the runtime's `<name>` (imported as `<name>In`) with this version's `tables`.
   */
  private boundValidator(
    file: FileBuilder,
    name: string,
    param: string,
    doc: readonly string[],
  ): ts.FunctionDeclaration {
    const runtime = `${name}In`;
    file.importRuntimeValue(name, runtime);
    file.importRuntimeType('ValidateOptions');
    file.importRuntimeType('ValidationProblem');
    const parameter = (id: string, type: ts.TypeNode, optional = false) =>
      f.createParameterDeclaration(
        undefined,
        undefined,
        id,
        optional ? f.createToken(ts.SyntaxKind.QuestionToken) : undefined,
        type,
      );
    const call = f.createCallExpression(
      f.createIdentifier(runtime),
      undefined,
      ['tables', param, 'value', 'options'].map((id) => f.createIdentifier(id)),
    );
    return jsDoc(
      f.createFunctionDeclaration(
        this.exportModifiers(),
        undefined,
        name,
        undefined,
        [
          parameter(param, f.createKeywordTypeNode(ts.SyntaxKind.StringKeyword)),
          parameter('value', f.createKeywordTypeNode(ts.SyntaxKind.UnknownKeyword)),
          parameter('options', f.createTypeReferenceNode('ValidateOptions'), true),
        ],
        f.createArrayTypeNode(f.createTypeReferenceNode('ValidationProblem')),
        f.createBlock([f.createReturnStatement(call)], true),
      ),
      [...doc, 'Returns the problems found, each with a JSON path; empty when the value is valid.'],
    );
  }

  emit(): Map<string, string> {
    const sortedTypes = [...this.schema.types.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const def of sortedTypes) this.emitType(def);
    const moduleStems = [...this.files.keys()].sort();
    this.emitCommands();
    this.emitEvents();
    this.emitTables();
    this.emitIndex(moduleStems);

    const { origin } = this.schema;
    const head = preamble(this.options.generatorVersion, [
      `// Input: ${this.options.inputDescription} (${origin.kind}${origin.sha256 ? `, sha256 ${origin.sha256}` : ''})`,
      `// QEMU ${this.options.qemuVersion}`,
    ]);
    const out = new Map<string, string>();
    for (const [stem, file] of sortedEntries(this.files)) {
      const statements = [...file.imports(this.options.runtimeImport), ...file.statements];
      out.set(`${stem}${FILE_SUFFIX}`, printFile(head, statements));
    }
    return out;
  }
}

/** Emits TypeScript bindings for one schema: `file name → text`. */
export function emitTypeScript(schema: Schema, options: EmitOptions): Map<string, string> {
  return new Emitter(schema, options).emit();
}
