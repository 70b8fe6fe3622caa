/**
 * `qmpkit`: the command-line program. `main(argv, io)` runs it and resolves to the exit code;
 * it never throws and never calls `process.exit`, so it can run inside tests and tools.
 */
import { createRequire } from 'node:module';
import { isQmpCommandError, isQmpTimeoutError } from '@qmpkit/transport';
import { Command, CommanderError } from 'commander';
import type { CliCommand, CommandContext } from './commands/command.js';
import { COMMANDS } from './commands/index.js';
import { isCliError } from './errors.js';
import { type CliIo, processIo } from './io.js';

/** This package's version (from its package.json; same path from `src/` and `dist/`). */
export const VERSION: string = (
  createRequire(import.meta.url)('../package.json') as { version: string }
).version;

export interface MainOptions {
  /** Subcommands to offer (default: all of `COMMANDS`). */
  readonly commands?: readonly CliCommand[];
}

export function buildProgram(
  context: CommandContext,
  commands: readonly CliCommand[] = COMMANDS,
): Command {
  const { io } = context;
  const program = new Command('qmpkit')
    .description(
      'Drive QEMU through QMP: interactive shell, one-shot commands, events, schema diffs, supervised VMs and snapshots',
    )
    .version(VERSION)
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .addHelpText(
      'after',
      '\nAddresses: unix:/path/to/qmp.sock, tcp:host:port, ws://host:port/path\n' +
        'Exit codes: 0 ok, 1 QEMU answered with an error, 2 usage error or unreachable address, 130 interrupted.',
    );
  for (const command of commands) command.register(program, context);
  // Subcommands inherit the output settings and the exit override.
  for (const sub of program.commands) copySettings(program, sub);
  return program;
}

function copySettings(parent: Command, command: Command): void {
  command.exitOverride().showSuggestionAfterError(true);
  command.configureOutput(parent.configureOutput());
  for (const sub of command.commands) copySettings(command, sub);
}

/** Runs the CLI with `argv` (without `node` and the script); resolves to the exit code. */
export async function main(
  argv: readonly string[],
  io: CliIo = processIo(),
  options: MainOptions = {},
): Promise<number> {
  let exitCode = 0;
  const context: CommandContext = {
    io,
    exit: (code) => {
      exitCode = code;
    },
  };
  const program = buildProgram(context, options.commands);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version "errors" exit 0; bad usage exits 2 (commander printed the message).
      return error.exitCode === 0 ? 0 : 2;
    }
    if (isCliError(error)) {
      io.stderr.write(`qmpkit: ${error.message}\n`);
      return error.exitCode;
    }
    if (isQmpCommandError(error)) {
      io.stderr.write(`qmpkit: ${error.errorClass}: ${error.desc}\n`);
      return 1;
    }
    if (isQmpTimeoutError(error)) {
      io.stderr.write(`qmpkit: ${error.message}\n`);
      return 1;
    }
    const message = error instanceof Error ? error.message : String(error);
    io.stderr.write(`qmpkit: ${message}\n`);
    return 1;
  }
}
