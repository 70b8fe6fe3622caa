/**
 * `SnapshotTask`: a promise that is also an async iterable of progress reports, with abort.
 */
import { SnapshotAbortedError } from './errors.js';
import type { SnapshotPhase, SnapshotProgress, SnapshotTask } from './types.js';

/** What an operation sees while it runs. */
export interface TaskContext {
  /** Aborted by the caller's signal or `task.abort()`. */
  readonly signal: AbortSignal;
  /** Enters a phase (timed) and reports it. */
  phase(phase: SnapshotPhase, totalBytes?: number): void;
  /** Reports bytes within the current phase (rate-limited to one report per 100 ms). */
  bytes(bytes: number, totalBytes?: number): void;
  readonly currentPhase: SnapshotPhase;
  /** Milliseconds per finished phase (the current one included up to now). */
  phaseTimes(): Partial<Record<SnapshotPhase, number>>;
  /** Throws `SnapshotAbortedError` when aborted. */
  checkAborted(): void;
  readonly startedAt: number;
}

class Task<T> implements SnapshotTask<T> {
  readonly result: Promise<T>;
  readonly #events: SnapshotProgress[] = [];
  readonly #wakers = new Set<() => void>();
  #settled = false;
  readonly #controller = new AbortController();

  constructor(
    name: string,
    options: { signal?: AbortSignal; onProgress?: (p: SnapshotProgress) => void },
    run: (ctx: TaskContext) => Promise<T>,
  ) {
    const startedAt = performance.now();
    const controller = this.#controller;
    const external = options.signal;
    const forward = () => controller.abort(external?.reason);
    if (external?.aborted) controller.abort(external.reason);
    else external?.addEventListener('abort', forward, { once: true });
    let current: SnapshotPhase = 'prepare';
    let phaseStart = startedAt;
    let lastBytesReport = 0;
    let total: number | undefined;
    const times: Partial<Record<SnapshotPhase, number>> = {};
    const emit = (bytes: number) => {
      const progress: SnapshotProgress = {
        phase: current,
        bytes,
        totalBytes: total,
        percent:
          total === undefined || total === 0
            ? undefined
            : Math.min(100, Math.round((bytes / total) * 1000) / 10),
        elapsedMs: performance.now() - startedAt,
      };
      this.#events.push(progress);
      try {
        options.onProgress?.(progress);
      } catch {
        // A listener's bug must not break the operation.
      }
      for (const wake of this.#wakers) wake();
    };
    const closePhase = () => {
      const now = performance.now();
      times[current] = (times[current] ?? 0) + (now - phaseStart);
      phaseStart = now;
    };
    let lastBytes = 0;
    const ctx: TaskContext = {
      signal: controller.signal,
      startedAt,
      get currentPhase() {
        return current;
      },
      phase(phase, totalBytes) {
        closePhase();
        current = phase;
        total = totalBytes;
        emit(lastBytes);
      },
      bytes(bytes, totalBytes) {
        lastBytes = bytes;
        if (totalBytes !== undefined) total = totalBytes;
        const now = performance.now();
        if (now - lastBytesReport < 100) return;
        lastBytesReport = now;
        emit(bytes);
      },
      phaseTimes() {
        closePhase();
        return { ...times };
      },
      checkAborted() {
        if (controller.signal.aborted)
          throw new SnapshotAbortedError(name, current, { cause: controller.signal.reason });
      },
    };
    this.result = (async () => {
      try {
        return await run(ctx);
      } finally {
        external?.removeEventListener('abort', forward);
        this.#settled = true;
        for (const wake of this.#wakers) wake();
      }
    })();
    // Observed by whoever awaits the task; this only keeps a task nobody awaits from an unhandled
    // rejection.
    this.result.catch(() => {});
  }

  // biome-ignore lint/suspicious/noThenProperty: the task is deliberately awaitable.
  then<R1 = T, R2 = never>(
    onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.result.then(onfulfilled, onrejected);
  }

  abort(reason?: unknown): void {
    this.#controller.abort(reason ?? new Error('aborted'));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SnapshotProgress> {
    let index = 0;
    for (;;) {
      while (index < this.#events.length) {
        const event = this.#events[index++];
        if (event !== undefined) yield event;
      }
      if (this.#settled) return;
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#wakers.delete(wake);
          resolve();
        };
        this.#wakers.add(wake);
      });
    }
  }
}

/** Runs `run` as a `SnapshotTask`. */
export function startTask<T>(
  name: string,
  options: {
    signal?: AbortSignal | undefined;
    onProgress?: ((p: SnapshotProgress) => void) | undefined;
  },
  run: (ctx: TaskContext) => Promise<T>,
): SnapshotTask<T> {
  const opts: { signal?: AbortSignal; onProgress?: (p: SnapshotProgress) => void } = {};
  if (options.signal) opts.signal = options.signal;
  if (options.onProgress) opts.onProgress = options.onProgress;
  return new Task(name, opts, run);
}
