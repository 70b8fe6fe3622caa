/**
 * `BlockJob` without QEMU: a host whose client talks to the fake QMP server (no job ever
 * runs there). Regression: `until()` and `wait()` on a detached job used to await an
 * always-resolved promise in a loop, which starved the event loop (a roll-back that detached a
 * mirror still waited on hung forever).
 */
import { createFakeQmp, type FakeQmp } from '@qmpkit/fake-qmp';
import { connect } from '@qmpkit/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockJob, type BlockJobHost } from './block-jobs.js';
import { isBlockJobError } from './errors.js';
import type { MachineQmp } from './process.js';

let fake: FakeQmp;
let qmp: MachineQmp;
beforeAll(async () => {
  fake = await createFakeQmp({ listen: { unix: true }, storage: 'memory', paused: true });
  qmp = await connect(fake.address);
});
afterAll(async () => {
  await qmp?.close();
  await fake?.close();
});

function host(): BlockJobHost {
  return { qmp };
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
