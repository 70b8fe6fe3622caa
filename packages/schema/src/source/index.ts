/**
 * QAPI *source* reader: QEMU's `qapi/*.json` schema files (with doc comments) → IR.
 *
 * `parseQapiFile` reads the files (syntax, includes, pragmas, doc comment structure);
 * `loadQapiSource` additionally runs QEMU's semantic checks and lowers into the IR.
 * Both throw `SchemaError` (message `file:line:col: text`) at the first problem.
 */
import type { Schema } from '../model/ir.js';
import type { ParsedSchema, ReadOptions } from './ast.js';
import { checkExpressions } from './check.js';
import { EntityTable } from './entities.js';
import { lowerSchema } from './lower.js';
import { parseQapiFile } from './parser.js';
import { checkSemantics } from './semantic.js';

export type {
  ParsedSchema,
  QapiArray,
  QapiBool,
  QapiDefinitionExpr,
  QapiDoc,
  QapiDocSection,
  QapiEntry,
  QapiExpression,
  QapiIncludeExpr,
  QapiObject,
  QapiPragmaExpr,
  QapiSourceFile,
  QapiString,
  QapiValue,
  ReadOptions,
} from './ast.js';
export { parseQapiFile } from './parser.js';
export { type QapiRules, qapiRulesFor } from './rules.js';

/** Runs the semantic checks on an already parsed schema and lowers it into the IR. */
export function checkQapiSchema(parsed: ParsedSchema): Schema {
  const table = new EntityTable(parsed);
  table.defineAll(checkExpressions(parsed));
  checkSemantics(parsed, table);
  return lowerSchema(parsed, table);
}

/**
 * Reads, checks and lowers a QAPI schema (the main file and everything it includes).
 * Relative paths stay relative in error messages and in `Schema.origin.file`.
 */
export function loadQapiSource(mainFile: string, options: ReadOptions = {}): Schema {
  return checkQapiSchema(parseQapiFile(mainFile, options));
}
