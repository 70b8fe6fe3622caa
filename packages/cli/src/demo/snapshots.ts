/**
 * The snapshot part of the real demo tour: for each strategy, save at counter N while the
 * guest runs, let it run on, load, and check that COM1 resumes at N+1 — the guest really is
 * back at the save point.
 */
import path from 'node:path';
import type { Machine } from '@qmpkit/machine';
import { chooseStrategy, openSnapshots, type StrategyKind } from '@qmpkit/snapshots';
import { nextCounter } from './real.js';
import { bytes, ms, type Report } from './report.js';

const STRATEGIES: readonly StrategyKind[] = ['internal-hmp', 'internal-jobs', 'external'];

export async function snapshotTour(
  report: Report,
  machine: Machine,
  workDir: string,
): Promise<string[][]> {
  const choice = await chooseStrategy(machine);
  report.step(`chooseStrategy → ${choice.kind}`);
  for (const line of choice.explanation.split('\n')) report.detail(line);
  const rows: string[][] = [];
  for (const kind of STRATEGIES) {
    const strategy = await openSnapshots(machine, {
      dir: path.join(workDir, `snapshots-${kind}`),
      strategy: kind,
    });
    const before = await nextCounter(machine);
    const saved = await strategy.save(`demo-${kind}`);
    // The first line after the save is the first the guest printed after the save point
    // (unread console output is part of the snapshot, so it is the same after a load).
    const after = await nextCounter(machine);
    const ranOn = await nextCounter(machine);
    const loaded = await strategy.load(`demo-${kind}`);
    const resumed = await nextCounter(machine);
    const ok = resumed === after;
    report.step(
      `${kind}: saved after C=${before}, ran on to C=${ranOn}, loaded → COM1 continues at C=${resumed} ${ok ? '(back at the save point)' : `(expected C=${after})`}`,
    );
    rows.push([
      kind,
      ms(saved.timings.totalMs),
      ms(loaded.timings.totalMs),
      ms(saved.timings.downtimeMs),
      bytes(saved.bytesWritten),
      ok ? 'ok' : 'FAILED',
    ]);
    await strategy.delete(`demo-${kind}`);
  }
  return rows;
}
