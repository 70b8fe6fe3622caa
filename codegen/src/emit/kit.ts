/** Small pieces both emitters (per-version and merged) build their output with. */

import { INTEGER_BUILTINS } from '@qmpkit/schema';
import ts from 'typescript';

const f = ts.factory;

export function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  const existing = map.get(key);
  if (existing !== undefined) return existing;
  const created = make();
  map.set(key, created);
  return created;
}

export const isIdentifier = (name: string) => /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name);

/** A property name: an identifier where possible, else a string literal (`'node-name'`). */
export const propertyName = (name: string): ts.PropertyName =>
  isIdentifier(name) ? f.createIdentifier(name) : f.createStringLiteral(name);

/**
 * `name: type` in a type literal or interface (`'wire-name': type` where needed; always quoted
 * with `quoted`).
 */
export const prop = (name: string, type: ts.TypeNode, quoted = false): ts.PropertySignature =>
  f.createPropertySignature(
    undefined,
    quoted ? f.createStringLiteral(name) : propertyName(name),
    undefined,
    type,
  );

/** `export interface <name><params> { members }` with its JSDoc. */
export const exportedInterface = (
  name: string,
  params: ts.TypeParameterDeclaration[] | undefined,
  members: readonly ts.TypeElement[],
  doc: readonly string[],
): ts.InterfaceDeclaration =>
  jsDoc(
    f.createInterfaceDeclaration(
      [f.createModifier(ts.SyntaxKind.ExportKeyword)],
      name,
      params,
      undefined,
      members,
    ),
    doc,
  );

