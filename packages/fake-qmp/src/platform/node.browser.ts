import { MemoryNet } from './memory-net.js';
import type { ChannelNet, NodePlatform } from './types.js';

/**
 * In a page there is no Node: the fake serves clients attached in memory (`attach`, the msw
 * adapter) with `storage: 'memory'`; listeners and host files need Node. Migration runs
 * between the page's fakes over an in-memory network (`channelNet`).
 */
export const nodePlatform: NodePlatform | undefined = undefined;

/** Migration channels between the fakes of this page (no sockets in a page). */
export const channelNet: ChannelNet = new MemoryNet();
