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
