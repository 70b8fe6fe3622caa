import { FakeQmpUsageError } from '../errors.js';
import type { NodePlatform } from './types.js';

const proc = (globalThis as { process?: { pid?: number; hrtime?: { bigint?: () => bigint } } })
  .process;

/** The pid QEMU would report for its threads (`process.pid`; 1 in a page). */
export const hostPid: number = proc?.pid ?? 1;

/** A monotonic clock in nanoseconds (`process.hrtime` in Node, `performance.now` elsewhere). */
export function monotonicNs(): bigint {
  const hr = proc?.hrtime?.bigint;
  return hr ? hr() : BigInt(Math.round(performance.now() * 1e6));
}

/** Runs `fn` on a later turn of the event loop (`setImmediate`, else a zero timeout). */
export const nextTurn: (fn: () => void) => void =
  typeof (globalThis as { setImmediate?: unknown }).setImmediate === 'function'
    ? (fn) => setImmediate(fn)
    : (fn) => setTimeout(fn, 0);

/** The Node platform, or a usage error naming what needed it. */
export function needNode(platform: NodePlatform | undefined, what: string): NodePlatform {
  if (platform) return platform;
  throw new FakeQmpUsageError(
    `${what} needs Node; in a page, attach clients in memory (the msw adapter) with storage: 'memory'`,
  );
}

/** POSIX `dirname` (for QEMU paths the model checks, never the host's). */
export function dirname(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  if (trimmed === '' && path.startsWith('/')) return '/';
  const slash = trimmed.lastIndexOf('/');
  if (slash < 0) return '.';
  if (slash === 0) return '/';
  return trimmed.slice(0, slash);
}
