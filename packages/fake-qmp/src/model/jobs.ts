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

export class Job {
  status: JobStatus = 'undefined';
  current = 0;
  total = 0;
  error: string | undefined;
  cancelled = false;

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

  private transition(job: Job, status: JobStatus): void {
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
    if (job.status !== 'running') return;
    if (error !== undefined || job.cancelled) {
      job.error = error ?? 'Operation cancelled';
      this.transition(job, 'aborting');
      this.conclude(job);
      return;
    }
    this.transition(job, 'waiting');
    this.transition(job, 'pending');
    if (job.autoFinalize) this.conclude(job);
  }

  private conclude(job: Job): void {
    this.transition(job, 'concluded');
    if (job.autoDismiss) this.dismiss(job);
  }

  private dismiss(job: Job): void {
    this.transition(job, 'null');
    const i = this.list.indexOf(job);
    if (i >= 0) this.list.splice(i, 1);
  }

  private verb(id: string, verb: Verb): Job {
    const job = this.get(id);
    if (!job) throw qmpError('Job not found');
    if (!VERBS[verb].includes(job.status))
      throw qmpError(
        `Job '${job.id}' in state '${job.status}' cannot accept command verb '${verb}'`,
      );
    return job;
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
        this.conclude(this.verb(args.id, 'finalize'));
      }),
    );
    table.set(
      'job-cancel',
      handler<{ id: string }>((args) => {
        const job = this.verb(args.id, 'cancel');
        job.cancelled = true;
        if (job.status === 'running' || job.status === 'created') this.finish(job, undefined);
        else if (job.status === 'pending' || job.status === 'waiting') {
          job.error = 'Operation cancelled';
          this.transition(job, 'aborting');
          this.conclude(job);
        }
      }),
    );
    table.set(
      'job-complete',
      handler<{ id: string }>((args) => {
        this.verb(args.id, 'complete');
      }),
    );
    table.set(
      'job-pause',
      handler<{ id: string }>((args) => {
        this.verb(args.id, 'pause');
      }),
    );
    table.set(
      'job-resume',
      handler<{ id: string }>((args) => {
        this.verb(args.id, 'resume');
        throw qmpError("Can't resume a job that was not paused");
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
