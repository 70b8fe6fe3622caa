/**
 * QEMU's job framework as seen on QMP: JOB_STATUS_CHANGE through created → running →
 * waiting → pending → concluded (or aborting → concluded on failure), `query-jobs`,
 * `job-dismiss`, `job-cancel`, `job-finalize`; and the jobs modelled on it:
 * `blockdev-create` (file, qcow2) and `snapshot-save`/`snapshot-load`/`snapshot-delete`.
 */
import { qmpError } from '../errors.js';
import type { BlockGraph } from './block.js';
import { type HandlerTable, handler, idWellformed, type ModelHost } from './host.js';
import type { RunState } from './runstate.js';
import type { Snapshots } from './snapshots.js';

export type JobStatus =
  | 'undefined'
  | 'created'
  | 'running'
  | 'paused'
  | 'ready'
  | 'standby'
  | 'waiting'
  | 'pending'
  | 'aborting'
  | 'concluded'
  | 'null';

type Verb = 'cancel' | 'pause' | 'resume' | 'set-speed' | 'complete' | 'finalize' | 'dismiss';

const VERBS: Record<Verb, readonly JobStatus[]> = {
  cancel: ['created', 'running', 'paused', 'ready', 'standby', 'waiting', 'pending'],
  pause: ['created', 'running', 'paused', 'ready', 'standby'],
  resume: ['created', 'running', 'paused', 'ready', 'standby'],
  'set-speed': ['created', 'running', 'paused', 'ready', 'standby'],
  complete: ['ready', 'standby'],
  finalize: ['pending'],
  dismiss: ['concluded'],
};

/**
 * What a block job (mirror, commit, stream, backup) adds to a job: the `BLOCK_JOB_*` events,
 * `query-block-jobs`, a rate limit, the ready state, and hooks the job's kind fills in.
 */
export interface BlockJobPart {
  speed: number;
  /** Mirror and active commit: reached `ready` (stays true once there). */
  ready: boolean;
  /** `block-job-cancel` of a ready job without `force`: complete without pivoting. */
  softCancel: boolean;
  /** QEMU 10.0's `actively-synced` (a write-blocking mirror once ready). */
  activelySynced?: boolean;
  /** Success, before `pending`: the graph change (pivot, shorter chain). */
  prepare?(): void;
  /** The job ended (any outcome): release what it held (bitmaps, node use). */
  clean?(): void;
  /** Work held back by the rate limit: runs when the limit is lifted (or its time is up). */
  held?: (() => void) | undefined;
  /** The rate limit's time for `held` has come (it waits only for a resume). */
  due?: boolean;
  /** Status before a pause (`job-pause`), to return to on resume. */
  resumeTo?: JobStatus | undefined;
}

export class Job {
  status: JobStatus = 'undefined';
  current = 0;
  total = 0;
  error: string | undefined;
  cancelled = false;
  block: BlockJobPart | undefined;

  constructor(
    readonly id: string,
    readonly type: string,
    readonly autoFinalize: boolean,
    readonly autoDismiss: boolean,
  ) {}
}

export class Jobs {
  /** Newest first, like QEMU's job list. */
  private readonly list: Job[] = [];

  constructor(
    private readonly host: ModelHost,
    private readonly block: BlockGraph,
    private readonly run: RunState,
    private readonly snapshots: Snapshots,
  ) {}

  get(id: string): Job | undefined {
    return this.list.find((j) => j.id === id);
  }

  all(): readonly Job[] {
    return this.list;
  }

  /** Moves a job to `status` with its JOB_STATUS_CHANGE event. */
  transition(job: Job, status: JobStatus): void {
    job.status = status;
    this.host.emit('JOB_STATUS_CHANGE', { id: job.id, status });
  }

  /** `job_create` + `job_start`: created, running. */
  create(
    id: string,
    type: string,
    options: { autoFinalize?: boolean; autoDismiss?: boolean } = {},
  ): Job {
    if (!idWellformed(id)) throw qmpError(`Invalid job ID '${id}'`);
    if (this.get(id)) throw qmpError(`Job ID '${id}' already in use`);
    const job = new Job(id, type, options.autoFinalize ?? true, options.autoDismiss ?? false);
    this.list.unshift(job);
    this.transition(job, 'created');
    this.transition(job, 'running');
    return job;
  }

