/**
 * Test support with no Node import (runs in Chromium too): an in-memory WebSocket class, in
 * the WHATWG shape the transport uses, whose server end is a tiny QMP peer built on the
 * codec. Pass `peer.WebSocket` as `connect`'s `WebSocket` option.
 */
import { QmpDecoder } from '../codec/decoder.js';
import { encodeError, encodeEvent, encodeGreeting, encodeReturn } from '../codec/encoder.js';
import type { WireCommand } from '../codec/messages.js';
import type { WebSocketConstructor } from '../transports/websocket.js';

export interface MemoryConnection {
  /** Sends one WebSocket message (text, or binary when given bytes). */
  send(data: string | Uint8Array): void;
  event(name: string, data?: unknown): void;
  /** Closes from the server side with a close code (1000: normal). */
  close(code?: number, reason?: string): void;
}

export type MemoryHandler = (
  command: WireCommand,
  conn: MemoryConnection,
) => { return: unknown } | { error: [string, string] } | 'no-reply' | undefined;

const GREETING = encodeGreeting({ qemu: { major: 7, minor: 2, micro: 22 }, package: 'memory' }, [
  'oob',
]);

interface Listener {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: { message?: string }) => void) | null;
}

/** A QMP peer behind an in-memory WebSocket; every `new peer.WebSocket(url)` is one client. */
export interface MemoryQmp {
  /** Pass as `connect`'s `WebSocket` option. */
  readonly WebSocket: WebSocketConstructor;
  /** Every command the peer decoded, in order. */
  readonly commands: WireCommand[];
  readonly connections: MemoryConnection[];
  /** Every WebSocket message the clients sent, as sent. */
  readonly delivered: string[];
}

export function memoryQmp(handler: MemoryHandler = () => undefined): MemoryQmp {
  const commands: WireCommand[] = [];
  const connections: MemoryConnection[] = [];
  const delivered: string[] = [];

  class MemoryWebSocket implements Listener {
    binaryType = 'blob';
    readyState = 0;
    onopen: Listener['onopen'] = null;
    onmessage: Listener['onmessage'] = null;
    onclose: Listener['onclose'] = null;
    onerror: Listener['onerror'] = null;
    private readonly decoder: QmpDecoder;
    private readonly conn: MemoryConnection;

    constructor(readonly url: string) {
      const toClient = (data: string | Uint8Array) => {
        if (this.readyState !== 1) return;
        // Like a real socket: delivered on a later task, in order.
        setTimeout(() => {
          if (this.readyState !== 1) return;
          this.onmessage?.({ data: typeof data === 'string' ? data : data.slice().buffer });
        }, 0);
      };
      this.conn = {
        send: toClient,
        event: (name, data) => toClient(encodeEvent(name, data)),
        close: (code = 1000, reason = '') => this.finish(code, reason),
      };
      connections.push(this.conn);
      this.decoder = new QmpDecoder(
        {
          greeting: () => {},
          return: () => {},
          error: () => {},
          event: () => {},
          protocolError: () => this.finish(1002, 'protocol error'),
          command: (command) => this.answer(command),
        },
        { framing: 'stream' },
      );
      setTimeout(() => {
        this.readyState = 1;
        this.onopen?.({});
        toClient(GREETING);
      }, 0);
    }

    send(data: string): void {
      if (this.readyState !== 1) throw new TypeError('send on a WebSocket that is not open');
      delivered.push(data);
      this.decoder.push(new TextEncoder().encode(data));
    }

    close(code = 1000, reason = ''): void {
      this.finish(code, reason);
    }

    private finish(code: number, reason: string): void {
      if (this.readyState >= 2) return;
      this.readyState = 2;
      setTimeout(() => {
        this.readyState = 3;
        this.onclose?.({ code, reason, wasClean: code === 1000 });
      }, 0);
    }

    private answer(command: WireCommand): void {
      commands.push(command);
      const name = command.execute ?? command['exec-oob'] ?? '';
      const answer = handler(command, this.conn);
      if (answer === 'no-reply') return;
      if (answer !== undefined) {
        this.conn.send(
          'return' in answer
            ? encodeReturn(answer.return, command.id)
            : encodeError(answer.error[0], answer.error[1], command.id),
        );
        return;
      }
      if (name === 'qmp_capabilities') this.conn.send(encodeReturn({}, command.id));
      else if (name === 'query-status')
        this.conn.send(
          encodeReturn({ status: 'running', singlestep: false, running: true }, command.id),
        );
      else
        this.conn.send(
          encodeError('CommandNotFound', `The command ${name} has not been found`, command.id),
        );
    }
  }

  return { WebSocket: MemoryWebSocket, commands, connections, delivered };
}
