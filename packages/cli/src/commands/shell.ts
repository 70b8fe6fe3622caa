import { Option } from 'commander';
import { runShell } from '../shell/repl.js';
import { type CliCommand, positiveInt } from './command.js';

interface ShellFlags {
  hmp?: boolean;
  pretty?: boolean;
  verbose?: boolean;
  validate: boolean;
  logfile?: string;
  history?: string | boolean;
  historySize?: number;
  timeout?: number;
  trace?: boolean;
}

export const shellCommand: CliCommand = {
  name: 'shell',
  register(program, context) {
    program
      .command('shell')
      .description(
        'interactive QMP shell: tab completion and validation from the live schema, history, events as they arrive',
      )
      .argument('<address>', 'unix:/path, tcp:host:port or ws://…')
      .option('-H, --hmp', 'HMP mode: lines go through human-monitor-command')
      .option('-p, --pretty', 'pretty-print JSON')
      .option('-v, --verbose', 'print each QMP command before sending it')
      .option('--no-validate', 'send commands without checking them against the schema')
      .option('-l, --logfile <file>', 'append commands, replies and events as JSON lines')
      .option('--history <file>', 'history file (default: $XDG_STATE_HOME/qmpkit/history)')
      .option('--no-history', 'neither read nor write history')
      .addOption(
        new Option('--history-size <n>', 'lines of history kept').argParser(
          positiveInt('--history-size'),
        ),
      )
      .option('--trace', 'print the QMP wire on stderr (> sent, < received, one JSON per line)')
      .addOption(
        new Option('--timeout <ms>', 'connect timeout').argParser(positiveInt('--timeout')),
      )
      .action(async (address: string, flags: ShellFlags) => {
        // --history FILE gives a string, --no-history false, neither undefined (the default file).
        const history =
          flags.history === false
            ? false
            : typeof flags.history === 'string'
              ? flags.history
              : undefined;
        const code = await runShell(context.io, address, {
          mode: flags.hmp ? 'hmp' : 'qmp',
          pretty: flags.pretty === true,
          verbose: flags.verbose === true,
          validate: flags.validate,
          ...(flags.logfile !== undefined ? { logfile: flags.logfile } : {}),
          ...(history !== undefined ? { history } : {}),
          ...(flags.historySize !== undefined ? { historySize: flags.historySize } : {}),
          ...(flags.timeout !== undefined ? { timeout: flags.timeout } : {}),
          ...(flags.trace ? { trace: true } : {}),
        });
        context.exit(code);
      });
  },
};
