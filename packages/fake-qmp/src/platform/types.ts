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
