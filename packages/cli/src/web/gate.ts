/**
 * What `qmpkit bridge` and `qmpkit serve` share: the loopback-only `--listen` address, the
 * access token, the WebSocket close codes, and the gate every WebSocket client passes
 * before it reaches QEMU or the supervisor.
 *
 * A browser cannot set headers on a WebSocket, so the token travels in the URL's query
 * (`?token=…`) or, when the URL has none, as the first message (`{"token":"…"}`). A client
 * that fails the gate is closed with a code and a reason the page can show.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import type { WebSocket } from 'ws';
import { ListenAddressError, ListenError } from './errors.js';

/** Close codes the servers use (4000–4999 are the application's own). */
export const CLOSE = {
  /** Normal end (the client or the bridge closed). */
  normal: 1000,
  /** The server shuts down. */
  shutdown: 1001,
  /** A binary frame: QMP and the supervisor's protocol are JSON text. */
  binary: 1003,
  /** A text frame that is not one complete JSON value. */
  badFrame: 1007,
  /** The token is missing or wrong. */
  badToken: 4401,
  /** No token arrived in time. */
  authTimeout: 4408,
  /** The monitor already serves a client (QMP serves one at a time). */
  busy: 4409,
  /** QEMU (or the supervisor) cannot be reached or went away. */
  upstreamGone: 4502,
} as const;

export const DEFAULT_HOST = '127.0.0.1';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /**
   * Set by `--allow-remote`: the host may be a non-loopback address. Without it, `listen`
   * refuses anything but loopback.
   */
  readonly allowRemote?: boolean;
}

/** The flag that lets `qmpkit bridge` and `qmpkit serve` listen on a non-loopback address. */
export const ALLOW_REMOTE_FLAG = '--allow-remote';

/** Whether `host` is a loopback IP address (127.0.0.0/8, ::1, ::ffff:127.x.y.z). */
export function isLoopback(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (net.isIPv4(bare)) return bare.startsWith('127.');
  if (net.isIPv6(bare)) {
    const lower = bare.toLowerCase();
    if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    return mapped?.[1]?.startsWith('127.') === true;
  }
  return false;
}

export interface ParseListenOptions {
  /** `--allow-remote`: accept a non-loopback host (an IP address or a host name). */
  readonly allowRemote?: boolean;
}

/**
 * Parses `--listen` (`HOST:PORT`, `[::1]:PORT`, `PORT`, `localhost:PORT`; port 0 picks a free
 * one). A non-loopback address is a `ListenAddressError` naming the address and
 * `--allow-remote` unless `allowRemote` is set: these servers hand out a VM's monitor, and a
 * token in a ws:// URL travels in clear text on a network.
 */
export function parseListen(
  text: string | undefined,
  options: ParseListenOptions = {},
): ListenAddress {
  const allowRemote = options.allowRemote === true;
  if (text === undefined || text === '')
    return { host: DEFAULT_HOST, port: 0, ...(allowRemote ? { allowRemote } : {}) };
  const match = /^(?:(\[[^\]]+\]|[^:]+):)?(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (match === null || !Number.isInteger(port) || port > 65535)
    throw new ListenAddressError(
      text,
      'syntax',
      `--listen '${text}': expected HOST:PORT with a loopback HOST, e.g. 127.0.0.1:8080`,
    );
  const given = match[1] ?? DEFAULT_HOST;
  const host = given === 'localhost' ? DEFAULT_HOST : given.replace(/^\[|\]$/g, '');
  return checkListen({ host, port, ...(allowRemote ? { allowRemote } : {}) }, text);
}

/**
 * Refuses a non-loopback `address` unless it carries `allowRemote` (a `ListenAddressError`
 * naming the address and the flag); returns it unchanged otherwise. `listen` calls it too, so
 * a program that builds a `ListenAddress` itself meets the same rule.
 */
export function checkListen(address: ListenAddress, given?: string): ListenAddress {
  if (isLoopback(address.host) || address.allowRemote === true) return address;
  const text = given ?? authority(address.host, address.port);
  throw new ListenAddressError(
    text,
    'not-loopback',
    `--listen '${text}': ${address.host} is not a loopback address (127.0.0.1, ::1); reach it from elsewhere through an SSH tunnel, or pass ${ALLOW_REMOTE_FLAG} to listen there anyway (anyone on that network who learns the token controls the VM)`,
  );
}

