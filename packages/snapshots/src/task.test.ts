import { describe, expect, it } from 'vitest';
import { isSnapshotAbortedError } from './errors.js';
import { startTask } from './task.js';
import type { SnapshotProgress } from './types.js';

describe('startTask', () => {
  it('is awaitable and iterable over progress, and times phases', async () => {
    const seen: string[] = [];
    const task = startTask('n', { onProgress: (p) => seen.push(p.phase) }, async (ctx) => {
      ctx.phase('pause');
      ctx.phase('save', 100);
      await new Promise((r) => setTimeout(r, 120));
      ctx.bytes(50);
      ctx.phase('done');
      return { phases: ctx.phaseTimes() };
    });
    const events: SnapshotProgress[] = [];
    for await (const p of task) events.push(p);
    const result = await task;
    expect(events.map((e) => e.phase)).toEqual(['pause', 'save', 'save', 'done']);
    expect(events[2]?.percent).toBe(50);
    expect(seen).toEqual(events.map((e) => e.phase));
    expect(result.phases.save).toBeGreaterThanOrEqual(100);
  });

  it('abort() makes checkAborted throw SnapshotAbortedError naming the phase', async () => {
    const task = startTask('n', {}, async (ctx) => {
      ctx.phase('save');
      await new Promise((r) => setTimeout(r, 20));
      ctx.checkAborted();
      return 1;
    });
    task.abort(new Error('stop'));
    const error = await task.result.catch((e: unknown) => e);
    expect(isSnapshotAbortedError(error) && error.phase).toBe('save');
  });

  it('a signal aborted before the start aborts at the first check', async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await startTask('n', { signal: controller.signal }, async (ctx) => {
      ctx.checkAborted();
      return 1;
    }).result.catch((e: unknown) => e);
    expect(isSnapshotAbortedError(error)).toBe(true);
  });
});
