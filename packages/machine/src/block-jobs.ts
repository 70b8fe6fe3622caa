/**
 * The block-job runner: `stream`, `commit` (active and inner), `mirror` and `backup`, each
 * started with `auto-dismiss: false` and returned as a `BlockJob` handle — an async iterator
 * of progress (status transitions from `JOB_STATUS_CHANGE`, offset/len/speed from
 * `query-block-jobs`), control (`pause`/`resume`/`cancel`/`complete`/`finalize`/`dismiss`,
 * `setSpeed`) and `wait()`, which reads the job's error from `query-jobs` *before* dismissing
 * it (a job that auto-dismisses takes its error with it) and then brings the machine's block
 * graph model in line with what QEMU did (a mirror that pivoted, a commit or stream that
 * took nodes out of a chain).
 *
 * The status listener is armed before the job command is sent: QEMU emits `created` and
 * `running` before its reply, and a tiny job can be `concluded` before the reply too. Jobs
 * started by a `transaction` (backup of several disks at one instant) are watched the same
 * way through `watchBlockJobs`.
 *
 * Shared by the backup package and live migration's disk mirror, so it lives here, below both.
 */

import { blockGraph, deviceProps, type VmConfig } from '@qmpkit/devices';
import type {
  BlockdevOnError,
  Commands,
  JobStatus,
  MirrorCopyMode,
  MirrorSyncMode,
} from '@qmpkit/qapi';
import {
  type ArgsOf,
  type CloseReason,
  type ExecuteRest,
  isQmpCommandError,
  type ReturnOf,
} from '@qmpkit/transport';
import { BlockJobError } from './errors.js';

export type BlockJobType = 'stream' | 'commit' | 'mirror' | 'backup';

/** The commands the runner sends. */
export type BlockJobCommand =
  | 'block-stream'
  | 'block-commit'
  | 'blockdev-mirror'
  | 'blockdev-backup'
  | 'transaction'
  | 'query-block-jobs'
  | 'query-jobs'
  | 'query-named-block-nodes'
  | 'job-pause'
  | 'job-resume'
  | 'job-complete'
  | 'job-finalize'
  | 'job-dismiss'
  | 'block-job-cancel'
  | 'block-job-set-speed';

/** One command's typed `execute` signature; intersections of these describe a narrowed client. */
export type CommandExec<K extends keyof Commands & string> = (
  command: K,
  ...rest: ExecuteRest<ArgsOf<Commands, K>>
) => Promise<ReturnOf<Commands, K>>;
type Exec<K extends BlockJobCommand> = CommandExec<K>;

/**
 * The part of a typed client the runner uses: these commands and `JOB_STATUS_CHANGE`. A
 * `Machine`'s client (QEMU's bindings) and a `StorageDaemon`'s (the daemon's own bindings,
 * the same QAPI types for these commands) both fit, so one runner serves a running VM and
 * the images of a stopped one.
 */
export interface BlockJobQmp {
  readonly execute: Exec<'block-stream'> &
    Exec<'block-commit'> &
    Exec<'blockdev-mirror'> &
    Exec<'blockdev-backup'> &
    Exec<'transaction'> &
    Exec<'query-block-jobs'> &
    Exec<'query-jobs'> &
    Exec<'query-named-block-nodes'> &
    Exec<'job-pause'> &
    Exec<'job-resume'> &
    Exec<'job-complete'> &
    Exec<'job-finalize'> &
    Exec<'job-dismiss'> &
    Exec<'block-job-cancel'> &
    Exec<'block-job-set-speed'>;
  on(
    name: 'JOB_STATUS_CHANGE',
    fn: (event: { readonly data: { readonly id: string; readonly status: JobStatus } }) => void,
  ): () => void;
  readonly closed: Promise<CloseReason>;
}

