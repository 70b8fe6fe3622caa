/**
 * `qmpkit bridge --qmp unix:PATH [--listen 127.0.0.1:PORT]`: a WebSocket↔QMP bridge for
 * pages using `@qmpkit/transport` directly (see `web/bridge.ts`). Prints the URL with its
 * token on stdout, logs on stderr, runs until Ctrl-C or SIGTERM.
 */
import { type Command, Option } from 'commander';
import { startBridge } from '../web/bridge.js';
import { isListenAddressError, isListenError } from '../web/errors.js';
import { ALLOW_REMOTE_FLAG, type ListenAddress, parseListen, remoteWarning } from '../web/gate.js';
import type { CliCommand, CommandContext } from './command.js';

interface BridgeFlags {
  qmp: string;
  listen?: string;
  allowRemote?: boolean;
}

export const bridgeCommand: CliCommand = {
  name: 'bridge',
  register(program, context) {
    const command = program
      .command('bridge')
      .description(
        'serve a QMP monitor to web pages over a WebSocket (loopback only, token in the URL)',
      )
      .addOption(
        new Option('--qmp <address>', 'the QMP monitor: unix:PATH or tcp:HOST:PORT')
          .env('QMPKIT_QMP')
          .makeOptionMandatory(),
      );
    withListenOptions(command).action(async (flags: BridgeFlags) => {
      await runUntilStopped(context, async (log) => {
        const bridge = await startBridge({
          qmp: flags.qmp,
          listen: listenAddress(flags, log),
          log,
        });
        context.io.stdout.write(`${bridge.url}\n`);
        return () => bridge.close();
      });
    });
  },
};

/** Adds `--listen` and `--allow-remote` (the flags `listenAddress` reads) to a server verb. */
export function withListenOptions(command: Command): Command {
  return command
    .option(
      '--listen <host:port>',
      `address to listen on, loopback unless ${ALLOW_REMOTE_FLAG} (default 127.0.0.1:0, any free port)`,
    )
    .option(
      ALLOW_REMOTE_FLAG,
      'allow a non-loopback --listen address (still token-protected; prints a warning)',
    );
}

/**
 * `--listen` and `--allow-remote` as a validated address (a `ListenAddressError` when a
 * non-loopback address comes without the flag); with the flag and a non-loopback address, the
 * warning goes to the log (stderr) before anything listens.
 */
export function listenAddress(
  flags: { listen?: string; allowRemote?: boolean },
  log: (line: string) => void,
): ListenAddress {
  const address = parseListen(flags.listen, { allowRemote: flags.allowRemote === true });
  const warning = remoteWarning(address);
  if (warning !== undefined) for (const line of warning.split('\n')) log(line);
  return address;
}

/**
 * Starts a server with `start` (log lines go to stderr, stamped), then waits for Ctrl-C or
 * SIGTERM and closes it. Address errors exit 2 with their message.
 */
export async function runUntilStopped(
  context: CommandContext,
  start: (log: (line: string) => void) => Promise<() => Promise<void>>,
): Promise<void> {
  const { io } = context;
  const log = (line: string) => io.stderr.write(`${new Date().toISOString()} ${line}\n`);
  let close: () => Promise<void>;
  try {
    close = await start(log);
  } catch (error) {
    if (isListenAddressError(error) || isListenError(error)) {
      io.stderr.write(`qmpkit: ${error.message}\n`);
      context.exit(error.exitCode);
      return;
    }
    throw error;
  }
  await new Promise<void>((resolve) => {
    const onStop = () => {
      unsubscribe();
      process.off('SIGTERM', onStop);
      resolve();
    };
    const unsubscribe = io.onInterrupt(onStop);
    process.on('SIGTERM', onStop);
  });
  log('shutting down');
  await close();
  context.exit(0);
}
