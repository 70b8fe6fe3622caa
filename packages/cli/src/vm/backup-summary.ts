/** The summary a backup prints or sends: the same for a running VM (supervisor) and a stopped one. */
import type { BackupResult } from '@qmpkit/backup';
import type { BackupSummary } from './protocol.js';

export function backupSummary(result: BackupResult, to: string, totalMs: number): BackupSummary {
  return {
    kind: result.point.kind,
    point: result.point.id,
    checkpoint: result.point.checkpoint,
    to,
    totalMs,
    disks: result.point.disks.map((d) => ({
      device: d.device,
      copied: d.copied,
      virtualSize: d.virtualSize,
    })),
    repaired: result.repaired?.map((p) => p.detail) ?? null,
    interrupted:
      result.interrupted === undefined
        ? null
        : {
            id: result.interrupted.id,
            mode: result.interrupted.mode,
            pid: result.interrupted.pid,
            chain: result.interrupted.chain,
          },
  };
}

/** Per-disk job progress (`offset` of `len`), summed over the disks, as a progress line shows it. */
export function summedProgress(done: ReadonlyMap<string, { offset: number; len: number }>): {
  bytes: number;
  totalBytes: number;
  percent: number | undefined;
} {
  let bytes = 0;
  let totalBytes = 0;
  for (const d of done.values()) {
    bytes += d.offset;
    totalBytes += d.len;
  }
  return { bytes, totalBytes, percent: totalBytes > 0 ? (100 * bytes) / totalBytes : undefined };
}
