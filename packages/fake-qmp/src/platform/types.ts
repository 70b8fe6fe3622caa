import type * as fs from 'node:fs';
import type net from 'node:net';
import type os from 'node:os';
import type path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Storage } from '../model/storage.js';

/**
 * What the fake takes from Node: files, sockets, temp dirs, in-memory stream pairs. The model
 * and the protocol never import Node themselves; they reach these through `#node`, which is
 * `node.ts` in Node and `node.browser.ts` (no Node at all) under the `browser` condition.
 */
export interface NodePlatform {
  readonly fs: typeof fs;
  readonly net: typeof net;
  readonly os: typeof os;
  readonly path: typeof path;
  createDuplexPair(): [Duplex, Duplex];
  hostStorage(): Storage;
}

/** Where a migration channel connects or listens (QEMU's `SocketAddress`, unix and inet). */
export type ChannelAddress =
  | { readonly type: 'unix'; readonly path: string }
  | { readonly type: 'inet'; readonly host: string; readonly port: number };

/** One end of a byte stream (a migration channel), Node-free. */
export interface ByteChannel {
  write(data: Uint8Array): void;
  /** Half-close: no more writes from this end; the peer's bytes still arrive until it ends. */
  end(): void;
  /** Closes both directions at once (the peer sees its stream end). */
  destroy(): void;
}

/** What a channel reports; `error` carries an errno-style code (`ENOENT`, `ECONNREFUSED`). */
export interface ByteChannelEvents {
  data(chunk: Uint8Array): void;
  /** The peer ended its side (or the channel broke after an `error`). */
  end(): void;
  error(code: string, message: string): void;
}

export interface ChannelListener {
  /** The port actually bound (inet, also for port 0); undefined for unix. */
  readonly port: number | undefined;
  close(): void;
}

/**
 * Byte-stream sockets for the model (migration): Node's `net` in Node, an in-memory network
 * of the page's fakes in a page (`memory-net.ts`). Failures to listen reject with an
 * `{ code, message }` error.
 */
export interface ChannelNet {
  connect(address: ChannelAddress, events: ByteChannelEvents & { connect(): void }): ByteChannel;
  listen(
    address: ChannelAddress,
    accept: (channel: ByteChannel) => ByteChannelEvents,
  ): Promise<ChannelListener>;
}