/** Attaches a JSDoc block built from lines; nothing when there is nothing to say. */
export function jsDoc<T extends ts.Node>(node: T, lines: readonly string[]): T {
  const body = lines
    .flatMap((line) => line.split('\n'))
    .map((line) => line.replace(/\*\//g, '*\u200b/').trimEnd());
  while (body.length > 0 && body[body.length - 1] === '') body.pop();
  if (body.length === 0) return node;
  const text = `*\n${body.map((line) => (line ? ` * ${line}` : ' *')).join('\n')}\n `;
  return ts.addSyntheticLeadingComment(node, ts.SyntaxKind.MultiLineCommentTrivia, text, true);
}

const QTYPE_VALUES = ['none', 'qnull', 'qnum', 'qstring', 'qdict', 'qlist', 'qbool'];

/** The TypeScript type of a QAPI builtin type. */
export function builtinTypeNode(name: string): ts.TypeNode {
  if (name === 'str') return f.createKeywordTypeNode(ts.SyntaxKind.StringKeyword);
  if (name === 'number' || INTEGER_BUILTINS.has(name))
    return f.createKeywordTypeNode(ts.SyntaxKind.NumberKeyword);
  if (name === 'bool') return f.createKeywordTypeNode(ts.SyntaxKind.BooleanKeyword);
  if (name === 'null') return f.createLiteralTypeNode(f.createNull());
  if (name === 'any') return f.createKeywordTypeNode(ts.SyntaxKind.UnknownKeyword);
  // QType: the builtin enum of JSON types
  return f.createUnionTypeNode(
    QTYPE_VALUES.map((v) => f.createLiteralTypeNode(f.createStringLiteral(v))),
  );
}

export const FILE_SUFFIX = '.generated.ts';
const UNASSIGNED_MODULE = 'unassigned';

/** The file stem of a QAPI module: definitions without a module go to `unassigned`. */
export function moduleStem(module: string | undefined): string {
  return (module ?? UNASSIGNED_MODULE).replace(/[^A-Za-z0-9_-]/g, '_');
}

/** The import specifier of a generated sibling file. */
export const generatedSpecifier = (stem: string): string => `./${stem}.generated.js`;

/** Map entries sorted by key (string order, as `<` compares). */
export function sortedEntries<V>(map: ReadonlyMap<string, V>): [string, V][] {
  return [...map.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
}

/**
 * `import [type] { a, b as c } from 'from';` with the names sorted; a name written
 * `b as c` is imported under the local name `c`.
 */
export function importDeclaration(
  names: Iterable<string>,
  from: string,
  typeOnly: boolean,
): ts.ImportDeclaration {
  const specifier = (name: string) => {
    const [imported, local] = name.split(' as ');
    return local === undefined
      ? f.createImportSpecifier(false, undefined, f.createIdentifier(name))
      : f.createImportSpecifier(false, f.createIdentifier(imported!), f.createIdentifier(local));
  };
  return f.createImportDeclaration(
    undefined,
    f.createImportClause(
      typeOnly,
      undefined,
      f.createNamedImports([...names].sort().map(specifier)),
    ),
    f.createStringLiteral(from),
  );
}

/** `export * from 'from';` */
export function exportAll(from: string): ts.ExportDeclaration {
  return f.createExportDeclaration(undefined, false, undefined, f.createStringLiteral(from));
}

/**
 * A JSON-like value (numbers, strings, arrays, plain objects) as a literal expression; objects
 * are printed one property per line down to `depth` levels, on one line below.
 */
export function literal(value: unknown, depth: number): ts.Expression {
  if (typeof value === 'number') return f.createNumericLiteral(value);
  if (typeof value === 'string') return f.createStringLiteral(value);
  if (Array.isArray(value))
    return f.createArrayLiteralExpression(value.map((x) => literal(x, depth - 1)));
  return f.createObjectLiteralExpression(
    Object.entries(value as Record<string, unknown>).map(([k, x]) =>
      f.createPropertyAssignment(propertyName(k), literal(x, depth - 1)),
    ),
    depth > 0,
  );
}

/** The comment every generated file starts with: the generator, then what it was made from. */
export function preamble(generatorVersion: string, input: readonly string[]): string {
  return [`// Generated by @qmpkit/codegen ${generatorVersion} — do not edit.`, ...input].join(
    '\n',
  );
}

let printer: ts.Printer | undefined;
let scratch: ts.SourceFile | undefined;

/** A whole file's text: the preamble, then the statements separated by blank lines. */
export function printFile(head: string, statements: readonly ts.Statement[]): string {
  printer ??= ts.createPrinter({ newLine: ts.NewLineKind.LineFeed, removeComments: false });
  scratch ??= ts.createSourceFile('out.ts', '', ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const sourceFile = scratch;
  const p = printer;
  const body = statements
    .map((s) => p.printNode(ts.EmitHint.Unspecified, s, sourceFile))
    .join('\n\n');
  return `${head}\n\n${body}\n`;
}

/** One output file: its statements and the imports they need, grouped and sorted. */
export class FileBuilder {
  readonly statements: ts.Statement[] = [];
  /** file stem → names imported as types */
  private readonly typeImports = new Map<string, Set<string>>();
  private readonly runtimeImports = new Set<string>();
  private readonly runtimeValueImports = new Set<string>();
  private readonly valueImports = new Map<string, Set<string>>();

  constructor(readonly stem: string) {}

  importType(stem: string, name: string): void {
    if (stem === this.stem) return;
    getOrCreate(this.typeImports, stem, () => new Set<string>()).add(name);
  }

  importValue(stem: string, name: string): void {
    getOrCreate(this.valueImports, stem, () => new Set<string>()).add(name);
  }

  importRuntimeType(name: string): void {
    this.runtimeImports.add(name);
  }

  /** A value of the runtime, under the local name `alias` when given. */
  importRuntimeValue(name: string, alias?: string): void {
    this.runtimeValueImports.add(alias === undefined ? name : `${name} as ${alias}`);
  }

  imports(runtimeImport: string): ts.Statement[] {
    const out: ts.Statement[] = [];
    if (this.runtimeImports.size > 0)
      out.push(importDeclaration(this.runtimeImports, runtimeImport, true));
    if (this.runtimeValueImports.size > 0)
      out.push(importDeclaration(this.runtimeValueImports, runtimeImport, false));
    for (const [stem, names] of sortedEntries(this.valueImports))
      out.push(importDeclaration(names, generatedSpecifier(stem), false));
    for (const [stem, names] of sortedEntries(this.typeImports))
      out.push(importDeclaration(names, generatedSpecifier(stem), true));
    return out;
  }
}