/** What the runner needs: a typed client, and (a `Machine` has it) a model to keep in line. */
export interface BlockJobHost {
  readonly qmp: BlockJobQmp;
  /** Re-reads the block graph into the model; called after each job is dismissed. */
  syncBlockGraph?(): Promise<boolean>;
  /** The model (a `Machine`'s configuration), compared before and after a job. */
  readonly config?: VmConfig;
  /** Deletes nodes from QEMU and the model (a `Machine`'s `unplug`), for `removeDetached`. */
  unplug?(selection: { readonly blockdevs: readonly string[] }): Promise<unknown>;
}

/** One update of a job's progress iterator. */
export type BlockJobUpdate =
  | {
      readonly kind: 'status';
      readonly status: JobStatus;
      readonly previous: JobStatus | undefined;
    }
  | {
      readonly kind: 'progress';
      readonly status: JobStatus;
      /** Bytes done so far, of `len` (both grow while a mirror follows guest writes). */
      readonly offset: number;
      readonly len: number;
      /** Rate limit in bytes/s (0: none). */
      readonly speed: number;
      readonly ready: boolean;
      readonly paused: boolean;
    };

export interface BlockJobOutcome {
  readonly jobId: string;
  readonly type: BlockJobType;
  /** `cancelled` when `cancel()` was asked for (a ready mirror cancelled does not pivot). */
  readonly outcome: 'completed' | 'cancelled';
  /** Every status QEMU reported, in order. */
  readonly statuses: readonly JobStatus[];
  /** Final progress as `query-jobs` reported it before dismissal. */
  readonly offset: number;
  readonly len: number;
  /**
   * Whether the model's block nodes or devices differ from when the job started (a pivot, a
   * shorter chain). The machine also syncs by itself on `BLOCK_JOB_COMPLETED`, so this
   * compares the model rather than asking which sync made the change.
   */
  readonly graphChanged: boolean;
  /**
   * Nodes a device reached (through `file`/`backing`/… children) when the job started and no
   * device reaches now: the layers a commit merged away, a mirror's source after the pivot.
   * QEMU keeps them (they hold stale data); `wait({ removeDetached: true })` deletes them.
   */
  readonly detached: readonly string[];
  /** Whether `detached` was deleted (`blockdev-del`, model updated). */
  readonly removed: boolean;
}

/** Every node some device reaches in `config`. */
function reachable(config: VmConfig | undefined): Set<string> {
  const out = new Set<string>();
  if (config === undefined) return out;
  const graph = blockGraph(config);
  for (const device of config.devices ?? []) {
    const drive = deviceProps(device).drive;
    if (typeof drive !== 'string' || graph.node(drive) === undefined) continue;
    for (const n of graph.subtree(drive)) out.add(n);
  }
  return out;
}

interface CommonJobOptions {
  /** Job id (default: generated, `qmpkit-<type>-<pid>-<n>`). */
  readonly jobId?: string;
  /** Rate limit in bytes/s (0 or absent: none). Change it later with `setSpeed`. */
  readonly speed?: number;
  /**
   * Default true. With false the job stops in `pending` until `finalize()` (or `cancel()`),
   * which lets a caller decide at the last moment whether the job's changes take effect.
   */
  readonly autoFinalize?: boolean;
  readonly filterNodeName?: string;
}

export interface StreamOptions extends CommonJobOptions {
  /** The node whose backing chain is pulled up into it (usually a disk's active layer). */
  readonly node: string;
  /** Stop at this node (it stays the new backing); absent: stream everything, no backing. */
  readonly base?: string;
  /** Backing file name to write into `node`'s image (default: `base`'s file name). */
  readonly backingFile?: string;
  readonly onError?: BlockdevOnError;
}

export interface CommitOptions extends CommonJobOptions {
  /** Any node of the chain's top: the active layer the device uses. */
  readonly device: string;
  /**
   * Top of the range to merge down. Absent or equal to `device`: an *active* commit, which
   * becomes `ready` and waits for `complete()` (pivot the device onto `base`) or `cancel()`.
   */
  readonly top?: string;
  /** The node that receives the data (default: the bottom of the chain). */
  readonly base?: string;
  readonly backingFile?: string;
  readonly onError?: BlockdevOnError;
}

