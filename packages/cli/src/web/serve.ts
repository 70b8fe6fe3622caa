/**
 * `qmpkit serve --dir VMDIR`: the dashboard of a VM run by `qmpkit vm start`.
 *
 * HTTP serves the page (`dashboard/`: plain HTML, CSS and one JS module, no build step and
 * no framework); `/ws` speaks the supervisor's control protocol (`vm/protocol.ts`) over a
 * WebSocket, one text frame per JSON line: each page gets its own connection to the
 * supervisor's control socket, so progress lines and `subscribe` notices reach only the page
 * that asked. Only the methods a dashboard needs pass (`PAGE_METHODS`); `stop`, `migrate` and
 * `backup` (which name paths on this machine) are answered with an error by this server.
 * The token gate and close codes are `gate.ts`'s; the supervisor going away closes pages
 * with 4502.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type WebSocket, WebSocketServer } from 'ws';
import { vmPaths } from '../vm/paths.js';
import { isRecord, lineReader, type Method } from '../vm/protocol.js';
import { shutdown } from './bridge.js';
import { authority, CLOSE, closeWith, gate, type ListenAddress, listen, newToken } from './gate.js';

/** What a page may ask the supervisor. */
export const PAGE_METHODS: readonly Method[] = [
  'status',
  'list',
  'tree',
  'graph',
  'subscribe',
  'save',
  'load',
  'delete',
  'abort',
];

export interface ServeOptions {
  /** The VM directory (its supervisor's control socket). */
  readonly dir: string;
  readonly listen: ListenAddress;
  readonly token?: string;
  readonly log?: (line: string) => void;
  readonly authTimeoutMs?: number;
}

export interface Dashboard {
  /** `http://HOST:PORT/?token=…`: open it in a browser. */
  readonly url: string;
  /** `ws://HOST:PORT/ws?token=…`: the protocol endpoint. */
  readonly wsUrl: string;
  readonly port: number;
  readonly token: string;
  close(): Promise<void>;
}

/** The page's files, beside this module (`src/web/dashboard`, `dist/web/dashboard`). */
// (`import.meta.dirname` needs Node 20.11; `engines` says >=20.)
const ASSETS = fileURLToPath(new URL('./dashboard/', import.meta.url));
const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

export async function startServe(options: ServeOptions): Promise<Dashboard> {
  const control = vmPaths(options.dir).control;
  const log = options.log ?? (() => {});
  const token = options.token ?? newToken();
  let counter = 0;

  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const entry = FILES[url.pathname];
    if (url.pathname === '/favicon.ico') {
      // No icon: an empty answer keeps the browser's console free of a 404.
      response.writeHead(204);
      response.end();
      return;
    }
    if (request.method !== 'GET' || entry === undefined) {
      response.writeHead(request.method === 'GET' ? 404 : 405, {
        'content-type': 'text/plain; charset=utf-8',
      });
      response.end('not found\n');
      return;
    }
    readFile(path.join(ASSETS, entry.file)).then(
      (body) => {
        response.writeHead(200, {
          'content-type': entry.type,
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
          'referrer-policy': 'no-referrer',
          'content-security-policy': `default-src 'self'; connect-src ws://${request.headers.host ?? ''}`,
        });
        response.end(body);
      },
      (error: unknown) => {
        log(`GET ${url.pathname}: ${String(error)}`);
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        response.end('cannot read the page\n');
      },
    );
  });
  const wss = new WebSocketServer({ server, path: '/ws', maxPayload: 1024 * 1024 });

  wss.on('connection', (ws, request) => {
    const label = `page ${++counter} (${request.socket.remoteAddress}:${request.socket.remotePort})`;
    log(`${label}: connected`);
    ws.on('error', (error) => log(`${label}: ${error.message}`));
    gate(ws, request, {
      token,
      log,
      label,
      ...(options.authTimeoutMs !== undefined ? { authTimeoutMs: options.authTimeoutMs } : {}),
      ready: () => relay(ws, label),
    });
  });

  /** Connects `ws` to the supervisor; returns the handler for its text frames. */
  const relay = (ws: WebSocket, label: string): ((text: string) => void) => {
    const upstream = net.connect(control);
    upstream.on(
      'data',
      lineReader(
        (value) => {
          if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(value));
        },
        (problem) => log(`${label}: supervisor sent ${problem}`),
      ),
    );
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      const reason = `no VM supervisor at ${options.dir}: ${error.code ?? error.message}`;
      log(`${label}: closed (${CLOSE.upstreamGone}): ${reason}`);
      closeWith(ws, CLOSE.upstreamGone, reason);
    });
    upstream.on('close', (hadError) => {
      if (hadError || ws.readyState !== ws.OPEN) return;
      const reason = 'the VM supervisor closed the connection (VM stopped?)';
      log(`${label}: closed (${CLOSE.upstreamGone}): ${reason}`);
      closeWith(ws, CLOSE.upstreamGone, reason);
    });
    ws.on('close', () => {
      upstream.destroy();
      log(`${label}: gone`);
    });
    return (text) => {
      let request: unknown;
      try {
        request = JSON.parse(text);
      } catch {
        const reason = 'a text frame must hold one complete JSON request';
        log(`${label}: closed (${CLOSE.badFrame}): ${reason}`);
        closeWith(ws, CLOSE.badFrame, reason);
        return;
      }
      const method = isRecord(request) ? request.method : undefined;
      if (typeof method === 'string' && !PAGE_METHODS.includes(method as Method)) {
        ws.send(
          JSON.stringify({
            id: isRecord(request) && typeof request.id === 'number' ? request.id : null,
            error: {
              name: 'ProtocolError',
              message: `'${method}' is not available to pages (${PAGE_METHODS.join(', ')}); use the qmpkit CLI`,
            },
          }),
        );
        return;
      }
      // Anything else (malformed requests too) is the supervisor's to answer.
      if (!upstream.destroyed) upstream.write(`${JSON.stringify(request)}\n`);
    };
  };

  const port = await listen(server, options.listen);
  const where = authority(options.listen.host, port);
  log(`dashboard of ${options.dir} on http://${where}/`);
  return {
    url: `http://${where}/?token=${token}`,
    wsUrl: `ws://${where}/ws?token=${token}`,
    port,
    token,
    close: () => shutdown(server, wss),
  };
}
