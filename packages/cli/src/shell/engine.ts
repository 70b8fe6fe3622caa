/**
 * What the shell does with one line, apart from terminal handling (see `repl.ts`): parse
 * `command key=value…` or `command {json}`, check it against the live schema, send it, print
 * the result; `transaction(` … `)` collects actions like QEMU's qmp-shell; `help`; HMP mode.
 */
import { appendFileSync } from 'node:fs';
import { validateArgs, validateValue } from '@qmpkit/qapi/runtime-v1';
import {
  isQmpCommandError,
  isQmpDisconnectedError,
  isQmpHmpError,
  isQmpTimeoutError,
  type QmpClient,
} from '@qmpkit/transport';
import { buildArguments, previewOf } from '../args/build.js';
import { tokenize } from '../args/tokenize.js';
import { isArgumentSyntaxError } from '../errors.js';
import { formatJson, formatProblems } from '../format.js';
import type { Paint } from '../io.js';
import type { ArgumentModel } from '../schema/model.js';
import { didYouMean } from '../suggest.js';
import {
  type CompletionContext,
  type ShellMode,
  transactionActions,
  transactionActionType,
} from './complete.js';

export interface ShellSettings {
  readonly mode: ShellMode;
  /** Pretty-print JSON (qmp-shell `-p`). */
  readonly pretty: boolean;
  /** Print each QMP command before sending it (qmp-shell `-v`). */
  readonly verbose: boolean;
  /** Check commands against the live schema before sending (default on). */
  readonly validate: boolean;
  /** Append every command, reply and event as a JSON line to this file (qmp-shell `-l`). */
  readonly logfile?: string;
}

export type OutputKind = 'result' | 'error' | 'info';
export type Print = (text: string, kind: OutputKind) => void;

export const BUILTINS = ['help', 'transaction('] as const;

export class ShellEngine {
  /** Actions collected since `transaction(`; `undefined` outside a transaction. */
  private actions: unknown[] | undefined;
  /** HMP names for completion (set by the REPL after asking QEMU's `help`). */
  hmpNames: { commands: string[]; info: string[] } = { commands: [], info: [] };

  constructor(
    private readonly client: QmpClient,
    readonly model: ArgumentModel | undefined,
    readonly settings: ShellSettings,
    private readonly print: Print,
    private readonly paint: Paint,
  ) {}

  get inTransaction(): boolean {
    return this.actions !== undefined;
  }

  get prompt(): string {
    if (this.settings.mode === 'hmp') return '(HMP) ';
    return this.inTransaction ? 'TRANS> ' : '(QEMU) ';
  }

  completionContext(): CompletionContext {
    return {
      mode: this.settings.mode,
      model: this.model,
      inTransaction: this.inTransaction,
      builtins: BUILTINS,
      hmp: this.hmpNames,
    };
  }