export interface MirrorOptions extends CommonJobOptions {
  readonly node: string;
  /** A node added by the caller (`blockdev-add`), of the same size. */
  readonly target: string;
  /** Default `full`. */
  readonly sync?: MirrorSyncMode;
  /**
   * `write-blocking`: a guest write completes only once it is on the target too, so a busy
   * disk still converges (default QEMU's `background`).
   */
  readonly copyMode?: MirrorCopyMode;
  /** The node the target replaces in the graph when it pivots (default `node`). */
  readonly replaces?: string;
  readonly granularity?: number;
  readonly bufSize?: number;
  readonly onSourceError?: BlockdevOnError;
  readonly onTargetError?: BlockdevOnError;
}

export interface BackupOptions extends CommonJobOptions {
  readonly node: string;
  readonly target: string;
  /** `full`, `top`, `none`, `bitmap` or `incremental`. */
  readonly sync: MirrorSyncMode;
  /** Dirty bitmap of `node` for `sync: bitmap|incremental`. */
  readonly bitmap?: string;
  /** What happens to `bitmap` afterwards: `on-success` (cleared), `never`, `always`. */
  readonly bitmapMode?: 'on-success' | 'never' | 'always';
  readonly compress?: boolean;
  readonly onSourceError?: BlockdevOnError;
  readonly onTargetError?: BlockdevOnError;
}

let counter = 0;
function newJobId(type: BlockJobType, given: string | undefined): string {
  return given ?? `qmpkit-${type}-${process.pid}-${++counter}`;
}

/** Adds `key: value` only when value is defined (`exactOptionalPropertyTypes`). */
function opt<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function common(jobId: string, o: CommonJobOptions) {
  return {
    'job-id': jobId,
    'auto-dismiss': false,
    ...opt('auto-finalize', o.autoFinalize),
    ...opt('speed', o.speed),
    ...opt('filter-node-name', o.filterNodeName),
  };
}

/** The `blockdev-backup` arguments the runner sends (also a `transaction` action's data). */
export function backupArgs(jobId: string, o: BackupOptions) {
  return {
    ...common(jobId, o),
    device: o.node,
    target: o.target,
    sync: o.sync,
    ...opt('bitmap', o.bitmap),
    ...opt('bitmap-mode', o.bitmapMode),
    ...opt('compress', o.compress),
    ...opt('on-source-error', o.onSourceError),
    ...opt('on-target-error', o.onTargetError),
  };
}

/** `block-stream`: pulls the chain below `node` (down to `base`) up into `node`. */
export function stream(host: BlockJobHost, o: StreamOptions): Promise<BlockJob> {
  const jobId = newJobId('stream', o.jobId);
  const args = {
    ...common(jobId, o),
    device: o.node,
    ...opt('base-node', o.base),
    ...opt('backing-file', o.backingFile),
    ...opt('on-error', o.onError),
  };
  return startBlockJob(host, 'stream', jobId, (qmp) => qmp.execute('block-stream', args));
}

/** `block-commit`: merges `top` (default: the active layer) down into `base`. */
export function commit(host: BlockJobHost, o: CommitOptions): Promise<BlockJob> {
  const jobId = newJobId('commit', o.jobId);
  const args = {
    ...common(jobId, o),
    device: o.device,
    ...opt('top-node', o.top),
    ...opt('base-node', o.base),
    ...opt('backing-file', o.backingFile),
    ...opt('on-error', o.onError),
  };
  return startBlockJob(host, 'commit', jobId, (qmp) => qmp.execute('block-commit', args));
}

