import type { SourceLocation } from './model/ir.js';

/**
 * An error in a schema input: QAPI source or introspection JSON. `message` is
 * `file:line:col: text` so it can be printed as-is by the CLI; the parts stay available.
 */
export class SchemaError extends Error {
  override readonly name = 'SchemaError' as const;
  readonly file: string;
  readonly line: number | undefined;
  readonly col: number | undefined;
  /** The message without the location prefix. */
  readonly reason: string;

  constructor(
    loc: SourceLocation | { file: string },
    reason: string,
    options?: { cause?: unknown },
  ) {
    const at = 'line' in loc ? `${loc.file}:${loc.line}:${loc.col}` : loc.file;
    super(`${at}: ${reason}`, options);
    this.file = loc.file;
    this.line = 'line' in loc ? loc.line : undefined;
    this.col = 'line' in loc ? loc.col : undefined;
    this.reason = reason;
  }
}

/** Recognises a SchemaError also across two copies of this package (checks `name`). */
export function isSchemaError(value: unknown): value is SchemaError {
  return value instanceof Error && value.name === 'SchemaError';
}

/** An error in the generator's own inputs other than a schema (options, name clashes). */
export class CodegenError extends Error {
  override readonly name = 'CodegenError' as const;
}

export function isCodegenError(value: unknown): value is CodegenError {
  return value instanceof Error && value.name === 'CodegenError';
}
