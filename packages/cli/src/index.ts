/**
 * `@qmpkit/cli`: the `qmpkit` command. Programmatic use: `main(argv, io)` runs it and
 * resolves to the exit code; the building blocks (argument parsing, completion, schema
 * model) are exported for tools that embed a QMP prompt.
 */
export type { Assignment } from './args/build.js';
export { buildArguments, coerce, parseValue, previewOf, splitAssignment } from './args/build.js';
export type { Token, Tokenized } from './args/tokenize.js';
export { tokenize } from './args/tokenize.js';
export type { CliCommand, CommandContext } from './commands/command.js';
export { COMMANDS } from './commands/index.js';
export type { CliError } from './errors.js';
export {
  ArgumentSyntaxError,
  CliConnectError,
  CliUsageError,
  isArgumentSyntaxError,
  isCliConnectError,
  isCliError,
  isCliUsageError,
  isSchemaInputError,
  isVmInitError,
  SchemaInputError,
  VmInitError,
} from './errors.js';
export type { CliIo, CliOutput } from './io.js';
export { processIo } from './io.js';
export type { MainOptions } from './main.js';
export { buildProgram, main, VERSION } from './main.js';
export type { Progress } from './progress.js';
export { createProgress } from './progress.js';
export { OPEN_ARGUMENT_COMMANDS, tablesFromSchemaList } from './schema/live.js';
export { ArgumentModel } from './schema/model.js';
export type { Completion, CompletionContext, ShellMode } from './shell/complete.js';
export { complete } from './shell/complete.js';
export type { ShellOptions } from './shell/repl.js';
export { runShell } from './shell/repl.js';
export { didYouMean, suggest } from './suggest.js';
