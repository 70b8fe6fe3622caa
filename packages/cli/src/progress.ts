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
  /**
   * The work completed: draws the bar full (100%) and stops. The last progress QEMU reports
   * is usually short of the total (a job concludes between two polls), so a bar that only
   * stopped would end wherever the last poll left it.
   */
  finish(): void;
  /** Stops drawing where the bar is (failure, interruption). */
  stop(): void;
}

const NOOP: Progress = { update() {}, status() {}, finish() {}, stop() {} };

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
  let total = 1;
  let stopped = false;
  bar.start(total, 0, { status });
  return {
    update(current, newTotal) {
      if (newTotal > 0) {
        total = newTotal;
        bar.setTotal(total);
        bar.update(Math.min(current, total), { status });
      }
    },
    finish() {
      if (stopped) return;
      bar.update(total, { status });
      this.stop();
    },
    status(text) {
      status = text;
      bar.update({ status });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
