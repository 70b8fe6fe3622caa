import type { NodePlatform } from './types.js';

/**
 * In a page there is no Node: the fake serves clients attached in memory (`attach`, the msw
 * adapter) with `storage: 'memory'`; listeners, host files and socket migration need Node.
 */
export const nodePlatform: NodePlatform | undefined = undefined;
