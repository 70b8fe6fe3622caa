/**
 * The extension point for subcommands: one module per subcommand exports a `CliCommand`,
 * and `commands/index.ts` lists them. `register` adds the subcommand (with its options) to
 * the commander program; its action reports the exit code through `context.exit`.
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { CliIo } from '../io.js';

export interface CommandContext {
  readonly io: CliIo;
  /** Sets this run's exit code (the last call wins; default 0). */
  exit(code: number): void;
}

export interface CliCommand {
  /** The subcommand's name as typed (`shell`, `exec`, `schema`, …). */
  readonly name: string;
  register(program: Command, context: CommandContext): void;
}

/** Parses a positive integer option (commander `argParser`). */
export function positiveInt(label: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n <= 0)
      throw new InvalidArgumentError(`${label} must be a positive integer.`);
    return n;
  };
}

/** An integer ≥ 0 (commander `argParser`), e.g. a bandwidth where 0 means unlimited. */
export function nonNegativeInt(label: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < 0)
      throw new InvalidArgumentError(`${label} must be an integer ≥ 0.`);
    return n;
  };
}

/** Collects a repeatable option into a list (commander `argParser`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