  /** The job's work ended (`error` set on failure): move on like QEMU's completion path. */
  finish(job: Job, error: string | undefined): void {
    const active: readonly JobStatus[] = job.block
      ? ['running', 'ready', 'paused', 'standby']
      : ['running'];
    if (!active.includes(job.status)) return;
    if (error !== undefined || job.cancelled) {
      // Block jobs say it the American way; blockdev-create the British one (both QEMU's).
      job.error = error ?? (job.block ? 'Operation canceled' : 'Operation cancelled');
      this.transition(job, 'aborting');
      job.block?.clean?.();
      this.conclude(job);
      return;
    }
    this.transition(job, 'waiting');
    if (job.block && !job.block.softCancel) job.block.prepare?.();
    job.block?.clean?.();
    this.transition(job, 'pending');
    if (job.autoFinalize) this.conclude(job);
    else if (job.block) this.host.emit('BLOCK_JOB_PENDING', { type: job.type, id: job.id });
  }

  private conclude(job: Job): void {
    if (job.block) {
      const data = {
        device: job.id,
        len: job.total,
        offset: job.current,
        speed: job.block.speed,
        type: job.type,
      };
      if (job.cancelled && job.error === 'Operation canceled')
        this.host.emit('BLOCK_JOB_CANCELLED', data);
      else
        this.host.emit('BLOCK_JOB_COMPLETED', {
          ...data,
          ...(job.error !== undefined ? { error: job.error } : {}),
        });
    }
    this.transition(job, 'concluded');
    if (job.autoDismiss) this.dismiss(job);
  }

  /** Mirror and active commit: the copy caught up (BLOCK_JOB_READY). */
  ready(job: Job): void {
    if (!job.block || job.status !== 'running') return;
    job.block.ready = true;
    this.transition(job, 'ready');
    this.host.emit('BLOCK_JOB_READY', {
      device: job.id,
      len: job.total,
      offset: job.current,
      speed: job.block.speed,
      type: job.type,
    });
  }

  /**
   * `job-complete` of a ready block job: its coroutine wakes up after the reply (the pivot and
   * the events follow it).
   */
  complete(job: Job): void {
    if (job.block) this.host.later(0, () => this.finish(job, undefined));
  }

  /** `job-cancel` / `block-job-cancel`: `force` false on a ready job completes without pivot. */
  cancel(job: Job, force: boolean): void {
    if (job.block && job.type !== 'backup') {
      // Like complete: the job notices the cancel after the reply (a backup waiting for guest
      // writes, before it).
      this.host.later(0, () => this.cancelNow(job, force));
      return;
    }
    this.cancelNow(job, force);
  }

  private cancelNow(job: Job, force: boolean): void {
    if (job.block && !force && job.block.ready && job.status === 'ready') {
      job.block.softCancel = true;
      this.finish(job, undefined);
      return;
    }
    job.cancelled = true;
    if (
      job.status === 'running' ||
      job.status === 'created' ||
      (job.block && ['ready', 'paused', 'standby'].includes(job.status))
    )
      this.finish(job, undefined);
    else if (job.status === 'pending' || job.status === 'waiting') {
      job.error = job.block ? 'Operation canceled' : 'Operation cancelled';
      this.transition(job, 'aborting');
      job.block?.clean?.();
      this.conclude(job);
    }
  }

  dismiss(job: Job): void {
    this.transition(job, 'null');
    const i = this.list.indexOf(job);
    if (i >= 0) this.list.splice(i, 1);
  }

  /** A job by id for a verb, refused in the wrong state (`block`: the block-job-* wording). */
  verb(id: string, verb: Verb, block = false): Job {
    const job = this.get(id);
    if (!job || (block && !job.block))
      throw block
        ? qmpError(`Block job '${id}' not found`, 'DeviceNotActive')
        : qmpError('Job not found');
    if (!VERBS[verb].includes(job.status))
      throw qmpError(
        `Job '${job.id}' in state '${job.status}' cannot accept command verb '${verb}'`,
      );
    return job;
  }

  /** `job-finalize`. */
  finalize(job: Job): void {
    this.conclude(job);
  }

  /** `job-pause` of a block job: paused (or standby when ready), JOB_STATUS_CHANGE. */
  pause(job: Job): void {
    const block = job.block;
    if (!block || block.resumeTo !== undefined) return;
    // `paused` shows at once; the job itself stops at its next pause point, after the reply.
    const from = job.status;
    block.resumeTo = from;
    this.host.later(0, () => {
      if (block.resumeTo === from && job.status === from)
        this.transition(job, from === 'ready' ? 'standby' : 'paused');
    });
  }

