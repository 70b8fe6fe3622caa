/**
 * What every outgoing live migration shares, whether the target is a QEMU of ours
 * (`migrate()`) or an address (`migrateTo()`): the run wrapper (one migration per source at a
 * time, the caller's `AbortSignal`, the progress fan-out, `cancel()` with its once-only
 * semantics), the phase clock (warn first, fail at the hard deadline), the sampling of
 * `query-migrate` on a busy monitor, and the source's `migrate_cancel` that waits until QEMU
 * says the migration ended. The two kinds of run differ only in their steps and what undoes
 * them; those stay in their modules.
 */
import type { Commands } from '@qmpkit/qapi';
import type { Logger } from '@qmpkit/transport';
import { isLiveMigrationError, LiveMigrationError, type LiveMigrationFailure } from './errors.js';
import type { Machine } from './machine.js';
import type { MigrationPhase } from './state.js';

type MigrationInfo = Commands['query-migrate']['returns'];

export const ACTIVE: ReadonlySet<string> = new Set([
  'setup',
  'active',
  'device',
  'pre-switchover',
  'postcopy-active',
  'postcopy-paused',
  'postcopy-recover',
  'cancelling',
  'wait-unplug',
  'colo',
]);

/** Sources with a migration of ours under way. */
export const busy = new WeakSet<Machine>();

/** Warn after `warnAfter` ms in a phase, give up (roll back, `timeout`) after `failAfter`. */
export interface PhaseDeadline {
  readonly warnAfter: number;
  readonly failAfter: number;
}

/** The handle both kinds of run return: result, progress, phase, cancel. */
export interface MigrationHandle<R, P> {
  readonly result: Promise<R>;
  readonly progress: AsyncIterable<P>;
  readonly phase: MigrationPhase;
  cancel(reason?: unknown): Promise<void>;
}

/** Fan-out of samples to every open iterator; each iterator ends when the migration does. */
export class ProgressHub<P> implements AsyncIterable<P> {
  readonly #subscribers = new Set<{ queue: P[]; wake: (() => void) | undefined }>();
  #ended = false;

  push(sample: P): void {
    for (const s of this.#subscribers) {
      s.queue.push(sample);
      if (s.queue.length > 1000) s.queue.shift();
      s.wake?.();
    }
  }

  end(): void {
    this.#ended = true;
    for (const s of this.#subscribers) s.wake?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<P> {
    const sub = { queue: [] as P[], wake: undefined as (() => void) | undefined };
    this.#subscribers.add(sub);
    const done = (): IteratorResult<P> => {
      this.#subscribers.delete(sub);
      return { done: true, value: undefined };
    };
    return {
      next: async () => {
        for (;;) {
          const item = sub.queue.shift();
          if (item !== undefined) return { done: false, value: item };
          if (this.#ended) return done();
          await new Promise<void>((resolve) => {
            sub.wake = resolve;
          });
          sub.wake = undefined;
        }
      },
      return: async () => done(),
    };
  }
}

/** Warns once when a phase runs long and throws `timeout` past its hard deadline. */
export class PhaseClock {
  #started = performance.now();
  #warned = false;

  /** A new phase begins: the clock starts over and may warn again. */
  restart(): void {
    this.#started = performance.now();
    this.#warned = false;
  }

  get elapsed(): number {
    return performance.now() - this.#started;
  }

  check(
    phase: string,
    deadline: PhaseDeadline,
    logger: Logger,
    detail?: unknown,
    what = `phase ${phase}`,
  ): void {
    const inPhase = this.elapsed;
    if (!this.#warned && inPhase > deadline.warnAfter) {
      this.#warned = true;
      logger.warn(
        `live migration: ${what} has taken ${Math.round(inPhase)} ms (fails after ${deadline.failAfter} ms)`,
        detail ?? undefined,
      );
    }
    if (inPhase > deadline.failAfter)
      throw new LiveMigrationError(
        'timeout',
        phase,
        `${what} did not end within ${deadline.failAfter} ms`,
      );
  }
}

/**
 * One `query-migrate` of the source with a generous timeout; a monitor busy with the
 * migration answers late, and a missed sample is not a failure (logged, `undefined`).
 */
export function sampleMigration(
  source: Machine,
  interval: number,
  logger: Logger,
): Promise<MigrationInfo | undefined> {
  return source.qmp
    .execute('query-migrate', undefined, { timeout: interval * 20 })
    .catch((error: unknown) => {
      logger.warn('live migration: query-migrate did not answer in time', error);
      return undefined;
    });
}

/**
 * `migrate_cancel` on the source when a migration is active there, then waits (bounded,
 * 30 s) for QEMU's MIGRATION event that says it ended.
 */
export async function cancelSourceMigration(source: Machine): Promise<void> {
  const info = await source.qmp.execute('query-migrate');
  if (info.status === undefined || !ACTIVE.has(info.status)) return;
  const ended = new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      off();
      resolve();
    }, 30_000);
    timer.unref();
    const off = source.qmp.on('MIGRATION', (e) => {
      if (['cancelled', 'failed', 'completed'].includes(e.data.status)) {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  });
  await source.qmp.execute('migrate_cancel');
  await ended;
}

/** The default logger of a run: warnings on stderr with the package's prefix. */
function defaultLogger(): Logger {
  return { warn: (message, detail) => console.warn(`[qmpkit/machine] ${message}`, detail ?? '') };
}

/**
 * The run wrapper: `handle()` starts `run()` once the source is free, ends the progress
 * fan-out and frees the source whatever happens, and turns `cancel()` into an abort of the
 * run that resolves once it rolled back. Subclasses say when a cancel can still take effect.
 */
export abstract class MigrationRunBase<R, P> {
  protected readonly source: Machine;
  protected readonly logger: Logger;
  protected readonly hub = new ProgressHub<P>();
  protected readonly abort = new AbortController();
  protected readonly startedAt = new Date().toISOString();
  protected phase: MigrationPhase;
  protected ended = false;
  readonly #signal: AbortSignal | undefined;
  #abortReason: unknown;
  #cancelling: Promise<void> | undefined;
  #result!: Promise<R>;