/** `blockdev-mirror`: copies `node` to `target`, then follows writes until complete/cancel. */
export function mirror(host: BlockJobHost, o: MirrorOptions): Promise<BlockJob> {
  const jobId = newJobId('mirror', o.jobId);
  const args = {
    ...common(jobId, o),
    device: o.node,
    target: o.target,
    sync: o.sync ?? 'full',
    ...opt('copy-mode', o.copyMode),
    ...opt('replaces', o.replaces),
    ...opt('granularity', o.granularity),
    ...opt('buf-size', o.bufSize),
    ...opt('on-source-error', o.onSourceError),
    ...opt('on-target-error', o.onTargetError),
  };
  return startBlockJob(host, 'mirror', jobId, (qmp) => qmp.execute('blockdev-mirror', args));
}

/** `blockdev-backup`: a point-in-time copy of `node` into `target`. */
export function backup(host: BlockJobHost, o: BackupOptions): Promise<BlockJob> {
  const jobId = newJobId('backup', o.jobId);
  const args = backupArgs(jobId, o);
  return startBlockJob(host, 'backup', jobId, (qmp) => qmp.execute('blockdev-backup', args));
}

/** A new job id for a job the caller starts itself (e.g. inside a `transaction`). */
export function blockJobId(type: BlockJobType): string {
  return newJobId(type, undefined);
}

async function startBlockJob(
  host: BlockJobHost,
  type: BlockJobType,
  jobId: string,
  send: (qmp: BlockJobQmp) => Promise<unknown>,
): Promise<BlockJob> {
  const jobs = await watchBlockJobs(host, [{ jobId, type }], () => send(host.qmp));
  return jobs[0] as BlockJob;
}

/**
 * Watches the jobs `start` creates (a job command, or a `transaction` of several): listeners
 * are armed first, then `start` runs; if it throws, nothing is watched and a `BlockJobError`
 * (`phase: 'start'`, QEMU's message) is thrown.
 */
export async function watchBlockJobs(
  host: BlockJobHost,
  jobs: readonly { readonly jobId: string; readonly type: BlockJobType }[],
  start: () => Promise<unknown>,
): Promise<BlockJob[]> {
  const handles = jobs.map((j) => new BlockJob(host, j.jobId, j.type));
  try {
    await start();
  } catch (cause) {
    for (const h of handles) h.detach();
    const first = jobs[0];
    throw new BlockJobError(
      {
        phase: 'start',
        jobId: first?.jobId ?? '',
        type: first?.type ?? 'backup',
        desc: isQmpCommandError(cause) ? cause.desc : String(cause),
      },
      { cause },
    );
  }
  return handles;
}

function graphKey(host: BlockJobHost): string {
  return JSON.stringify([host.config?.blockdevs, host.config?.devices]);
}

const FINAL: ReadonlySet<JobStatus> = new Set(['concluded', 'null']);

/** A running block job. Create one with `stream`/`commit`/`mirror`/`backup`/`watchBlockJobs`. */
export class BlockJob {
  readonly id: string;
  readonly type: BlockJobType;
  readonly #host: BlockJobHost;
  readonly #statuses: JobStatus[] = [];
  #waiters: (() => void)[] = [];
  #unlisten: (() => void) | undefined;
  #cancelRequested = false;
  #lost: unknown;
  #result: Promise<BlockJobOutcome> | undefined;
  readonly #graphBefore: string;
  readonly #reachableBefore: Set<string>;

  constructor(host: BlockJobHost, id: string, type: BlockJobType) {
    this.#host = host;
    this.#graphBefore = graphKey(host);
    this.#reachableBefore = reachable(host.config);
    this.id = id;
    this.type = type;
    const off = host.qmp.on('JOB_STATUS_CHANGE', (event) => {
      if (event.data.id !== id) return;
      this.#statuses.push(event.data.status);
      this.#wake();
    });
    this.#unlisten = off;
    // The connection ending (QEMU died) wakes every waiter with that as the reason.
    host.qmp.closed.then(
      (reason) => {
        this.#lost = reason.error ?? 'the QMP connection was closed by this process';
        this.#wake();
      },
      (error: unknown) => {
        this.#lost = error;
        this.#wake();
      },
    );
  }

  /** The last status QEMU reported (`undefined` before the first event). */
  get status(): JobStatus | undefined {
    return this.#statuses.at(-1);
  }