/**
 * The warning `qmpkit bridge` and `qmpkit serve` print (stderr, before the URL) when they
 * listen on a non-loopback address; `undefined` for loopback.
 */
export function remoteWarning(address: ListenAddress): string | undefined {
  if (isLoopback(address.host)) return undefined;
  return [
    `WARNING: ${ALLOW_REMOTE_FLAG}: listening on ${address.host}, which is not loopback.`,
    'WARNING: anyone who can reach this address and learns the token controls this VM.',
    'WARNING: ws:// and http:// are not encrypted: the token travels in clear text; prefer an SSH tunnel.',
  ].join('\n');
}

/** A fresh random token (128 bits, URL-safe). */
export function newToken(): string {
  return randomBytes(16).toString('base64url');
}

/** Compares in constant time. */
export function tokenMatches(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** `host:port` as a URL authority (IPv6 in brackets). */
export function authority(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Starts `server` on `address`; a failure is a `ListenError`. Resolves to the bound port. */
export function listen(server: http.Server, address: ListenAddress): Promise<number> {
  return new Promise((resolve, reject) => {
    checkListen(address); // throws synchronously inside the executor: a rejection
    const onError = (error: NodeJS.ErrnoException) => {
      reject(new ListenError(address.host, address.port, error.code, { cause: error }));
    };
    server.once('error', onError);
    server.listen(address.port, address.host, () => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** Closes a WebSocket with `code` and a reason cut to the protocol's 123 bytes. */
export function closeWith(ws: WebSocket, code: number, reason: string): void {
  let cut = reason;
  while (Buffer.byteLength(cut) > 123) cut = cut.slice(0, -1);
  ws.close(code, cut);
}

export interface GateOptions {
  readonly token: string;
  /** Where to log refusals (one line each). */
  readonly log: (line: string) => void;
  /** A label for log lines (`client 3 from 127.0.0.1:51234`). */
  readonly label: string;
  /** How long a client may take to send the token message (default 10 s). */
  readonly authTimeoutMs?: number;
  /**
   * Called once the client proved the token; returns the handler for its text frames, or
   * `undefined` when it closed the client itself (e.g. the monitor is busy).
   */
  readonly ready: () => ((text: string) => void) | undefined;
}

/**
 * Guards one WebSocket: binary frames close it (1003); the token is checked from the URL or
 * the first message (4401 when wrong, 4408 when none comes); afterwards every text frame
 * goes to the handler `ready` returned, in order (frames are dispatched synchronously, so
 * none is lost between the token and the handler).
 */
export function gate(ws: WebSocket, request: IncomingMessage, options: GateOptions): void {
  const { log, label } = options;
  let handler: ((text: string) => void) | undefined;
  let state: 'token' | 'open' | 'closed' = 'token';
  const refuse = (code: number, reason: string) => {
    state = 'closed';
    clearTimeout(timer);
    log(`${label}: closed (${code}): ${reason}`);
    closeWith(ws, code, reason);
  };
  const admit = () => {
    clearTimeout(timer);
    state = 'open';
    handler = options.ready();
    if (handler === undefined) state = 'closed';
  };
  const timer = setTimeout(
    () =>
      refuse(CLOSE.authTimeout, 'no token: put ?token=… in the URL or send {"token":"…"} first'),
    options.authTimeoutMs ?? 10_000,
  );
  timer.unref();
  ws.on('close', () => {
    state = 'closed';
    clearTimeout(timer);
  });
  ws.on('message', (data, isBinary) => {
    if (state === 'closed') return;
    if (isBinary) {
      refuse(CLOSE.binary, 'binary frames are not supported: send JSON as text frames');
      return;
    }
    const text = (
      Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
    ).toString('utf8');
    if (state === 'open') {
      handler?.(text);
      return;
    }
    let given: unknown;
    try {
      given = (JSON.parse(text) as { token?: unknown }).token;
    } catch {
      given = undefined;
    }
    if (typeof given !== 'string') {
      refuse(
        CLOSE.badToken,
        'no token: put ?token=… in the URL or send {"token":"…"} as the first message',
      );
      return;
    }
    if (!tokenMatches(options.token, given)) {
      refuse(CLOSE.badToken, 'wrong token');
      return;
    }
    admit();
  });
  const query = new URL(request.url ?? '/', 'http://localhost').searchParams.get('token');
  if (query === null) return; // the first message must carry it
  if (!tokenMatches(options.token, query)) refuse(CLOSE.badToken, 'wrong token');
  else admit();
}
