/**
 * `qmpkit bridge`: a raw WebSocket↔QMP bridge for pages that use `@qmpkit/transport`
 * directly (`connect('ws://127.0.0.1:PORT/?token=…')`).
 *
 * Framing is the transport's `message` framing, kept exact in both directions: every line
 * QEMU sends (up to and including its newline) becomes one text frame; every text frame a
 * client sends must be one complete JSON value and is written to QEMU followed by a newline.
 * Each client that passes the gate gets its own QMP connection (its own greeting and
 * capabilities negotiation); QMP serves one client at a time, so while one is connected
 * another is closed with 4409. Binary frames close with 1003, frames that are not JSON with
 * 1007, a QEMU that cannot be reached or goes away with 4502. The bridge itself keeps
 * running through all of these; `close()` ends every client (1001) and the listener.
 */
import http from 'node:http';
import net from 'node:net';
import { parseAddress } from '@qmpkit/transport';
import { type WebSocket, WebSocketServer } from 'ws';
import { CliUsageError } from '../errors.js';
import { authority, CLOSE, closeWith, gate, type ListenAddress, listen, newToken } from './gate.js';

export interface BridgeOptions {
  /** The QMP monitor: `unix:PATH` or `tcp:HOST:PORT`. */
  readonly qmp: string;
  readonly listen: ListenAddress;
  /** The token clients must present (default: a fresh random one). */
  readonly token?: string;
  readonly log?: (line: string) => void;
  /** How long a client may take to send its token message (default 10 s). */
  readonly authTimeoutMs?: number;
}

export interface Bridge {
  /** `ws://HOST:PORT/?token=…`: what a page passes to `connect`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly token: string;
  /** Closes every client (1001) and stops listening. */
  close(): Promise<void>;
}

/** A QEMU line longer than this is not QMP (the 10.0 schema reply is ~250 KiB). */
const MAX_LINE = 64 * 1024 * 1024;
/** A command from a page larger than this is refused by `ws` (close 1009). */
const MAX_FRAME = 1024 * 1024;

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const address = parseQmp(options.qmp);
  const log = options.log ?? (() => {});
  const token = options.token ?? newToken();
  const server = http.createServer((_request, response) => {
    response.writeHead(426, { 'content-type': 'text/plain; charset=utf-8' });
    response.end('qmpkit bridge: connect with a WebSocket (ws://…/?token=…)\n');
  });
  const wss = new WebSocketServer({ server, maxPayload: MAX_FRAME });
  let active: WebSocket | undefined;
  let counter = 0;

  wss.on('connection', (ws, request) => {
    const label = `client ${++counter} (${request.socket.remoteAddress}:${request.socket.remotePort})`;
    log(`${label}: connected`);
    ws.on('error', (error) => log(`${label}: ${error.message}`));
    gate(ws, request, {
      token,
      log,
      label,
      ...(options.authTimeoutMs !== undefined ? { authTimeoutMs: options.authTimeoutMs } : {}),
      ready: () => {
        if (active !== undefined) {
          const reason = 'monitor busy: another client is connected (QMP serves one at a time)';
          log(`${label}: closed (${CLOSE.busy}): ${reason}`);
          closeWith(ws, CLOSE.busy, reason);
          return undefined;
        }
        active = ws;
        return session(ws, label);
      },
    });
  });

  /** Connects `ws` to QMP; returns the handler for its text frames. */
  const session = (ws: WebSocket, label: string): ((text: string) => void) => {
    const upstream =
      address.kind === 'unix'
        ? net.connect(address.path)
        : net.connect({ host: address.host, port: address.port });
    let connected = false;
    let partial: Buffer[] = [];
    let partialBytes = 0;
    upstream.on('connect', () => {
      connected = true;
      log(`${label}: QMP connected (${options.qmp})`);
    });
    upstream.on('data', (chunk: Buffer) => {
      let start = 0;
      for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
        const piece = chunk.subarray(start, nl + 1);
        const line = partial.length === 0 ? piece : Buffer.concat([...partial, piece]);
        partial = [];
        partialBytes = 0;
        ws.send(line.toString('utf8'));
        start = nl + 1;
      }
      if (start < chunk.length) {
        partial.push(chunk.subarray(start));
        partialBytes += chunk.length - start;
        if (partialBytes > MAX_LINE) {
          upstream.destroy();
          closeWith(ws, 1009, 'QMP sent a line longer than 64 MiB');
        }
      }
    });
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      const reason = connected
        ? `QMP connection failed: ${error.code ?? error.message}`
        : `cannot reach QMP at ${options.qmp}: ${error.code ?? error.message}`;
      log(`${label}: closed (${CLOSE.upstreamGone}): ${reason}`);
      closeWith(ws, CLOSE.upstreamGone, reason);
    });
    upstream.on('close', (hadError) => {
      if (hadError || ws.readyState !== ws.OPEN) return;
      const reason = 'QEMU closed the monitor connection';
      log(`${label}: closed (${CLOSE.upstreamGone}): ${reason}`);
      closeWith(ws, CLOSE.upstreamGone, reason);
    });
    ws.on('close', (code, reason) => {
      if (active === ws) active = undefined;
      upstream.destroy();
      log(`${label}: gone (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`);
    });
    return (text) => {
      try {
        JSON.parse(text);
      } catch {
        const reason = 'a text frame must hold one complete JSON value (one QMP command)';
        log(`${label}: closed (${CLOSE.badFrame}): ${reason}: ${text.slice(0, 60)}`);
        upstream.destroy();
        closeWith(ws, CLOSE.badFrame, reason);
        return;
      }
      // Written before `connect` too: the socket queues it.
      if (!upstream.destroyed) upstream.write(`${text.trimEnd()}\n`);
    };
  };

  const port = await listen(server, options.listen);
  const url = `ws://${authority(options.listen.host, port)}/?token=${token}`;
  log(`listening on ${authority(options.listen.host, port)} for QMP at ${options.qmp}`);
  return {
    url,
    host: options.listen.host,
    port,
    token,
    close: () => shutdown(server, wss),
  };
}

/** Closes every client with 1001, then the listener; ends lingering sockets after 1 s. */
export function shutdown(server: http.Server, wss: WebSocketServer): Promise<void> {
  for (const client of wss.clients) closeWith(client, CLOSE.shutdown, 'server shutting down');
  const force = setTimeout(() => {
    for (const client of wss.clients) client.terminate();
    server.closeAllConnections();
  }, 1000);
  force.unref();
  return new Promise<void>((resolve) => {
    wss.close(() => {
      server.close(() => {
        clearTimeout(force);
        resolve();
      });
      // Idle keep-alive HTTP connections would hold `close` open.
      server.closeIdleConnections();
    });
  });
}

function parseQmp(
  text: string,
): { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number } {
  let parsed: ReturnType<typeof parseAddress>;
  try {
    parsed = parseAddress(text);
  } catch (error) {
    throw new CliUsageError(`--qmp: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  if (parsed.kind === 'unix' || parsed.kind === 'tcp') return parsed;
  throw new CliUsageError(`--qmp '${text}': expected unix:PATH or tcp:HOST:PORT`);
}
