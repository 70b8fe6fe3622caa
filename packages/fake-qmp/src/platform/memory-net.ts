/**
 * A `ChannelNet` inside one JavaScript realm: listeners are registered by address, and
 * `connect` pairs two in-memory channel ends. In a page this is how two fakes migrate to each
 * other (unix paths and loopback ports name listeners; nothing leaves the page). Delivery is
 * on a later turn, in write order, like a socket.
 */
import { nextTurn } from './runtime.js';
import type {
  ByteChannel,
  ByteChannelEvents,
  ChannelAddress,
  ChannelListener,
  ChannelNet,
} from './types.js';

type Accept = (channel: ByteChannel) => ByteChannelEvents;

/** One direction's state: what the receiving end reports, and whether it has ended. */
interface End {
  events: ByteChannelEvents | undefined;
  /** Queued until the receiver's handlers are known. */
  readonly queue: (Uint8Array | 'end')[];
  ended: boolean;
}

const keyOf = (a: ChannelAddress): string =>
  a.type === 'unix' ? `unix:${a.path}` : `inet:${a.host}:${a.port}`;

export class MemoryNet implements ChannelNet {
  private readonly listeners = new Map<string, Accept>();
  /** Ephemeral ports as Linux hands them out (from 32768), for `port: 0`. */
  private nextPort = 32768;

  listen(address: ChannelAddress, accept: Accept): Promise<ChannelListener> {
    let bound = address;
    if (address.type === 'inet' && address.port === 0) {
      while (this.listeners.has(keyOf({ ...address, port: this.nextPort }))) this.nextPort++;
      bound = { ...address, port: this.nextPort++ };
    }
    const key = keyOf(bound);
    if (this.listeners.has(key))
      return Promise.reject({ code: 'EADDRINUSE', message: 'Address already in use' });
    this.listeners.set(key, accept);
    return Promise.resolve({
      port: bound.type === 'inet' ? bound.port : undefined,
      close: () => {
        if (this.listeners.get(key) === accept) this.listeners.delete(key);
      },
    });
  }

  connect(address: ChannelAddress, events: ByteChannelEvents & { connect(): void }): ByteChannel {
    const toServer: End = { events: undefined, queue: [], ended: false };
    const toClient: End = { events, queue: [], ended: false };
    const deliver = (end: End, item: Uint8Array | 'end') => {
      if (end.ended) return;
      if (end.events === undefined) {
        end.queue.push(item);
        return;
      }
      const target = end.events;
      nextTurn(() => {
        if (item === 'end') target.end();
        else target.data(item);
      });
      if (item === 'end') end.ended = true;
    };
    const side = (out: End, back: End): ByteChannel => {
      let closed = false;
      return {
        write: (data) => {
          if (!closed) deliver(out, data.slice());
        },
        end: () => {
          if (closed) return;
          closed = true;
          deliver(out, 'end');
        },
        destroy: () => {
          if (!closed) deliver(out, 'end');
          closed = true;
          // The other direction stops too: this end reports nothing more.
          back.ended = true;
        },
      };
    };
    const client = side(toServer, toClient);
    const accept = this.listeners.get(keyOf(address));
    nextTurn(() => {
      if (accept === undefined) {
        const [code, message] =
          address.type === 'unix'
            ? ['ENOENT', 'No such file or directory']
            : ['ECONNREFUSED', 'Connection refused'];
        events.error(code, message);
        return;
      }
      toServer.events = accept(side(toClient, toServer));
      events.connect();
      for (const item of toServer.queue.splice(0)) deliver(toServer, item);
    });
    return client;
  }
}
