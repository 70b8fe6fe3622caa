import { QmpConnectionError } from '../errors.js';
import { formatAddress, type QmpAddress } from './address.js';
import type { QmpChannel } from './channel.js';
import { type DialOptions, dialWebSocket } from './websocket.js';

/**
 * Opens the byte channel for an address (no QMP yet), in a browser: only `ws://` and `wss://`
 * addresses can be reached from a page (a UNIX or TCP socket needs a bridge such as
 * `qmpkit bridge`). The Node build (`dial.node.ts`) dials every kind of address.
 */
export async function dial(address: QmpAddress, options: DialOptions = {}): Promise<QmpChannel> {
  const label = formatAddress(address);
  if (address.kind === 'ws') return dialWebSocket(address.url, label, options);
  throw new QmpConnectionError(
    label,
    'ERR_UNSUPPORTED_IN_BROWSER',
    `a page cannot open ${address.kind} QMP addresses; expose the monitor over a WebSocket bridge (qmpkit bridge) and connect to its ws:// URL`,
  );
}