  log(entry: unknown): void {
    if (this.settings.logfile === undefined) return;
    appendFileSync(this.settings.logfile, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
  }

  /** Runs one line; never throws (problems are printed). */
  async run(line: string, signal?: AbortSignal): Promise<void> {
    const text = line.trim();
    if (text === '') return;
    try {
      if (this.settings.mode === 'hmp') await this.runHmp(text, signal);
      else await this.runQmp(text, signal);
    } catch (error) {
      this.printFailure(error);
    }
  }

  private async runHmp(text: string, signal: AbortSignal | undefined): Promise<void> {
    this.log({ hmp: text });
    let output: string;
    try {
      output = await this.client.hmp(text, { ...(signal ? { signal } : {}), errors: 'throw' });
    } catch (error) {
      if (!isQmpHmpError(error)) throw error;
      this.log({ return: error.output });
      this.print(error.output.replace(/\r\n/g, '\n').replace(/\n$/, ''), 'error');
      return;
    }
    this.log({ return: output });
    const shown = output.replace(/\r\n/g, '\n').replace(/\n$/, '');
    if (shown !== '') this.print(shown, 'result');
  }

  private async runQmp(text: string, signal: AbortSignal | undefined): Promise<void> {
    const { tokens, open } = tokenize(text);
    if (open) {
      this.print('error: unterminated quote or bracket', 'error');
      return;
    }
    const words = tokens.map((t) => t.text);
    const first = words[0]!;
    if (this.actions !== undefined) return this.transactionLine(words, signal);
    if (first === 'transaction(') {
      this.actions = [];
      if (words.length > 1) await this.transactionLine(words.slice(1), signal);
      return;
    }
    if (first === 'help') {
      this.print(this.help(words.slice(1)), 'info');
      return;
    }
    await this.execute(first, words.slice(1), signal);
  }

  private async execute(command: string, words: string[], signal: AbortSignal | undefined) {
    const model = this.model;
    const check = this.settings.validate && model !== undefined;
    if (check && !model.hasCommand(command)) {
      this.print(this.unknownCommand(command), 'error');
      return;
    }
    if (command.startsWith('{') && words.length === 0) {
      this.print('error: give the command name first: <command> {json arguments}', 'error');
      return;
    }
    const argType = model?.argType(command);
    const args = buildArguments(words, model, argType);
    if (check) {
      const problems = validateArgs(model.tables, command, args);
      if (problems.length > 0) {
        this.print(
          `error: ${command}: invalid arguments, nothing sent\n${formatProblems(problems, { model, argType, args }, this.paint)}`,
          'error',
        );
        return;
      }
    }
    await this.send(command, args, signal);
  }

  private async send(command: string, args: unknown, signal: AbortSignal | undefined) {
    const wire = args === undefined ? { execute: command } : { execute: command, arguments: args };
    if (this.settings.verbose) this.print(formatJson(wire, this.settings.pretty), 'info');
    this.log(wire);
    try {
      const result = await this.client.executeUnchecked(command, args, signal ? { signal } : {});
      this.log({ return: result });
      this.print(formatJson(result, this.settings.pretty), 'result');
    } catch (error) {
      if (isQmpCommandError(error)) {
        this.log({ error: { class: error.errorClass, desc: error.desc } });
        const hint =
          error.errorClass === 'CommandNotFound' && this.model
            ? ` — ${didYouMean(command, this.model.commandNames()) || 'see help'}`
            : '';
        this.print(`error: ${error.errorClass}: ${error.desc}${hint}`, 'error');
        return;
      }
      throw error;
    }
  }

  private unknownCommand(command: string): string {
    const model = this.model!;
    const hint = didYouMean(command, [...model.commandNames(), ...BUILTINS]);
    const hmp = /^(info|c|cont|stop|q|quit|savevm|loadvm|system_\w+)$/.test(command)
      ? ' (HMP commands: start the shell with --hmp, or send human-monitor-command command-line="…")'
      : '';
    return `error: QEMU ${model.qemuVersion} has no command '${command}'${hint ? `; ${hint}` : ''}${hmp}`;
  }

  private async transactionLine(words: string[], signal: AbortSignal | undefined): Promise<void> {
    let rest = words;
    let finish = false;
    if (rest.at(-1) === ')') {
      finish = true;
      rest = rest.slice(0, -1);
    }
    if (rest.length > 0) this.addAction(rest);
    if (!finish) return;
    const actions = this.actions ?? [];
    this.actions = undefined;
    if (actions.length === 0) {
      this.print('transaction is empty; nothing sent', 'info');
      return;
    }
    const args = { actions };
    const model = this.model;
    if (this.settings.validate && model?.hasCommand('transaction')) {
      const problems = validateArgs(model.tables, 'transaction', args);
      if (problems.length > 0) {
        const argType = model.argType('transaction');
        this.print(
          `error: transaction: invalid arguments, nothing sent\n${formatProblems(problems, { model, argType, args }, this.paint)}`,
          'error',
        );
        return;
      }
    }
    await this.send('transaction', args, signal);
  }

  private addAction(words: string[]): void {
    const [type, ...rest] = words as [string, ...string[]];
    const model = this.model;
    const index = this.actions?.length ?? 0;
    if (model === undefined || !model.hasCommand('transaction')) {
      this.actions?.push({ type, data: buildArguments(rest) ?? {} });
      return;
    }
    const action = transactionActionType(model, type);
    if (action === undefined) {
      const hint = didYouMean(type, transactionActions(model));
      this.print(`error: '${type}' is not a transaction action${hint ? `; ${hint}` : ''}`, 'error');
      return;
    }
    const data = buildArguments(rest, model, action.type) ?? {};
    const value = action.wrapped ? { type, data } : { ...data, type };
    if (this.settings.validate) {
      const element = model.element(model.typeAt(model.argType('transaction'), ['actions'], {}));
      const problems = element ? validateValue(model.tables, element, value) : [];
      if (problems.length > 0) {
        const shown = problems.map((p) => ({ ...p, path: p.path.replace(/^\$\.data/, '$') }));
        this.print(
          `error: action ${type} not added\n${formatProblems(
            shown,
            {
              model,
              argType: action.type,
              args: data,
              pathPrefix: `$.actions[${index}]${action.wrapped ? '.data' : ''}`,
            },
            this.paint,
          )}`,
          'error',
        );
        return;
      }
    }
    this.actions?.push(value);
  }

  /** `help` and `help <command> [key=value…]`. */
  help(words: readonly string[]): string {
    const model = this.model;
    if (words.length === 0) {
      return [
        'Type a QMP command and its arguments as key=value words or one JSON object:',
        '  query-status',
        '  blockdev-add driver=null-co node-name=null0 size=1048576',
        '  blockdev-add {"driver": "null-co", "node-name": "null0"}',
        'Nested keys use dots (options.size=…); lists take a,b,c or JSON; quote to force a string.',
        "Tab completes commands, keys and enum values from this QEMU's schema.",
        'help <command> [tag=value]   arguments of a command (a union branch with tag=value)',
        'transaction( … )            collect actions on the following lines, send at )',
        'Ctrl-C cancels the line or stops waiting; Ctrl-D quits.',
        model ? `QEMU ${model.qemuVersion}: ${model.commandNames().length} commands.` : '',
      ]
        .filter((l) => l !== '')
        .join('\n');
    }
    if (model === undefined) return 'no schema: this QEMU did not answer query-qmp-schema';
    const command = words[0]!;
    const spec = model.tables.commands[command];
    if (!model.hasCommand(command) || spec === undefined) return this.unknownCommand(command);
    const lines = [`${command}${spec.features?.length ? ` [${spec.features.join(', ')}]` : ''}`];
    const argType = spec.args;
    if (argType === undefined) lines.push('  (no arguments)');
    else {
      const preview = previewOf(words.slice(1));
      const { members, tag, branchSelected } = model.members(argType, preview);
      for (const m of members) {
        const flags = m.features?.length ? ` [${m.features.join(', ')}]` : '';
        lines.push(`  ${m.name}${m.optional ? '?' : ''}: ${model.describe(m.type)}${flags}`);
      }
      if (tag !== undefined && !branchSelected)
        lines.push(`  (more members per '${tag}': help ${command} ${tag}=<value>)`);
    }
    if (spec.returns !== undefined) lines.push(`  returns: ${model.describe(spec.returns)}`);
    if (spec.allowOob) lines.push('  allows exec-oob');
    return lines.join('\n');
  }

  private printFailure(error: unknown): void {
    if (isArgumentSyntaxError(error)) this.print(`error: ${error.message}`, 'error');
    else if (isQmpTimeoutError(error)) this.print(`error: ${error.message}`, 'error');
    else if (isQmpDisconnectedError(error)) this.print(`error: ${error.message}`, 'error');
    else if (error instanceof Error && error.name === 'AbortError')
      this.print('cancelled (QEMU may still run the command; its reply will be dropped)', 'info');
    else if (error instanceof Error) this.print(`error: ${error.message}`, 'error');
    else this.print(`error: ${String(error)}`, 'error');
  }
}
