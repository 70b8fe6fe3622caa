import type { WireEvent } from '../codec/messages.js';
import { QmpJobError, QmpTimeoutError } from '../errors.js';
import type { EventExpectation } from './events.js';
import type { ExecuteOptions } from './types.js';

export interface JobOptions {
  /**
   * Abort: sends `job-cancel`, still waits for `concluded` and dismisses, then rejects with
   * the signal's reason.
   */
  readonly signal?: AbortSignal;
  /** Overall deadline in ms; handled like an abort with a `QmpTimeoutError`. */
  readonly timeout?: number;
  /** Each `JOB_STATUS_CHANGE` status of this job, as it happens. */
  readonly onStatus?: (status: string) => void;
}

export interface JobResult<R> {
  readonly jobId: string;
  /** What the job command itself returned (usually `{}`). */
  readonly returned: R;
  /** The statuses seen, e.g. created, running, waiting, pending, concluded. */
  readonly statuses: readonly string[];
}

/** What `runJob` needs from a client (kept small so it is testable on its own). */
export interface JobDeps {
  expect(predicate: (event: WireEvent) => boolean): EventExpectation<WireEvent>;
  listen(fn: (event: WireEvent) => void): () => void;
  send(command: string, args: unknown, options?: ExecuteOptions): Promise<unknown>;
}

interface JobStatusData {
  readonly id?: unknown;
  readonly status?: unknown;
}
interface JobInfo {
  readonly id?: unknown;
  readonly status?: unknown;
  readonly error?: unknown;
}

function jobData(event: WireEvent): JobStatusData {
  return (event.data ?? {}) as JobStatusData;
}

export async function runJob<R>(
  deps: JobDeps,
  command: string,
  args: unknown,
  jobId: string,
  options: JobOptions,
): Promise<JobResult<R>> {
  const statuses: string[] = [];
  // Armed before the command is sent: snapshot-save emits created/running before its reply.
  const unlisten = deps.listen((event) => {
    const data = jobData(event);
    if (data.id !== jobId || typeof data.status !== 'string') return;
    statuses.push(data.status);
    options.onStatus?.(data.status);
  });
  const concluded = deps.expect((event) => {
    const data = jobData(event);
    return data.id === jobId && (data.status === 'concluded' || data.status === 'null');
  });
  let stopReason: unknown;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const requestCancel = (reason: unknown): void => {
    if (stopReason !== undefined) return;
    stopReason = reason;
    deps.send('job-cancel', { id: jobId }).catch(() => {
      // Already concluded, or gone: the concluded wait decides.
    });
  };
  const onAbort = (): void => requestCancel(options.signal?.reason ?? new Error('aborted'));
  try {
    if (options.signal?.aborted) throw options.signal.reason;
    let returned: unknown;
    try {
      returned = await deps.send(command, args);
    } catch (error) {
      // Refused synchronously: no job of ours exists (e.g. "Job ID 'x' already in use").
      concluded.cancel();
      throw error;
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.timeout !== undefined) {
      const ms = options.timeout;
      timer = setTimeout(
        () =>
          requestCancel(
            new QmpTimeoutError(
              command,
              ms,
              `${command} job '${jobId}' did not finish within ${ms} ms`,
            ),
          ),
        ms,
      );
    }
    const last = await concluded.wait();
    let failure: string | undefined;
    if (jobData(last).status === 'concluded') {
      // The event carries no error text: read it before job-dismiss destroys it.
      let info: JobInfo | undefined;
      try {
        const jobs = (await deps.send('query-jobs', undefined)) as readonly JobInfo[];
        info = jobs.find((j) => j.id === jobId);
        if (typeof info?.error === 'string') failure = info.error;
      } finally {
        // A job created with auto-dismiss (block jobs' default) may already be gone.
        if (info === undefined || info.status === 'concluded')
          await deps.send('job-dismiss', { id: jobId }).catch((error: unknown) => {
            if (info !== undefined) throw error;
          });
      }
    }
    if (stopReason !== undefined) throw stopReason;
    if (failure !== undefined) throw new QmpJobError({ jobId, command, desc: failure });
    return { jobId, returned: returned as R, statuses };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    unlisten();
    concluded.cancel();
  }
}
