import * as fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { HostStorage } from '../model/host-storage.js';
import { createDuplexPair } from '../server/duplex.js';
import type { NodePlatform } from './types.js';

/** Node's side of the fake (see `types.ts`); `node.browser.ts` is the page's. */
export const nodePlatform: NodePlatform | undefined = {
  fs,
  net,
  os,
  path,
  createDuplexPair,
  hostStorage: () => new HostStorage(),
};
