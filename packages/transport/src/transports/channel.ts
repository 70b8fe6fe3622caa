import net from 'node:net';
import type { Duplex } from 'node:stream';
import { QmpConnectionError } from '../errors.js';
import { formatAddress, type QmpAddress } from './address.js';

/** What a session needs from a transport: bytes in, lines out, one close notification. */
export interface QmpChannelHandlers {
  data(chunk: Uint8Array): void;
  /** Called once when the channel is gone; `error` when it ended abnormally. */
  close(error: Error | undefined): void;
}

export interface QmpChannel {
  /** The address for messages (`unix:/…`, `tcp:…`, `ws://…`, `duplex`). */
  readonly label: string;
  start(handlers: QmpChannelHandlers): void;
  /** Queues one encoded message. Writes made in the same tick go out in one syscall. */
  write(line: string): void;
  /** Graceful close: flush, then end. */
  end(): void;
  /** Immediate close. */
  destroy(): void;
}

/** A Node stream (net.Socket, a child's stdio socketpair end, or another Duplex) as a channel. */
export class StreamChannel implements QmpChannel {
  readonly label: string;
  private readonly stream: Duplex;
  private closedOnce = false;
  private error: Error | undefined;
  private handlers: QmpChannelHandlers | undefined;

  constructor(stream: Duplex, label = 'duplex') {
    this.stream = stream;
    this.label = label;
  }

  start(handlers: QmpChannelHandlers): void {
    this.handlers = handlers;
    const stream = this.stream;
    stream.on('data', handlers.data);
    stream.on('error', (error: Error) => {
      this.error ??= error;
      // Errors are followed by 'close' for sockets; make sure of it for other Duplexes.
      if (!stream.destroyed) stream.destroy();
    });
    // The peer ended its side: QMP has no half-close, so we are done too.
    stream.on('end', () => {
      if (!stream.destroyed) stream.destroy();
    });
    stream.on('close', () => this.finish());
    if (stream.destroyed) queueMicrotask(() => this.finish());
  }

  private finish(): void {
    if (this.closedOnce) return;
    this.closedOnce = true;
    this.handlers?.close(this.error);
  }

  write(line: string): void {
    const stream = this.stream;
    if (stream.destroyed || stream.writableEnded) return;
    // The first write of a tick goes out at once (lowest latency for sequential use);
    // later writes in the same tick are joined and sent as one write at the tick's end.
    if (this.batch === undefined) {
      this.batch = '';
      process.nextTick(this.flush);
      stream.write(line);
    } else {
      this.batch += line;
    }
  }

  private batch: string | undefined;
  private readonly flush = (): void => {
    const batch = this.batch;
    this.batch = undefined;
    if (batch && !this.stream.destroyed && !this.stream.writableEnded) this.stream.write(batch);
  };

  end(): void {
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end();
  }

  destroy(): void {
    if (!this.stream.destroyed) this.stream.destroy();
  }
}

/** The subset of the WHATWG WebSocket interface used here (global `WebSocket` and `ws` both fit). */
interface WebSocketInstance {
  binaryType: string;
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: { message?: string; error?: unknown }) => void) | null;
}

/** A WebSocket class: the global `WebSocket` (Node ≥ 22, browsers) or `ws`'s `WebSocket`. */
export type WebSocketConstructor = abstract new (
  url: string,
  protocols?: string | string[],
) => object;

/**
 * How QMP is framed on the WebSocket:
 * - `message` (default): every WebSocket message holds one or more complete QMP JSON
 *   messages (a trailing newline is optional); each command is sent as one text message.
 *   This is what simple line bridges produce.
 * - `stream`: WebSocket messages are arbitrary slices of the QMP byte stream (websockify
 *   style, text or binary); commands are sent newline-terminated.
 */
export type WebSocketFraming = 'message' | 'stream';

const encoder = new TextEncoder();
const NL = new Uint8Array([0x0a]);

export class WebSocketChannel implements QmpChannel {
  readonly label: string;
  private readonly socket: WebSocketInstance;
  private readonly framing: WebSocketFraming;
  private closedOnce = false;
  private error: Error | undefined;
  private handlers: QmpChannelHandlers | undefined;

  constructor(
    socket: object,
    label: string,
    framing: WebSocketFraming = 'message',
    /** Messages that arrived before `start` (a server may greet in the handshake's tick). */
    private readonly early: { data: unknown }[] = [],
  ) {
    this.socket = socket as WebSocketInstance;
    this.label = label;
    this.framing = framing;
  }

