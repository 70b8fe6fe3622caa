import { describe, expect, it } from 'vitest';
import { quiesced, SwitchedLateError } from './quiesced.js';
import type { QuiesceHook, SnapshotPhase } from './types.js';

/** A hook that records calls; `freezeFails`/`thawFails` make those steps reject. */
function recordingHook(fail: { freeze?: boolean; thaw?: boolean } = {}) {
  const calls: string[] = [];
  const hook: QuiesceHook = {
    freeze: async () => {
      calls.push('freeze');
      if (fail.freeze) throw new Error('agent refused');
      return 1;
    },
    thaw: async () => {
      calls.push('thaw');
      if (fail.thaw) throw new Error('thaw refused');
      return 1;
    },
  };
  return { hook, calls };
}

/** A promise and the function that resolves it (a gate the test opens). */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

const base = { name: 's', timeoutMs: 10_000, requireQuiesce: false };

describe('quiesced', () => {
  it('freeze → switch → thaw, filesystem-consistent', async () => {
    const { hook, calls } = recordingHook();
    const phases: SnapshotPhase[] = [];
    const outcome = await quiesced(hook, { ...base, phase: (p) => phases.push(p) }, async (go) => {
      expect(go()).toBe(true);
      calls.push('switch');
    });
    expect(outcome).toEqual({ consistency: 'filesystem' });
    expect(calls).toEqual(['freeze', 'switch', 'thaw']);
    expect(phases).toEqual(['freeze', 'switch', 'thaw']);
  });

  it('no hook: the switch alone, crash-consistent', async () => {
    const calls: string[] = [];
    const outcome = await quiesced(undefined, base, async () => {
      calls.push('switch');
    });
    expect(outcome).toEqual({ consistency: 'crash' });
    expect(calls).toEqual(['switch']);
  });

  it('a failed switch still thaws, and its error is what the caller gets', async () => {
    const { hook, calls } = recordingHook();
    const error = await quiesced(hook, base, async () => {
      calls.push('switch');
      throw new Error('transaction refused');
    }).catch((e: unknown) => e);
    expect((error as Error).message).toBe('transaction refused');
    expect(calls).toEqual(['freeze', 'switch', 'thaw']);
  });

  it('a failed freeze is thawed; crash-consistent when allowed, freeze-failed when required', async () => {
    const allowed = recordingHook({ freeze: true });
    const outcome = await quiesced(allowed.hook, base, async () => {
      allowed.calls.push('switch');
    });
    expect(outcome).toEqual({ consistency: 'crash' });
    expect(allowed.calls).toEqual(['freeze', 'thaw', 'switch']);

    const required = recordingHook({ freeze: true });
    const error = await quiesced(required.hook, { ...base, requireQuiesce: true }, async () => {
      required.calls.push('switch');
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'SnapshotQuiesceError', reason: 'freeze-failed' });
    expect(required.calls).toEqual(['freeze', 'thaw']);
  });

  it('past the deadline: thawed without waiting, the switch called off, a timeout error', async () => {
    const { hook, calls } = recordingHook();
    const held = gate();
    let proceeded: boolean | undefined;
    const stepDone = gate();
    const error = await quiesced(hook, { ...base, timeoutMs: 5 }, async (go) => {
      await held.opened; // opened only after the save has failed: later than any deadline
      proceeded = go();
      stepDone.open();
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'SnapshotQuiesceError', reason: 'timeout', timeoutMs: 5 });
    expect(calls).toEqual(['freeze', 'thaw']);
    held.open();
    await stepDone.opened;
    expect(proceeded).toBe(false);
  });

  it('a switch sent before the deadline and done after it: SwitchedLateError (the VM moved)', async () => {
    const { hook, calls } = recordingHook();
    const transaction = gate();
    const thawed = gate();
    const wrapped: QuiesceHook = {
      freeze: hook.freeze,
      thaw: async () => {
        const n = await hook.thaw();
        thawed.open();
        return n;
      },
    };
    const error = await quiesced(wrapped, { ...base, timeoutMs: 5 }, async (go) => {
      expect(go()).toBe(true);
      // The "transaction" finishes only once the deadline has thawed the guest.
      void thawed.opened.then(transaction.open);
      await transaction.opened;
      calls.push('switched');
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SwitchedLateError);
    expect((error as SwitchedLateError).error.reason).toBe('timeout');
    expect(calls).toEqual(['freeze', 'thaw', 'switched']);
  });

  it('a thaw that fails after a good switch is reported beside the outcome', async () => {
    const { hook } = recordingHook({ thaw: true });
    const outcome = await quiesced(hook, base, async () => {});
    expect(outcome.consistency).toBe('filesystem');
    expect((outcome.thawError as Error).message).toBe('thaw refused');
  });

  it('a thaw that fails after a failed switch: thaw-failed, naming the switch error', async () => {
    const { hook } = recordingHook({ thaw: true });
    const error = await quiesced(hook, base, async () => {
      throw new Error('transaction refused');
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      name: 'SnapshotQuiesceError',
      reason: 'thaw-failed',
      thawed: false,
    });
    expect((error as Error).message).toMatch(/transaction refused/);
  });
});
