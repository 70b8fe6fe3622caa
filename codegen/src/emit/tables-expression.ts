/** The TypeScript side of the runtime tables (apart from tables.ts, which loads no compiler). */

import { packedTablesJson, type TablesData } from '@qmpkit/schema';
import ts from 'typescript';

/**
 * The initializer of a generated `tables` constant: `unpackTables(JSON.parse('<packed>'))`,
 * marked pure so a bundler drops the tables of a version nothing validates against. The name
 * `unpackTables` must be imported from the runtime by the caller.
 */
export function tablesExpression(data: TablesData): ts.Expression {
  const f = ts.factory;
  const parse = f.createCallExpression(
    f.createPropertyAccessExpression(f.createIdentifier('JSON'), 'parse'),
    undefined,
    [f.createStringLiteral(packedTablesJson(data), true)],
  );
  const call = f.createCallExpression(f.createIdentifier('unpackTables'), undefined, [parse]);
  return ts.addSyntheticLeadingComment(call, ts.SyntaxKind.MultiLineCommentTrivia, '#__PURE__');
}