  /** `job-resume`; a job that was not paused is refused like QEMU. */
  resume(job: Job): void {
    const block = job.block;
    const to = block?.resumeTo;
    if (!block || to === undefined) throw qmpError("Can't resume a job that was not paused");
    block.resumeTo = undefined;
    this.host.later(0, () => {
      if (job.status === 'paused' || job.status === 'standby') this.transition(job, to);
      // A job whose rate-limit time came while it was paused goes on now.
      if (block.due) block.held?.();
    });
  }

  info(job: Job): Record<string, unknown> {
    return {
      id: job.id,
      type: job.type,
      status: job.status,
      'current-progress': job.current,
      'total-progress': job.total,
      error: job.error,
    };
  }

  /** Runs a job's body after `timing.jobMs`; the body returns an error text or undefined. */
  private runLater(job: Job, body: () => string | undefined): void {
    this.host.later(this.host.timing.jobMs, () => {
      if (job.status !== 'running') return;
      let error: string | undefined;
      try {
        error = body();
      } catch (e) {
        error = e instanceof Error ? ((e as { desc?: string }).desc ?? e.message) : String(e);
      }
      job.total = 1;
      job.current = 1;
      this.finish(job, error);
    });
  }

  handlers(table: HandlerTable): void {
    table.set('query-jobs', () => this.list.map((j) => this.info(j)));
    table.set(
      'job-dismiss',
      handler<{ id: string }>((args) => {
        this.dismiss(this.verb(args.id, 'dismiss'));
      }),
    );
    table.set(
      'job-finalize',
      handler<{ id: string }>((args) => {
        this.finalize(this.verb(args.id, 'finalize'));
      }),
    );
    table.set(
      'job-cancel',
      handler<{ id: string }>((args) => {
        this.cancel(this.verb(args.id, 'cancel'), true);
      }),
    );
    table.set(
      'job-complete',
      handler<{ id: string }>((args) => {
        this.complete(this.verb(args.id, 'complete'));
      }),
    );
    table.set(
      'job-pause',
      handler<{ id: string }>((args) => {
        this.pause(this.verb(args.id, 'pause'));
      }),
    );
    table.set(
      'job-resume',
      handler<{ id: string }>((args) => {
        this.resume(this.verb(args.id, 'resume'));
      }),
    );
    table.set(
      'blockdev-create',
      handler<{ 'job-id': string; options: Record<string, unknown> }>((args) => {
        const job = this.create(args['job-id'], 'create', {
          autoFinalize: true,
          autoDismiss: false,
        });
        this.runLater(job, () => {
          this.block.createImage(args.options);
          return undefined;
        });
      }),
    );
    // Snapshot jobs block the monitor until their work is done: the reply comes after the
    // job's body (and its STOP/RESUME), and the final transitions come after the reply.
    const snapshotJob = (
      type: 'snapshot-save' | 'snapshot-load' | 'snapshot-delete',
      body: (args: SnapshotJobArgs) => string | undefined,
    ) =>
      handler<SnapshotJobArgs>(async (args) => {
        const job = this.create(args['job-id'], type);
        await this.host.sleep(this.host.timing.jobMs);
        let error: string | undefined;
        try {
          error = body(args);
        } catch (e) {
          error = (e as { desc?: string }).desc ?? String(e);
        }
        job.total = 1;
        job.current = 1;
        this.host.later(0, () => this.finish(job, error));
      });
    table.set(
      'snapshot-save',
      snapshotJob('snapshot-save', (a) => this.snapshots.save(a.tag, false, a.vmstate, a.devices)),
    );
    table.set(
      'snapshot-load',
      snapshotJob('snapshot-load', (a) => {
        const wasRunning = this.run.running;
        this.run.stopVm('restore-vm');
        const error = this.snapshots.load(a.tag, a.vmstate, a.devices);
        if (error === undefined && wasRunning) this.run.startVm();
        return error;
      }),
    );
    table.set(
      'snapshot-delete',
      snapshotJob('snapshot-delete', (a) => this.snapshots.delete(a.tag, a.devices)),
    );
  }
}

interface SnapshotJobArgs {
  'job-id': string;
  tag: string;
  vmstate?: string;
  devices?: string[];
}