  start(handlers: QmpChannelHandlers): void {
    this.handlers = handlers;
    const ws = this.socket;
    const onMessage = (ev: { data: unknown }) => {
      const bytes = toBytes(ev.data);
      if (bytes === undefined) {
        this.error ??= new Error('WebSocket delivered a message of an unsupported type');
        ws.close();
        return;
      }
      handlers.data(bytes);
      if (this.framing === 'message' && bytes[bytes.length - 1] !== 0x0a) handlers.data(NL);
    };
    ws.onmessage = onMessage;
    for (const ev of this.early.splice(0)) onMessage(ev);
    ws.onerror = (ev) => {
      this.error ??= new Error(`WebSocket error${ev?.message ? `: ${ev.message}` : ''}`, {
        cause: ev?.error,
      });
    };
    ws.onclose = (ev) => {
      if (ev && ev.code !== undefined && ev.code !== 1000 && ev.code !== 1005)
        this.error ??= new Error(`WebSocket closed with code ${ev.code} ${ev.reason ?? ''}`.trim());
      this.finish();
    };
    if (ws.readyState >= 2) queueMicrotask(() => this.finish());
  }

  private finish(): void {
    if (this.closedOnce) return;
    this.closedOnce = true;
    this.handlers?.close(this.error);
  }

  write(line: string): void {
    if (this.socket.readyState !== 1) return;
    this.socket.send(this.framing === 'message' ? line.trimEnd() : line);
  }

  end(): void {
    if (this.socket.readyState <= 1) this.socket.close(1000);
  }

  destroy(): void {
    if (this.socket.readyState <= 1) this.socket.close(1000);
    // Do not wait for the close handshake.
    this.finish();
  }
}

function toBytes(data: unknown): Uint8Array | undefined {
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data))
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data) && data.every((d) => d instanceof Uint8Array))
    return Buffer.concat(data as Uint8Array[]);
  return undefined;
}

export interface DialOptions {
  readonly signal?: AbortSignal;
  /** WebSocket class to use (default: global `WebSocket`, else the `ws` package). */
  readonly WebSocket?: WebSocketConstructor;
  readonly wsFraming?: WebSocketFraming;
  readonly wsProtocols?: string | string[];
}

/** Opens the byte channel for an address (no QMP yet). */
export async function dial(address: QmpAddress, options: DialOptions = {}): Promise<QmpChannel> {
  const label = formatAddress(address);
  switch (address.kind) {
    case 'duplex':
      return new StreamChannel(address.stream, label);
    case 'unix':
    case 'tcp': {
      const socket =
        address.kind === 'unix'
          ? net.createConnection({ path: address.path })
          : net.createConnection({ host: address.host, port: address.port, noDelay: true });
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          socket.destroy();
          reject(
            new QmpConnectionError(label, 'ABORT_ERR', 'connect aborted', {
              cause: options.signal?.reason,
            }),
          );
        };
        if (options.signal?.aborted) return onAbort();
        options.signal?.addEventListener('abort', onAbort, { once: true });
        socket.once('connect', () => {
          options.signal?.removeEventListener('abort', onAbort);
          resolve();
        });
        socket.once('error', (error: NodeJS.ErrnoException) => {
          options.signal?.removeEventListener('abort', onAbort);
          reject(new QmpConnectionError(label, error.code, error.message, { cause: error }));
        });
      });
      return new StreamChannel(socket, label);
    }
    case 'ws': {
      const Ctor = (options.WebSocket ?? (await defaultWebSocket())) as unknown as new (
        url: string,
        protocols?: string | string[],
      ) => WebSocketInstance;
      const ws = new Ctor(address.url, options.wsProtocols);
      ws.binaryType = 'arraybuffer';
      // A server may send its greeting in the same tick as the handshake completes; keep
      // what arrives before the channel takes over (regression: the greeting was lost).
      const early: { data: unknown }[] = [];
      ws.onmessage = (ev) => {
        early.push(ev);
      };
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          ws.close();
          reject(
            new QmpConnectionError(label, 'ABORT_ERR', 'connect aborted', {
              cause: options.signal?.reason,
            }),
          );
        };
        if (options.signal?.aborted) return onAbort();
        options.signal?.addEventListener('abort', onAbort, { once: true });
        ws.onopen = () => {
          options.signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        ws.onerror = (ev) => {
          options.signal?.removeEventListener('abort', onAbort);
          const cause = ev?.error;
          const code =
            typeof cause === 'object' && cause !== null && 'code' in cause
              ? String((cause as { code: unknown }).code)
              : undefined;
          reject(
            new QmpConnectionError(
              label,
              code,
              `WebSocket error${ev?.message ? `: ${ev.message}` : ''}`,
              {
                cause,
              },
            ),
          );
        };
      });
      return new WebSocketChannel(ws, label, options.wsFraming, early);
    }
  }
}

async function defaultWebSocket(): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) return global;
  try {
    const mod = (await import('ws')) as { WebSocket: WebSocketConstructor };
    return mod.WebSocket;
  } catch (error) {
    throw new QmpConnectionError(
      'ws',
      'ERR_MODULE_NOT_FOUND',
      'no WebSocket implementation: pass options.WebSocket or install the ws package',
      { cause: error },
    );
  }
}
