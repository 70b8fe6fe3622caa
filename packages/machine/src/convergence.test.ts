/**
 * The convergence controller's rules on made-up samples: only a new pass counts, a stall of
 * `stalledPasses` raises the limit (capped), a new low resets the count, and with every means
 * exhausted it gives up with the numbers.
 */
import { describe, expect, it } from 'vitest';
import { ConvergenceController } from './convergence.js';
import { isLiveMigrationError } from './errors.js';
import type { MigrationProgress } from './live-migration.js';

function sample(iterations: number, remaining: number, cpuThrottle = 0): MigrationProgress {
  return {
    phase: 'transferring',
    status: 'active',
    elapsedMs: iterations * 500,
    transferred: iterations * 1000,
    remaining,
    total: 8 << 20,
    dirtyRate: 50 << 20,
    throughput: 16 << 20,
    expectedDowntimeMs: 440,
    iterations,
    cpuThrottle,
  };
}

describe('ConvergenceController', () => {
  it('steps the limit after stalled passes, up to the cap, and resets on a new low', async () => {
    const set: number[] = [];
    const c = new ConvergenceController({ initialDowntimeLimit: 100, maxDowntimeLimit: 300 });
    const feed = (s: MigrationProgress) =>
      c.observe(s, false, async (ms) => {
        set.push(ms);
      });
    await feed(sample(1, 9_000)); // the bulk pass does not count
    await feed(sample(2, 7_000)); // first low
    await feed(sample(2, 1_000)); // same pass again: ignored
    await feed(sample(3, 7_000)); // stalled 1
    expect(set).toEqual([]);
    await feed(sample(4, 7_100)); // stalled 2
    expect(set).toEqual([200]);
    await feed(sample(5, 6_000)); // new low: count reset
    await feed(sample(6, 6_000));
    expect(set).toEqual([200]);
    await feed(sample(7, 6_500));
    expect(set).toEqual([200, 300]); // capped, not 400
    expect(c.downtimeLimit).toBe(300);
    expect(c.decisions.map((d) => [d.action, d.downtimeLimit.to])).toEqual([
      ['raise-downtime-limit', 200],
      ['raise-downtime-limit', 300],
    ]);
    expect(c.decisions[0]?.reason).toMatch(/remaining 7100 bytes after pass 4 is no new low/);
  });

  it('gives up only with the cap reached and the throttle at its maximum', () => {
    const c = new ConvergenceController({
      initialDowntimeLimit: 300,
      maxDowntimeLimit: 300,
      giveUpPasses: 2,
    });
    expect(c.assess(sample(2, 7_000, 20), true)).toEqual({});
    expect(c.assess(sample(3, 7_000, 40), true)).toEqual({}); // still throttling up
    expect(c.assess(sample(4, 7_000, 99), true).giveUp).toMatch(
      /remaining RAM stopped shrinking: 7000 bytes after pass 4 .*CPU throttle 99%/,
    );
    const off = new ConvergenceController({
      initialDowntimeLimit: 300,
      maxDowntimeLimit: 300,
      giveUpPasses: 2,
    });
    off.assess(sample(2, 7_000), false);
    expect(off.assess(sample(3, 7_000), false)).toEqual({});
    expect(off.assess(sample(4, 7_000), false).giveUp).toMatch(/auto-converge off/);
  });

  it('throws does-not-converge when it gives up, and logs the decision', async () => {
    const c = new ConvergenceController({
      initialDowntimeLimit: 300,
      maxDowntimeLimit: 300,
      giveUpPasses: 1,
    });
    await c.observe(sample(2, 7_000), false, async () => {});
    const error = await c.observe(sample(3, 7_000), false, async () => {}).catch((e: unknown) => e);
    expect(isLiveMigrationError(error) && error.reason).toBe('does-not-converge');
    expect(c.decisions.at(-1)?.action).toBe('give-up');
  });

  it('with post-copy allowed: switches once where it would give up, then decides nothing more', async () => {
    const c = new ConvergenceController({
      initialDowntimeLimit: 300,
      maxDowntimeLimit: 300,
      autoConverge: false,
      giveUpPasses: 2,
      postcopy: true,
    });
    let switched = 0;
    const feed = (s: MigrationProgress) =>
      c.observe(
        s,
        false,
        async () => {},
        async () => {
          switched += 1;
        },
      );
    await feed(sample(2, 7_000));
    await feed(sample(3, 7_000));
    expect(switched).toBe(0);
    await feed(sample(4, 7_000));
    expect(switched).toBe(1);
    expect(c.switchedToPostcopy).toBe(true);
    await feed(sample(5, 7_000));
    await feed(sample(6, 7_000));
    expect(switched).toBe(1);
    expect(c.decisions.map((d) => d.action)).toEqual(['start-postcopy']);
    expect(c.decisions[0]?.reason).toMatch(/stopped shrinking.*switching to post-copy/);
  });

  it('with post-copy allowed but no way to switch (no callback): gives up as before', async () => {
    const c = new ConvergenceController({
      initialDowntimeLimit: 300,
      maxDowntimeLimit: 300,
      autoConverge: false,
      giveUpPasses: 1,
      postcopy: true,
    });
    await c.observe(sample(2, 7_000), false, async () => {});
    const error = await c.observe(sample(3, 7_000), false, async () => {}).catch((e: unknown) => e);
    expect(isLiveMigrationError(error) && error.reason).toBe('does-not-converge');
  });
});
