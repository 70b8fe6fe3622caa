/**
 * `BlockJob` without QEMU: a host whose client only records listeners. Regression: `until()`
 * and `wait()` on a detached job used to await an always-resolved promise in a loop, which
 * starved the event loop (a roll-back that detached a mirror still waited on hung forever).
 */
import { describe, expect, it } from 'vitest';
import { BlockJob, type BlockJobHost } from './block-jobs.js';
import { isBlockJobError } from './errors.js';

function host(): BlockJobHost {
  const qmp = {
    on: () => () => {},
    closed: new Promise(() => {}),
    execute: async () => [],
  };
  return { qmp } as unknown as BlockJobHost;
}

describe('BlockJob after detach', () => {
  it('until() rejects instead of spinning', async () => {
    const job = new BlockJob(host(), 'j1', 'mirror');
    const ready = job.ready();
    job.detach();
    const error = await ready.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBlockJobError(error) && error.phase).toBe('lost');
  });

  it('wait() rejects instead of spinning', async () => {
    const job = new BlockJob(host(), 'j2', 'mirror');
    job.detach();
    const error = await job.wait().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBlockJobError(error) && error.phase).toBe('lost');
  });
});
