import { afterEach, describe, expect, it } from 'vitest';
import { type FakeConnection, fakeQmp } from '../__tests__/helpers.js';
import type { WireCommand } from '../codec/messages.js';
import { QmpCommandError, QmpJobError, QmpTimeoutError } from '../errors.js';
import { connect } from './client.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/**
 * A scripted job server imitating QEMU 7.2's snapshot-save (trace in
 * shared/notes/snapshots-on-qemu-7.2.md §2): created/running before the reply, the rest after.
 */
async function jobServer(mode: 'ok' | 'fail' | 'hang' | 'refuse' | 'auto-dismiss') {
  const log: string[] = [];
  let conn: FakeConnection | undefined;
  let jobId = '';
  let error: string | undefined;
  const status = (s: string) => conn?.event('JOB_STATUS_CHANGE', { status: s, id: jobId });
  const server = await fakeQmp((cmd: WireCommand, c) => {
    conn = c;
    const name = cmd.execute ?? '';
    const args = (cmd.arguments ?? {}) as Record<string, unknown>;
    if (name !== 'qmp_capabilities') log.push(name);
    switch (name) {
      case 'snapshot-save':
        if (mode === 'refuse') return { error: ['GenericError', "Job ID 'dup' already in use"] };
        jobId = args['job-id'] as string;
        status('created');
        status('running');
        if (mode !== 'hang') {
          setTimeout(() => {
            status('waiting');
            if (mode === 'fail') {
              error = "Snapshot 'snapB' already exists in one or more devices";
              status('aborting');
            } else status('pending');
            status('concluded');
            if (mode === 'auto-dismiss') {
              status('null');
              jobId = '';
            }
          }, 5);
        }
        return { return: {} };
      case 'job-cancel':
        error = 'Operation cancelled';
        setTimeout(() => {
          status('aborting');
          status('concluded');
        }, 5);
        return { return: {} };
      case 'query-jobs':
        if (jobId === '') return { return: [] };
        return {
          return: [
            {
              id: jobId,
              type: 'snapshot-save',
              status: 'concluded',
              'current-progress': 1,
              'total-progress': 1,
              ...(error ? { error } : {}),
            },
          ],
        };
      case 'job-dismiss':
        if (jobId === '') return { error: ['GenericError', `Job not found`] };
        status('null');
        return { return: {} };
    }
    return undefined;
  });
  cleanups.push(server.close);
  const qmp = await connect(server.address);
  cleanups.push(async () => {
    await qmp.close();
  });
  return { qmp, log };
}

const ARGS = { tag: 'snapB', vmstate: 'disk0', devices: ['disk0'] };

describe('runJob', () => {
  it('follows JOB_STATUS_CHANGE to concluded, then query-jobs, then job-dismiss', async () => {
    const { qmp, log } = await jobServer('ok');
    const statuses: string[] = [];
    const result = await qmp.runJob(
      'snapshot-save',
      { ...ARGS, 'job-id': 'save1' },
      { onStatus: (s) => statuses.push(s) },
    );
    expect(result).toEqual({
      jobId: 'save1',
      returned: {},
      statuses: ['created', 'running', 'waiting', 'pending', 'concluded', 'null'],
    });
    expect(statuses).toEqual(result.statuses);
    expect(log).toEqual(['snapshot-save', 'query-jobs', 'job-dismiss']);
  });

  it('copes with a job that dismissed itself (auto-dismiss)', async () => {
    const { qmp, log } = await jobServer('auto-dismiss');
    const result = await qmp.runJob('snapshot-save', { ...ARGS, 'job-id': 'auto' });
    expect(result.statuses.at(-1)).toBe('null');
    expect(log.slice(0, 2)).toEqual(['snapshot-save', 'query-jobs']);
  });

  it('generates a job id when none is given', async () => {
    const { qmp } = await jobServer('ok');
    const result = await qmp.runJob('snapshot-save', ARGS);
    expect(result.jobId).toMatch(/^qmpkit-job-\d+-\d+$/);
  });

  it("throws QmpJobError with QEMU's message, read before dismissing", async () => {
    const { qmp, log } = await jobServer('fail');
    const error = await qmp
      .runJob('snapshot-save', { ...ARGS, 'job-id': 'save2' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpJobError);
    expect(error).toMatchObject({
      jobId: 'save2',
      command: 'snapshot-save',
      desc: "Snapshot 'snapB' already exists in one or more devices",
    });
    expect(log).toEqual(['snapshot-save', 'query-jobs', 'job-dismiss']);
  });

  it('cancels with job-cancel on abort, still dismisses, rejects with the reason', async () => {
    const { qmp, log } = await jobServer('hang');
    const controller = new AbortController();
    const run = qmp.runJob('snapshot-save', ARGS, {
      signal: controller.signal,
      onStatus: (s) => {
        if (s === 'running') setTimeout(() => controller.abort(new Error('user cancelled')), 10);
      },
    });
    await expect(run).rejects.toThrow('user cancelled');
    expect(log).toEqual(['snapshot-save', 'job-cancel', 'query-jobs', 'job-dismiss']);
  });

  it('a job timeout cancels like an abort', async () => {
    const { qmp, log } = await jobServer('hang');
    const error = await qmp.runJob('snapshot-save', ARGS, { timeout: 20 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpTimeoutError);
    expect(log).toEqual(['snapshot-save', 'job-cancel', 'query-jobs', 'job-dismiss']);
  });

  it('a refused job command is a QmpCommandError and nothing is dismissed', async () => {
    const { qmp, log } = await jobServer('refuse');
    await expect(qmp.runJob('snapshot-save', { ...ARGS, 'job-id': 'dup' })).rejects.toBeInstanceOf(
      QmpCommandError,
    );
    expect(log).toEqual(['snapshot-save']);
  });
});
