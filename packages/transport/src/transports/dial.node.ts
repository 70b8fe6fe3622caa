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
      const socket = await connectSocket(
        address.kind === 'unix'
          ? { path: address.path }
          : { host: address.host, port: address.port, noDelay: true },
        label,
        options.signal,
      );
      return new StreamChannel(socket, label);
    }
    case 'ws':
      return dialWebSocket(address.url, label, options);
  }
}

/**
 * Opens a UNIX or TCP socket and resolves once it is connected. A refused or failed connect
 * rejects with `QmpConnectionError` (the errno code as `code`); an abort destroys the socket
 * and rejects with code `ABORT_ERR` and the signal's reason as `cause`. Shared by `dial` and
 * the guest agent's session (`@qmpkit/transport/agent`), both Node only.
 */
export async function connectSocket(
  target: net.NetConnectOpts,
  label: string,
  signal?: AbortSignal,
): Promise<net.Socket> {
  const socket = net.createConnection(target);
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      socket.destroy();
      reject(
        new QmpConnectionError(label, 'ABORT_ERR', 'connect aborted', { cause: signal?.reason }),
      );
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      signal?.removeEventListener('abort', onAbort);
      reject(new QmpConnectionError(label, error.code, error.message, { cause: error }));
    });
  });
  return socket;
}