  /** Every status so far, in order. */
  get statuses(): readonly JobStatus[] {
    return this.#statuses;
  }

  /** Stops following events (the job itself is not touched). */
  detach(): void {
    this.#unlisten?.();
    this.#unlisten = undefined;
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves at the next status change (or at once if `seen` statuses are behind). */
  #changed(seen: number): Promise<void> {
    if (this.#statuses.length > seen || this.#lost !== undefined || this.#unlisten === undefined)
      return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #lostError(): BlockJobError {
    return new BlockJobError(
      {
        phase: 'lost',
        jobId: this.id,
        type: this.type,
        desc: 'the QMP connection closed before the job concluded (QEMU exited?)',
      },
      { cause: this.#lost },
    );
  }

  /** Waits until the job reports `status` (or rejects when it concludes without it). */
  async until(status: JobStatus): Promise<void> {
    let seen = 0;
    for (;;) {
      for (; seen < this.#statuses.length; seen++) {
        const s = this.#statuses[seen];
        if (s === status) return;
        if (s !== undefined && FINAL.has(s)) {
          const error = await this.#readError().catch(() => undefined);
          throw new BlockJobError({
            phase: 'run',
            jobId: this.id,
            type: this.type,
            desc: error ?? `the job concluded without reaching '${status}'`,
          });
        }
      }
      if (this.#lost !== undefined) throw this.#lostError();
      // Detached: no status will come any more (waiting on would spin without end).
      if (this.#unlisten === undefined)
        throw new BlockJobError({
          phase: 'lost',
          jobId: this.id,
          type: this.type,
          desc: `stopped following the job before it reached '${status}'`,
        });
      await this.#changed(seen);
    }
  }

  /** A mirror or active commit has copied everything and follows writes: `complete()` pivots. */
  ready(): Promise<void> {
    return this.until('ready');
  }

  /**
   * Progress: one `status` update per `JOB_STATUS_CHANGE` (in order, none lost) and one
   * `progress` update per poll of `query-block-jobs` (every `intervalMs`, default 1000, and
   * at each status change). Ends after `concluded`.
   */
  async *progress(options: { readonly intervalMs?: number } = {}): AsyncGenerator<BlockJobUpdate> {
    const interval = options.intervalMs ?? 1000;
    let seen = 0;
    let previous: JobStatus | undefined;
    for (;;) {
      for (; seen < this.#statuses.length; seen++) {
        const status = this.#statuses[seen] as JobStatus;
        yield { kind: 'status', status, previous };
        previous = status;
        if (FINAL.has(status)) return;
      }
      if (this.#lost !== undefined) throw this.#lostError();
      const info = await this.#query();
      if (info !== undefined)
        yield {
          kind: 'progress',
          status: info.status,
          offset: info.offset,
          len: info.len,
          speed: info.speed,
          ready: info.ready,
          paused: info.paused,
        };
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#changed(seen),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, interval);
        }),
      ]);
      clearTimeout(timer);
    }
  }

  async #query() {
    const jobs = await this.#host.qmp.execute('query-block-jobs');
    return jobs.find((j) => j.device === this.id);
  }

