import { MemoryNet } from './memory-net.js';
import type { ChannelNet, NodePlatform } from './types.js';

/**
 * In a page there is no Node: the fake serves clients attached in memory (`attach`, the msw
 * adapter) with `storage: 'memory'`; listeners and host files need Node. Migration runs
 * between the page's fakes over an in-memory network (`channelNet`).
 */
export const nodePlatform: NodePlatform | undefined = undefined;

/**
 * Bytes as `Storage.write` takes them. The type says `Buffer` (Node's storage classes use it);
 * a page has no `Buffer`, and its storage is `MemoryStorage`, whose port to plain
 * `Uint8Array`s is the storage model's business — the bytes are passed on unchanged.
 */
export const storageBytes = (data: Uint8Array): Buffer => data as Buffer;

/** Migration channels between the fakes of this page (no sockets in a page). */
export const channelNet: ChannelNet = new MemoryNet();
