/**
 * Connecting from the command line: the address syntax of `@qmpkit/transport`, and every
 * way of not getting a QMP session turned into a `CliConnectError` (exit code 2) that says
 * what to check.
 */
import {
  connect,
  isQmpConnectionError,
  isQmpProtocolError,
  isQmpTimeoutError,
  parseAddress,
  type QmpClient,
  type WebSocketConstructor,
} from '@qmpkit/transport';
import { CliConnectError, CliUsageError } from './errors.js';
import type { CliIo } from './io.js';

export interface CliConnectOptions {
  /** Deadline for connect + greeting + negotiation, ms. */
  readonly timeout?: number;
  /** Print the QMP wire on stderr: `> ` before each line sent, `< ` before each received. */
  readonly trace?: boolean;
}

const HINTS: Record<string, string> = {
  ENOENT: 'no such socket file',
  ECONNREFUSED: 'nothing is listening there',
  EACCES: 'permission denied',
  ENOTSOCK: 'not a socket',
  EHOSTUNREACH: 'host unreachable',
  ENOTFOUND: 'unknown host',
};

export async function connectCli(
  address: string,
  io: CliIo,
  options: CliConnectOptions = {},
): Promise<QmpClient> {
  let parsed: ReturnType<typeof parseAddress>;
  try {
    parsed = parseAddress(address);
  } catch (error) {
    throw new CliUsageError(error instanceof Error ? error.message : String(error));
  }
  const timeout = options.timeout ?? 10_000;
  try {
    return await connect(parsed, {
      connectTimeout: timeout,
      logger: { warn: (message: string) => io.stderr.write(`qmpkit: ${message}\n`) },
      ...(options.trace
        ? {
            trace: (direction: 'send' | 'recv', line: string) =>
              io.stderr.write(`${direction === 'send' ? '>' : '<'} ${line}\n`),
          }
        : {}),
      ...(parsed.kind === 'ws' ? { WebSocket: await webSocketClass() } : {}),
    });
  } catch (error) {
    const code = isQmpConnectionError(error) ? error.code : undefined;
    let reason: string;
    if (code === 'ETIMEDOUT' || isQmpTimeoutError(error)) {
      reason = `no QMP greeting within ${timeout} ms (QEMU serves one client per QMP monitor: is another client connected?)`;
    } else if (isQmpProtocolError(error)) {
      reason = `not a QMP server (${error.message})`;
    } else {
      const message = error instanceof Error ? error.message : String(error);
      const hint = code !== undefined ? HINTS[code] : undefined;
      reason =
        (hint ? `${hint} (${code})` : undefined) ??
        (parsed.kind === 'ws' ? webSocketReason(code, message) : undefined) ??
        message.replace(`${address}: `, '').trim();
    }
    throw new CliConnectError(address, code, `cannot connect to ${address}: ${reason}`, {
      cause: error,
    });
  }
}

/**
 * What a failed WebSocket handshake means, in place of the `ws` package's raw text (an
 * OpenSSL record dump for wss:// to a plain server, an HTTP parser error for a raw QMP port).
 */
function webSocketReason(code: string | undefined, message: string): string | undefined {
  if (code === 'EPROTO' || code?.startsWith('ERR_SSL_'))
    return `TLS handshake failed (${code}): is the server plain ws:// rather than wss://?`;
  const status = /Unexpected server response: (\d+)/.exec(message)?.[1];
  if (status !== undefined)
    return `the server answered HTTP ${status}, not a WebSocket upgrade: is the path right?`;
  if (code?.startsWith('HPE_'))
    return `the server does not speak HTTP (${code}): for a plain QMP socket use tcp:host:port`;
  return undefined;
}

/** The `ws` package (a dependency of the CLI; Node 20 has no global WebSocket). */
async function webSocketClass(): Promise<WebSocketConstructor> {
  const { WebSocket } = await import('ws');
  return WebSocket;
}
