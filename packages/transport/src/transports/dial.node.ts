import net from 'node:net';
import { QmpConnectionError } from '../errors.js';
import { formatAddress, type QmpAddress } from './address.js';
import { type QmpChannel, StreamChannel } from './channel.js';
import { type DialOptions, dialWebSocket } from './websocket.js';

/** Opens the byte channel for an address (no QMP yet). */
export async function dial(address: QmpAddress, options: DialOptions = {}): Promise<QmpChannel> {
  const label = formatAddress(address);
  switch (address.kind) {
    case 'duplex':
      return new StreamChannel(address.stream, label);
    case 'unix':
    case 'tcp': {
      const socket =
        address.kind === 'unix'
          ? net.createConnection({ path: address.path })
          : net.createConnection({ host: address.host, port: address.port, noDelay: true });
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          socket.destroy();
          reject(
            new QmpConnectionError(label, 'ABORT_ERR', 'connect aborted', {
              cause: options.signal?.reason,
            }),
          );
        };
        if (options.signal?.aborted) return onAbort();
        options.signal?.addEventListener('abort', onAbort, { once: true });
        socket.once('connect', () => {
          options.signal?.removeEventListener('abort', onAbort);
          resolve();
        });
        socket.once('error', (error: NodeJS.ErrnoException) => {
          options.signal?.removeEventListener('abort', onAbort);
          reject(new QmpConnectionError(label, error.code, error.message, { cause: error }));
        });
      });
      return new StreamChannel(socket, label);
    }
    case 'ws':
      return dialWebSocket(address.url, label, options);
  }
}
