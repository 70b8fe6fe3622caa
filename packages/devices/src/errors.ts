import type { ConfigProblem } from './problems.js';

function summarize(headline: string, problems: readonly ConfigProblem[]): string {
  const shown = problems.slice(0, 10).map((p) => `  - ${p.message}`);
  const rest = problems.length - shown.length;
  if (rest > 0) shown.push(`  - … and ${rest} more`);
  return shown.length > 0 ? `${headline}:\n${shown.join('\n')}` : headline;
}

/**
 * A configuration that is well-formed but would not start (or hot-plug) as described:
 * dangling references, duplicate ids, cycles, values QEMU's schema rejects, buses that do
 * not exist. `problems` lists every one found, each naming the object and field.
 */
export class ConfigValidationError extends Error {
  override readonly name = 'ConfigValidationError' as const;
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], options?: { cause?: unknown }) {
    super(
      summarize(
        `invalid VM configuration (${problems.length} problem${problems.length === 1 ? '' : 's'})`,
        problems,
      ),
      options,
    );
    this.problems = problems;
  }
}

/** Recognises a ConfigValidationError also across two copies of this package (checks `name`). */
export function isConfigValidationError(value: unknown): value is ConfigValidationError {
  return value instanceof Error && value.name === 'ConfigValidationError';
}

/**
 * A stored configuration that cannot be read: not JSON, not a `qmpkit-devices` document, a
 * version this package does not read, or a field of the wrong shape. `problems` name the
 * field by its JSON path (`$.config.devices[1].drive`).
 */
export class ConfigFormatError extends Error {
  override readonly name = 'ConfigFormatError' as const;
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], options?: { cause?: unknown }) {
    super(summarize('cannot read VM configuration', problems), options);
    this.problems = problems;
  }
}

export function isConfigFormatError(value: unknown): value is ConfigFormatError {
  return value instanceof Error && value.name === 'ConfigFormatError';
}

/**
 * A model operation asked for something the configuration does not have or cannot do
 * (an overlay for a device without a drive, a QMP slot without monitor arguments, …).
 * `operation` names the function, `subject` what it was asked about.
 */
export class ModelError extends Error {
  override readonly name = 'ModelError' as const;
  readonly operation: string;
  readonly subject: string;

  constructor(operation: string, subject: string, reason: string, options?: { cause?: unknown }) {
    super(`${operation}: ${reason}`, options);
    this.operation = operation;
    this.subject = subject;
  }
}

export function isModelError(value: unknown): value is ModelError {
  return value instanceof Error && value.name === 'ModelError';
}