  async #control(action: string, run: () => Promise<unknown>): Promise<void> {
    try {
      await run();
    } catch (cause) {
      throw new BlockJobError(
        {
          phase: 'control',
          action,
          jobId: this.id,
          type: this.type,
          desc: isQmpCommandError(cause) ? cause.desc : String(cause),
        },
        { cause },
      );
    }
  }

  pause(): Promise<void> {
    return this.#control('pause', () => this.#host.qmp.execute('job-pause', { id: this.id }));
  }

  resume(): Promise<void> {
    return this.#control('resume', () => this.#host.qmp.execute('job-resume', { id: this.id }));
  }

  /**
   * Cancels. A mirror/active commit in `ready` stops *without* pivoting (its target holds a
   * consistent copy); `force` cancels a ready mirror abruptly instead.
   */
  cancel(options: { readonly force?: boolean } = {}): Promise<void> {
    this.#cancelRequested = true;
    return this.#control('cancel', () =>
      this.#host.qmp.execute('block-job-cancel', {
        device: this.id,
        ...opt('force', options.force),
      }),
    );
  }

  /** Pivots a ready mirror/active commit. */
  complete(): Promise<void> {
    return this.#control('complete', () => this.#host.qmp.execute('job-complete', { id: this.id }));
  }

  /** Lets a job started with `autoFinalize: false` apply its changes (from `pending`). */
  finalize(): Promise<void> {
    return this.#control('finalize', () => this.#host.qmp.execute('job-finalize', { id: this.id }));
  }

  /** Removes a concluded job (`wait()` does this itself after reading the error). */
  dismiss(): Promise<void> {
    return this.#control('dismiss', () => this.#host.qmp.execute('job-dismiss', { id: this.id }));
  }

  /** Changes the rate limit of the running job (bytes/s; 0: none). */
  setSpeed(speed: number): Promise<void> {
    return this.#control('set-speed', () =>
      this.#host.qmp.execute('block-job-set-speed', { device: this.id, speed }),
    );
  }

  async #readError(): Promise<string | undefined> {
    const jobs = await this.#host.qmp.execute('query-jobs');
    return jobs.find((j) => j.id === this.id)?.error;
  }

  /**
   * Waits until the job concludes, reads its error and progress (`query-jobs`), dismisses it,
   * syncs the machine's block graph model and returns the outcome; a failed job rejects with
   * `BlockJobError` (`phase: 'run'`) carrying QEMU's message. Safe to call more than once
   * (the options of the first call apply). With `removeDetached`, nodes no device reaches any
   * more since the job (see `BlockJobOutcome.detached`) are deleted through the host's
   * `unplug`, so a later job on the chain does not find them still holding it.
   */
  wait(options: { readonly removeDetached?: boolean } = {}): Promise<BlockJobOutcome> {
    this.#result ??= this.#settle(options.removeDetached === true);
    return this.#result;
  }

  async #settle(removeDetached: boolean): Promise<BlockJobOutcome> {
    let seen = 0;
    for (;;) {
      if (this.#statuses.some((s) => FINAL.has(s))) break;
      if (this.#lost !== undefined) {
        this.detach();
        throw this.#lostError();
      }
      if (this.#unlisten === undefined)
        throw new BlockJobError({
          phase: 'lost',
          jobId: this.id,
          type: this.type,
          desc: 'stopped following the job before it concluded',
        });
      seen = this.#statuses.length;
      await this.#changed(seen);
    }
    this.detach();
    const jobs = await this.#host.qmp.execute('query-jobs');
    const info = jobs.find((j) => j.id === this.id);
    if (info !== undefined) await this.dismiss();
    await this.#host.syncBlockGraph?.();
    const graphChanged = graphKey(this.#host) !== this.#graphBefore;
    const now = reachable(this.#host.config);
    const known = new Set((this.#host.config?.blockdevs ?? []).map((b) => b['node-name']));
    const detached = [...this.#reachableBefore].filter((n) => !now.has(n) && known.has(n));
    const error = info?.error;
    const cancelled =
      this.#cancelRequested && (error === undefined || /cancel/i.test(error) === true);
    if (error !== undefined && !cancelled)
      throw new BlockJobError({ phase: 'run', jobId: this.id, type: this.type, desc: error });
    let removed = false;
    if (removeDetached && detached.length > 0 && this.#host.unplug !== undefined) {
      await this.#control('remove-detached', async () =>
        this.#host.unplug?.({ blockdevs: detached }),
      );
      removed = true;
    }
    return {
      jobId: this.id,
      type: this.type,
      outcome: cancelled ? 'cancelled' : 'completed',
      statuses: [...this.#statuses],
      offset: info?.['current-progress'] ?? 0,
      len: info?.['total-progress'] ?? 0,
      graphChanged,
      detached,
      removed,
    };
  }
}
