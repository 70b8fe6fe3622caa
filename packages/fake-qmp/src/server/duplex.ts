import { Duplex } from 'node:stream';

/**
 * Two connected in-memory duplex streams (Node 20 has no `duplexPair`). Bytes written to one
 * end are read from the other on a later microtask, so neither side re-enters the other's
 * handlers; ending or destroying one end ends or closes the other.
 */
export function createDuplexPair(): [Duplex, Duplex] {
  let left: Duplex | undefined;
  let right: Duplex | undefined;
  const make = (peer: () => Duplex | undefined): Duplex =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        const other = peer();
        queueMicrotask(() => {
          if (other && !other.destroyed && !other.readableEnded) other.push(chunk);
        });
        callback();
      },
      final(callback) {
        const other = peer();
        queueMicrotask(() => {
          if (other && !other.destroyed) other.push(null);
        });
        callback();
      },
      destroy(error, callback) {
        const other = peer();
        queueMicrotask(() => {
          if (other && !other.destroyed) other.destroy();
        });
        callback(error);
      },
      allowHalfOpen: false,
    });
  left = make(() => right);
  right = make(() => left);
  return [left, right];
}