  constructor(
    source: Machine,
    options: { readonly signal?: AbortSignal; readonly logger?: Logger },
    firstPhase: MigrationPhase,
  ) {
    this.source = source;
    this.phase = firstPhase;
    this.#signal = options.signal;
    this.logger = options.logger ?? defaultLogger();
  }

  /** The steps and their roll-back. */
  protected abstract run(): Promise<R>;

  /**
   * Why a cancel can no longer take effect (the guest went over), or `undefined`; a string is
   * refused as `not-active`, an object with its own reason (e.g. `cannot-cancel`).
   */
  protected abstract tooLateToCancel():
    | string
    | { readonly reason: LiveMigrationFailure; readonly desc: string }
    | undefined;

  /** Whether a caller's abort still counts (the default: always, until the run ends). */
  protected abortHonoured(): boolean {
    return true;
  }

  handle(): MigrationHandle<R, P> {
    const signal = this.#signal;
    const first = this.phase;
    const onAbort = () => this.requestAbort(signal?.reason);
    this.#result = (async () => {
      if (busy.has(this.source))
        throw new LiveMigrationError(
          'busy',
          first,
          'a migration of this machine is already under way',
          { sourceRunning: this.source.status === 'running' },
        );
      busy.add(this.source);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        if (signal?.aborted) this.requestAbort(signal.reason);
        return await this.run();
      } finally {
        signal?.removeEventListener('abort', onAbort);
        busy.delete(this.source);
        this.ended = true;
        this.hub.end();
      }
    })();
    // Awaited by the caller; this only keeps an early rejection from being reported unhandled.
    this.#result.catch(() => undefined);
    const self = this;
    return {
      result: this.#result,
      progress: this.hub,
      get phase() {
        return self.phase;
      },
      cancel: (reason?: unknown) => this.#cancel(reason),
    };
  }

  protected requestAbort(reason: unknown): void {
    if (this.abort.signal.aborted) return;
    this.#abortReason = reason;
    this.abort.abort(reason);
  }

  /**
   * Cancels and resolves once rolled back. A second call while cancelling gets the same
   * promise; a call after the end (or once the guest went over) rejects with `not-active`.
   */
  #cancel(reason: unknown): Promise<void> {
    if (this.#cancelling !== undefined && !this.ended) return this.#cancelling;
    const late = this.ended ? 'the migration has already ended' : this.tooLateToCancel();
    if (late !== undefined) {
      const { reason, desc } =
        typeof late === 'string' ? { reason: 'not-active' as const, desc: late } : late;
      return Promise.reject(
        new LiveMigrationError(reason, this.phase, desc, {
          sourceRunning: this.source.status === 'running',
        }),
      );
    }
    this.requestAbort(reason);
    this.#cancelling = this.#result.then(
      () => {
        throw new LiveMigrationError(
          'not-active',
          'done',
          'the migration completed before the cancel took effect',
        );
      },
      (error: unknown) => {
        if (isLiveMigrationError(error) && error.reason === 'aborted') return;
        throw error;
      },
    );
    return this.#cancelling;
  }

  /** Throws `aborted` when the caller cancelled (and an abort still counts). */
  protected checkAbort(): void {
    if (this.abort.signal.aborted && this.abortHonoured())
      throw new LiveMigrationError(
        'aborted',
        this.phase,
        'aborted by the caller',
        {},
        { cause: this.#abortReason },
      );
  }
}
