import { bytes } from '../codec/bytes.js';
import { QmpConnectionError } from '../errors.js';
import type { QmpChannel, QmpChannelHandlers } from './channel.js';

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
  // ws's 'fragments' binary type: the pieces of one message.
  if (Array.isArray(data) && data.every((d) => d instanceof Uint8Array))
    return bytes.concat(data, total(data));
  return undefined;
}

export interface DialOptions {
  readonly signal?: AbortSignal;
  /** WebSocket class to use (default: global `WebSocket`, else the `ws` package). */
  readonly WebSocket?: WebSocketConstructor;
  readonly wsFraming?: WebSocketFraming;
  readonly wsProtocols?: string | string[];
}

/**
 * Opens a WebSocket to a QMP bridge and resolves once it is open (no QMP yet). Browsers and
 * Node alike: the class is `options.WebSocket`, else the global `WebSocket`, else `ws`.
 */
export async function dialWebSocket(
  url: string,
  label: string,
  options: DialOptions = {},
): Promise<QmpChannel> {
  const Ctor = (options.WebSocket ?? (await defaultWebSocket())) as unknown as new (
    url: string,
    protocols?: string | string[],
  ) => WebSocketInstance;
  const ws = new Ctor(url, options.wsProtocols);
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

function total(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const part of parts) n += part.length;
  return n;
}
