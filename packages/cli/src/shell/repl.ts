/**
 * The interactive shell on a terminal, built on node:readline: its `completer` hook takes
 * the schema-driven completion, its `history`/`'history'` event give bounded, persisted
 * history, `getCursorPos` + `prompt(true)` let events be printed above the prompt while the
 * user is typing without losing the half-typed line, and Ctrl-C/Ctrl-D arrive as
 * `'SIGINT'`/`'close'`. Without a terminal (a pipe), lines run one by one without prompts.
 */
import readline from 'node:readline';
import type { QmpClient } from '@qmpkit/transport';
import { connectCli } from '../connect.js';
import { formatEvent } from '../format.js';
import { type CliIo, painter, type Style, wantsColor } from '../io.js';
import { tablesFromSchemaList } from '../schema/live.js';
import { ArgumentModel } from '../schema/model.js';
import { complete } from './complete.js';
import { type OutputKind, ShellEngine, type ShellSettings } from './engine.js';
import { DEFAULT_HISTORY_SIZE, historyFile, loadHistory, saveHistory } from './history.js';
import { parseHmpHelp, parseHmpInfoHelp } from './hmp.js';
import { tabsApart } from './keys.js';

export interface ShellOptions extends ShellSettings {
  /** History file, or `false` for none. Default: the state directory's file for the mode. */
  readonly history?: string | false;
  readonly historySize?: number;
  /** Connect deadline in ms. */
  readonly timeout?: number;
  /** Print the QMP wire on stderr (`--trace`). */
  readonly trace?: boolean;
}

/** Loads the live schema as validation tables; `undefined` (with a warning) if QEMU has none. */
export async function loadModel(
  client: QmpClient,
  address: string,
  warn: (text: string) => void,
): Promise<ArgumentModel | undefined> {
  const { major, minor, micro } = client.greeting.version.qemu;
  try {
    const list = await client.executeUnchecked('query-qmp-schema');
    return new ArgumentModel(
      await tablesFromSchemaList(
        list,
        `${major}.${minor}.${micro}`,
        `${address} (query-qmp-schema)`,
      ),
    );
  } catch (error) {
    warn(
      `no schema from query-qmp-schema (${error instanceof Error ? error.message : String(error)}); completion and validation are off`,
    );
    return undefined;
  }
}

export async function runShell(io: CliIo, address: string, options: ShellOptions): Promise<number> {
  const client = await connectCli(address, io, {
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.trace ? { trace: true } : {}),
  });
  const out = io.stdout;
  const terminal = out.isTTY === true && (io.stdin as { isTTY?: boolean }).isTTY === true;
  const paint = painter(wantsColor(out, io.env));
  const model = await loadModel(client, address, (text) => io.stderr.write(`qmpkit: ${text}\n`));

  let rl: readline.Interface | undefined;
  let busy = false;
  let promptShown = false;
  const styles: Record<OutputKind | 'event', Style | undefined> = {
    result: undefined,
    error: 'red',
    info: 'dim',
    event: 'cyan',
  };
  // A script piped into the shell must fail when a line failed (like `sh -e` would not, but
  // like every tool whose output a pipeline checks): errors are counted for the exit code.
  let errors = 0;
  const print = (text: string, kind: OutputKind | 'event') => {
    if (kind === 'error') errors++;
    const style = styles[kind];
    const shown = style ? paint(style, text) : text;
    if (rl && terminal && promptShown && !busy) {
      // Clear the prompt line(s), print, and redraw the prompt with what was typed so far.
      const { rows } = rl.getCursorPos();
      readline.moveCursor(out, 0, -rows);
      readline.cursorTo(out, 0);
      readline.clearScreenDown(out);
      out.write(`${shown}\n`);
      rl.prompt(true);
    } else {
      out.write(`${shown}\n`);
    }
  };

  const engine = new ShellEngine(client, model, options, print, paint);
  if (options.mode === 'hmp') {
    try {
      engine.hmpNames = {
        commands: parseHmpHelp(await client.hmp('help')),
        info: parseHmpInfoHelp(await client.hmp('help info')),
      };
    } catch {
      // No HMP completion; commands still work.
    }
  }

  const historyPath =
    options.history === false ? undefined : (options.history ?? historyFile(io.env, options.mode));
  const historySize = options.historySize ?? DEFAULT_HISTORY_SIZE;
  let historyWarned = false;

  const { major, minor, micro } = client.greeting.version.qemu;
  if (terminal) {
    const counts = model ? `, ${model.commandNames().length} commands` : '';
    print(
      `Connected to QEMU ${major}.${minor}.${micro} at ${address}${counts}${options.mode === 'hmp' ? ' (HMP mode)' : ''}. ` +
        'Tab completes, help explains, Ctrl-D quits.',
      'info',
    );
  }

  rl = readline.createInterface({
    input: terminal ? tabsApart(io.stdin) : io.stdin,
    output: out,
    terminal,
    completer: (line: string) => complete(line, engine.completionContext()),
    history: historyPath && terminal ? loadHistory(historyPath, historySize) : [],
    historySize,
    removeHistoryDuplicates: true,
    prompt: engine.prompt,
  });
  const rlRef = rl;

  rlRef.on('history', (lines: string[]) => {
    if (historyPath === undefined || !terminal) return;
    try {
      saveHistory(historyPath, lines, historySize);
    } catch (error) {
      if (!historyWarned)
        print(
          `cannot save history to ${historyPath}: ${error instanceof Error ? error.message : String(error)}`,
          'error',
        );
      historyWarned = true;
    }
  });

  const unsubscribe = client.onAny((event) => {
    engine.log(event);
    print(formatEvent(event, options.pretty), 'event');
  });

  let current: AbortController | undefined;
  let lastCommand = '';
  let queue = Promise.resolve();
  let closing = false;
  const showPrompt = () => {
    if (!terminal || closing) return;
    rlRef.setPrompt(engine.prompt);
    rlRef.prompt();
    promptShown = true;
  };

  rlRef.on('line', (line) => {
    queue = queue.then(async () => {
      if (closing && !line.trim()) return;
      busy = true;
      promptShown = false;
      current = new AbortController();
      lastCommand = line.trim().split(/\s+/)[0] ?? '';
      await engine.run(line, current.signal);
      current = undefined;
      busy = false;
      showPrompt();
    });
  });

  rlRef.on('SIGINT', () => {
    if (busy && current) {
      current.abort();
      return;
    }
    rlRef.write(null, { ctrl: true, name: 'e' });
    rlRef.write(null, { ctrl: true, name: 'u' });
    out.write('^C\n');
    showPrompt();
  });

  let lost = false;
  void client.closed.then(() => {
    if (closing) return;
    lost = true;
    const expected = /^(quit|q)$/.test(lastCommand);
    print(
      expected ? 'QEMU quit; connection closed' : 'QEMU closed the connection',
      expected ? 'info' : 'error',
    );
    if (expected) lost = false;
    rlRef.close();
  });

  const closed = new Promise<void>((resolve) => rlRef.once('close', resolve));
  showPrompt();
  await closed;
  closing = true;
  if (terminal) out.write('\n');
  await queue;
  unsubscribe();
  await client.close();
  // At a terminal a person saw each error; a piped script reports them through its status.
  return lost || (!terminal && errors > 0) ? 1 : 0;
}
