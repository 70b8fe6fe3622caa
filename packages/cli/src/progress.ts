/**
 * Progress bars for long work (job commands now; snapshots and other long subcommands can
 * use the same helper). Drawn with `cli-progress` on stderr, only when stderr is a terminal,
 * so piped stdout/stderr stay clean; elsewhere every method is a no-op.
 */
import cliProgress from 'cli-progress';
import type { CliIo } from './io.js';

export interface Progress {
  /** Sets done/total in any unit (bytes, QEMU's job progress units). */
  update(current: number, total: number): void;
  /** A short status word shown after the bar (e.g. a job's `running`, `pending`). */
  status(text: string): void;
  stop(): void;
}

const NOOP: Progress = { update() {}, status() {}, stop() {} };

export function createProgress(io: CliIo, options: { label: string }): Progress {
  if (io.stderr.isTTY !== true) return NOOP;
  const bar = new cliProgress.SingleBar(
    {
      stream: io.stderr as NodeJS.WritableStream as NodeJS.WriteStream,
      format: `${options.label} [{bar}] {percentage}% {status}`,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  let status = 'created';
  bar.start(1, 0, { status });
  return {
    update(current, total) {
      if (total > 0) {
        bar.setTotal(total);
        bar.update(Math.min(current, total), { status });
      }
    },
    status(text) {
      status = text;
      bar.update({ status });
    },
    stop() {
      bar.stop();
    },
  };
}
