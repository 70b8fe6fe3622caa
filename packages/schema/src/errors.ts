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

/** Where `captureFromBinary` / `captureSchema` failed. */
export type SchemaCaptureStage =
  /** The binary could not be started (not there, not executable). */
  | 'spawn'
  /** QEMU exited (or closed QMP) before the capture finished: `exitCode`, `signal`, `stderr`. */
  | 'exited'
  /** QEMU sent something that is not what QMP sends at that point (see `message`). */
  | 'protocol'
  /** A command QEMU answered with an error (`command`, `errorClass`). */
  | 'command';

/**
 * Capturing a binary's introspection schema failed. `binary` is what was spawned; `stderr`
 * holds the last 4 KiB QEMU printed (usually the reason: a missing module, a bad `-L`).
 */
export class SchemaCaptureError extends Error {
  override readonly name = 'SchemaCaptureError' as const;
  readonly binary: string;
  readonly stage: SchemaCaptureStage;
  /** The QMP command being run, for `command` and for failures while one was in flight. */
  readonly command: string | undefined;
  /** QMP's error class, for `command`. */
  readonly errorClass: string | undefined;
  readonly exitCode: number | null;
  /** The signal that ended QEMU (e.g. `SIGKILL` after the 30 s deadline), for `exited`. */
  readonly signal: string | null;
  readonly stderr: string;

  constructor(
    details: {
      readonly binary: string;
      readonly stage: SchemaCaptureStage;
      readonly message: string;
      readonly command?: string;
      readonly errorClass?: string;
      readonly exitCode?: number | null;
      readonly signal?: string | null;
      readonly stderr?: string;
    },
    options?: { cause?: unknown },
  ) {
    super(details.message, options);
    this.binary = details.binary;
    this.stage = details.stage;
    this.command = details.command;
    this.errorClass = details.errorClass;
    this.exitCode = details.exitCode ?? null;
    this.signal = details.signal ?? null;
    this.stderr = details.stderr ?? '';
  }
}

/** Recognises a SchemaCaptureError also across two copies of this package (checks `name`). */
export function isSchemaCaptureError(value: unknown): value is SchemaCaptureError {
  return value instanceof Error && value.name === 'SchemaCaptureError';
}
