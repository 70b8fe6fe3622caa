/**
 * What a command may touch of the outside world. `main(argv, io)` takes it so tests can run
 * commands in-process with captured output; the binary passes `processIo()`.
 */

/** An output stream (a `Writable`; terminals also have `isTTY` and `columns`). */
export type CliOutput = NodeJS.WritableStream & {
  readonly isTTY?: boolean;
  readonly columns?: number;
};

export interface CliIo {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: CliOutput;
  readonly stderr: CliOutput;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Calls `fn` on Ctrl-C (SIGINT) while subscribed; returns the unsubscribe function. */
  onInterrupt(fn: () => void): () => void;
}

/** The real process: stdio, environment, SIGINT. */
export function processIo(): CliIo {
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    onInterrupt(fn) {
      process.on('SIGINT', fn);
      return () => {
        process.off('SIGINT', fn);
      };
    },
  };
}

/**
 * Whether to colour a stream: `NO_COLOR` (any value) turns colour off, `FORCE_COLOR` (not
 * `0`) turns it on, otherwise only terminals get colour.
 */
export function wantsColor(stream: CliOutput, env: CliIo['env']): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined) return env.FORCE_COLOR !== '0';
  return stream.isTTY === true && env.TERM !== 'dumb';
}

export type Style = 'red' | 'green' | 'yellow' | 'blue' | 'magenta' | 'cyan' | 'dim' | 'bold';

const CODES: Record<Style, [number, number]> = {
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  blue: [34, 39],
  magenta: [35, 39],
  cyan: [36, 39],
  dim: [2, 22],
  bold: [1, 22],
};

/** A painter: `paint('red', text)`, or the text unchanged when colour is off. */
export type Paint = (style: Style, text: string) => string;

export function painter(enabled: boolean): Paint {
  return enabled
    ? (style, text) => `\u001b[${CODES[style][0]}m${text}\u001b[${CODES[style][1]}m`
    : (_style, text) => text;
}
