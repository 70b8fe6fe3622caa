import * as fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { HostStorage } from '../model/host-storage.js';
import { createDuplexPair } from '../server/duplex.js';
import type {
  ByteChannel,
  ByteChannelEvents,
  ChannelAddress,
  ChannelNet,
  NodePlatform,
} from './types.js';

/** Node's side of the fake (see `types.ts`); `node.browser.ts` is the page's. */
export const nodePlatform: NodePlatform | undefined = {
  fs,
  net,
  os,
  path,
  createDuplexPair,
  hostStorage: () => new HostStorage(),
};

const netOptions = (a: ChannelAddress): net.NetConnectOpts =>
  a.type === 'unix' ? { path: a.path } : { host: a.host, port: a.port };

/** The writing side of a Node socket as a channel. */
function writerOf(socket: net.Socket): ByteChannel {
  return {
    write: (data) => {
      if (!socket.destroyed && socket.writable) socket.write(data);
    },
    end: () => {
      if (!socket.destroyed) socket.end();
    },
    destroy: () => {
      socket.destroy();
    },
  };
}

/** Reports a Node socket's bytes (as plain `Uint8Array` views), end and errors. */
function attach(socket: net.Socket, events: ByteChannelEvents): void {
  let failed = false;
  socket.on('data', (d: Uint8Array) =>
    events.data(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)),
  );
  socket.on('end', () => events.end());
  socket.on('error', (error: NodeJS.ErrnoException) => {
    failed = true;
    events.error(error.code ?? 'EIO', error.message);
  });
  socket.on('close', () => {
    // A reset (no FIN) ends the stream for the reader too.
    if (failed) events.end();
  });
}

/** Migration channels over Node's `net` (unix sockets and TCP). */
export const channelNet: ChannelNet = {
  connect(address, events) {
    const socket = net.connect({ ...netOptions(address), allowHalfOpen: true });
    socket.once('connect', () => events.connect());
    attach(socket, events);
    return writerOf(socket);
  },
  listen(address, accept) {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: true }, (socket) => {
        attach(socket, accept(writerOf(socket)));
      });
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject({ code: error.code ?? 'EIO', message: error.message }),
      );
      server.listen(netOptions(address), () => {
        const bound = server.address();
        resolve({
          port: typeof bound === 'object' && bound !== null ? bound.port : undefined,
          close: () => server.close(),
        });
      });
    });
  },
};
