/**
 * The freeze → switch → thaw sequence of a disk-only save, apart from QEMU so it can be
 * tested exactly: the thaw runs after every freeze attempt, and when the switch is not done
 * within the deadline the guest is thawed without waiting for it.
 */
import { SnapshotQuiesceError } from './errors.js';
import type { QuiesceHook, SnapshotConsistency, SnapshotPhase } from './types.js';

/** Milliseconds a disk-only save may keep the guest frozen (the switch takes milliseconds). */
export const DEFAULT_QUIESCE_TIMEOUT = 10_000;

export interface QuiescedOptions {
  /** The snapshot's name, for errors. */
  readonly name: string;
  /** Milliseconds from the freeze to the thaw at most. */
  readonly timeoutMs: number;
  /** A failed freeze is an error instead of a crash-consistent snapshot. */
  readonly requireQuiesce: boolean;
  /** Bound on waiting for a switch already sent when the deadline passed (default: no bound). */
  readonly settleTimeoutMs?: number;
  readonly phase?: (phase: SnapshotPhase) => void;
}

export interface QuiescedOutcome {
  readonly consistency: SnapshotConsistency;
  /** The thaw after a successful switch failed (the switch stands; the guest may be frozen). */
  readonly thawError?: unknown;
}

/**
 * The switch completed after the deadline had thawed the guest: the snapshot is not
 * consistent and is not recorded, but the VM runs on the new overlays. `error` is what the
 * caller reports. Internal: the caller unwraps it.
 */
export class SwitchedLateError extends Error {
  override readonly name = 'SwitchedLateError' as const;
  readonly error: SnapshotQuiesceError;
  constructor(error: SnapshotQuiesceError) {
    super(error.message, { cause: error });
    this.error = error;
  }
}

export const isSwitchedLateError = (e: unknown): e is SwitchedLateError =>
  e instanceof SwitchedLateError;

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function thawOf(hook: QuiesceHook): Promise<unknown> {
  try {
    await hook.thaw();
    return undefined;
  } catch (error) {
    return error === undefined ? new Error('thaw failed') : error;
  }
}

function thawFailed(name: string, thawError: unknown, after: string): SnapshotQuiesceError {
  return new SnapshotQuiesceError(
    name,
    'thaw-failed',
    {
      message: `the thaw ${after} failed (${messageOf(thawError)}): the guest's filesystems may still be frozen`,
    },
    { cause: thawError },
  );
}

/**
 * Runs `step` (the overlay switch) with the guest quiesced by `hook`. `step` gets `proceed`:
 * it calls it right before the part that cannot be called off (the `transaction`) and stops
 * when it returns false (the deadline passed first). Without a hook, or after a freeze that
 * failed and was allowed to, the switch runs unquiesced (`crash`).
 */
export async function quiesced(
  hook: QuiesceHook | undefined,
  options: QuiescedOptions,
  step: (proceed: () => boolean) => Promise<unknown>,
): Promise<QuiescedOutcome> {
  const { name } = options;
  if (hook === undefined) {
    options.phase?.('switch');
    await step(() => true);
    return { consistency: 'crash' };
  }
  options.phase?.('freeze');
  try {
    await hook.freeze();
  } catch (freezeError) {
    // A freeze that failed half-way (or timed out) may have frozen some filesystems.
    const thawError = await thawOf(hook);
    if (thawError !== undefined) throw thawFailed(name, thawError, 'after a failed freeze');
    if (options.requireQuiesce)
      throw new SnapshotQuiesceError(
        name,
        'freeze-failed',
        { message: `the guest's filesystems could not be frozen: ${messageOf(freezeError)}` },
        { cause: freezeError },
      );
    options.phase?.('switch');
    await step(() => true);
    return { consistency: 'crash' };
  }

  options.phase?.('switch');
  let calledOff = false;
  let sent = false;
  const proceed = () => {
    if (calledOff) return false;
    sent = true;
    return true;
  };
  const running = Promise.resolve().then(() => step(proceed));
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), options.timeoutMs);
  });
  let outcome: 'done' | 'timeout';
  try {
    outcome = await Promise.race([running.then(() => 'done' as const), expired]);
  } catch (switchError) {
    clearTimeout(timer);
    options.phase?.('thaw');
    const thawError = await thawOf(hook);
    if (thawError !== undefined)
      throw thawFailed(name, thawError, `after a failed switch (${messageOf(switchError)})`);
    throw switchError;
  }
  clearTimeout(timer);
  if (outcome === 'done') {
    options.phase?.('thaw');
    const thawError = await thawOf(hook);
    return thawError === undefined
      ? { consistency: 'filesystem' }
      : { consistency: 'filesystem', thawError };
  }

  // The deadline passed with the guest frozen: thaw first, then look at the switch.
  calledOff = true;
  options.phase?.('thaw');
  const thawError = await thawOf(hook);
  if (thawError !== undefined)
    throw thawFailed(name, thawError, `after the ${options.timeoutMs} ms freeze deadline`);
  const timeout = new SnapshotQuiesceError(name, 'timeout', {
    message: `the overlay switch did not finish within ${options.timeoutMs} ms of the freeze; the guest was thawed and no snapshot was taken`,
    timeoutMs: options.timeoutMs,
  });
  if (!sent) {
    // Not sent and never will be (`proceed` now says no); whatever the step still does ends
    // in that check or in an error nobody waits for.
    running.catch(() => undefined);
    throw timeout;
  }
  let settleTimer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    running.then(
      () => 'switched' as const,
      () => 'failed' as const,
    ),
    new Promise<'unknown'>((resolve) => {
      if (options.settleTimeoutMs !== undefined)
        settleTimer = setTimeout(() => resolve('unknown'), options.settleTimeoutMs);
    }),
  ]);
  clearTimeout(settleTimer);
  if (settled === 'switched') throw new SwitchedLateError(timeout);
  throw timeout;
}
