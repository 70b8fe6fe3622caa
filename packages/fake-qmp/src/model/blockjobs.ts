/**
 * Block jobs on QEMU's job framework: `blockdev-mirror` (ready → `job-complete` pivots the
 * graph, cancel before and after ready), `block-commit` (inner: the chain gets shorter; active:
 * ready, then the base takes the top's place), `block-stream`, `blockdev-backup` (sync
 * full/top/none/bitmap/incremental, the bitmap busy while the job holds it), the
 * `block-job-*` verbs and `query-block-jobs`.
 *
 * Progress is deterministic: guest writes are not modelled, so a job copies what it has at once
 * (a mirror of N bytes is at N/N when it starts; a commit or stream of empty layers at 0/0),
 * and only a rate limit (`speed`) holds it back: it then waits `len / speed` seconds of the
 * fake's timers (or until `block-job-set-speed` lifts the limit) before it is ready or done.
 * Like QEMU with in-memory nodes, a job that is not held back is ready (or done) before the
 * reply to the command that started it.
 */
import { qmpError } from '../errors.js';
import { checkUsable } from './bitmaps.js';
import type { BlockGraph, BlockNode, DirtyBitmap, TransactionAction } from './block.js';
import { type HandlerTable, handler, type ModelHost } from './host.js';
import type { Job, Jobs } from './jobs.js';
import { membersOf } from './schema.js';

interface CommonArgs {
  'job-id'?: string;
  speed?: number;
  'auto-finalize'?: boolean;
  'auto-dismiss'?: boolean;
}

interface MirrorArgs extends CommonArgs {
  device: string;
  target: string;
  sync: string;
  granularity?: number;
  'copy-mode'?: string;
}

interface CommitArgs extends CommonArgs {
  device: string;
  'top-node'?: string;
  top?: string;
  'base-node'?: string;
  base?: string;
}

interface StreamArgs extends CommonArgs {
  device: string;
  'base-node'?: string;
  base?: string;
}

interface BackupArgs extends CommonArgs {
  device: string;
  target: string;
  sync: string;
  bitmap?: string;
  'bitmap-mode'?: string;
}

/** Longest delay a timer can take (`setTimeout` fires at once beyond it). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class BlockJobs {
  constructor(
    private readonly host: ModelHost,
    private readonly block: BlockGraph,
    private readonly jobs: Jobs,
  ) {}

  /** Creates the job (`created`, `running`) with its block part; nodes it holds are in use. */
  private start(
    type: 'mirror' | 'commit' | 'stream' | 'backup',
    args: CommonArgs,
    held: readonly BlockNode[],
  ): Job {
    // Without a job-id QEMU takes the device's name; a node added with blockdev-add has none.
    const job = this.jobs.create(args['job-id'] ?? '', type, {
      autoFinalize: args['auto-finalize'] ?? true,
      autoDismiss: args['auto-dismiss'] ?? true,
    });
    for (const node of held) node.users.add(job.id);
    job.block = {
      speed: args.speed ?? 0,
      ready: false,
      softCancel: false,
      clean: () => {
        for (const node of held) node.users.delete(job.id);
      },
    };
    return job;
  }

  private checkSpeed(args: CommonArgs): void {
    if (args.speed !== undefined && args.speed < 0)
      throw qmpError("Parameter 'speed' expects a non-negative value");
  }

  /**
   * Copying `len` bytes: at once without a rate limit, else after `len / speed` seconds of
   * the fake's timers; then `done` (ready, or the job's end).
   */
  private progress(
    job: Job,
    len: number,
    copied: number,
    nodes: readonly BlockNode[],
    done: () => void,
  ): void {
    const inMemory = nodes.every((n) => n.driver.startsWith('null'));
    job.total = len;
    job.current = copied;
    const block = job.block;
    if (!block || block.speed === 0 || len === 0) {
      // In-memory nodes (null-co) complete their I/O at once: QEMU's job coroutine gets this
      // far before the reply. Image files make it wait for I/O threads: after the reply.
      if (inMemory) done();
      else this.host.later(0, () => job.status === 'running' && !job.cancelled && done());
      return;
    }
    const release = () => {
      if (block.held !== release || job.cancelled) return;
      // Paused when its time came: it goes on when resumed (`Jobs.resume`).
      if (job.status !== 'running') return;
      block.held = undefined;
      done();
    };
    block.held = release;
    const ms = (len / block.speed) * 1000;
    if (ms <= MAX_TIMER_MS)
      this.host.later(ms, () => {
        block.due = true;
        release();
      });
  }

  private withDefaultHooks(job: Job, hooks: { prepare?: () => void; clean?: () => void }): void {
    const block = job.block;
    if (!block) return;
    const clean = block.clean;
    if (hooks.prepare) block.prepare = hooks.prepare;
    block.clean = () => {
      clean?.();
      hooks.clean?.();
    };
  }

  // ---- mirror ---------------------------------------------------------------------------

  private mirror(args: MirrorArgs): void {
    const source = this.block.lookupBs(args.device, args.device);
    const target = this.block.lookupBs(args.target, args.target);
    if (source === target) throw qmpError("Can't mirror node into itself");
    if (args.sync === 'incremental' || args.sync === 'bitmap')
      throw qmpError(`Sync mode '${args.sync}' not supported`);
    if (args.granularity !== undefined) {
      const g = args.granularity;
      if (g < 512 || g > 64 * 1024 * 1024)
        throw qmpError("Parameter 'granularity' expects a value in range [512B, 64MB]");
      if ((g & (g - 1)) !== 0) throw qmpError("Parameter 'granularity' expects a power of 2");
    }
    this.checkSpeed(args);
    if (this.inActiveJob(source)) throw qmpError('Need a root block node');
    const job = this.start('mirror', args, [source, target]);
    const writeBlocking = args['copy-mode'] === 'write-blocking';
    this.withDefaultHooks(job, { prepare: () => this.block.replaceNode(source, target) });
    if (source.virtualSize !== target.virtualSize) {
      // QEMU finds this in the job's first run, after the reply.
      this.host.later(0, () =>
        this.jobs.finish(job, 'Source and target image have different sizes'),
      );
      return;
    }
    this.progress(job, source.virtualSize, source.virtualSize, [source, target], () => {
      if (job.block && writeBlocking) job.block.activelySynced = true;
      this.jobs.ready(job);
    });
  }

  /** A node already under a mirror or commit (QEMU's filter sits above it). */
  private inActiveJob(node: BlockNode): boolean {
    for (const id of node.users) {
      const job = this.jobs.get(id);
      if (job && (job.type === 'mirror' || job.type === 'commit')) return true;
    }
    return false;
  }

  // ---- commit / stream ------------------------------------------------------------------

  /** The backing chain below `node` (excluding it). */
  private chainBelow(node: BlockNode): BlockNode[] {
    const out: BlockNode[] = [];
    for (let b = node.backing; b; b = b.backing) out.push(b);
    return out;
  }

  private findInChain(top: BlockNode, filename: string): BlockNode | undefined {
    return this.chainBelow(top).find((n) => n.filename === filename);
  }

  private commit(args: CommitArgs): void {
    const bs = this.block.lookupBs(args.device, args.device);
    if (bs.parents.size > 0) throw qmpError('Need a root block node');
    let top = bs;
    if (args['top-node'] !== undefined) top = this.block.lookupBs(undefined, args['top-node']);
    else if (args.top !== undefined) {
      const found = args.top === bs.filename ? bs : this.findInChain(bs, args.top);
      if (!found) throw qmpError(`Top image file ${args.top} not found`);
      top = found;
    }
    let base: BlockNode | undefined;
    if (args['base-node'] !== undefined) base = this.block.lookupBs(undefined, args['base-node']);
    else if (args.base !== undefined) {
      base = this.findInChain(top, args.base);
      if (!base) throw qmpError(`Can't find '${args.base}' in the backing chain`);
    } else base = this.chainBelow(top).at(-1);
    if (base === top) throw qmpError('cannot commit an image into itself');
    if (!base) throw qmpError('There is no backimg image');
    if (!this.chainBelow(top).includes(base))
      throw qmpError(`'${base.nodeName}' is not in this backing file chain`);
    this.checkSpeed(args);
    const finalBase = base;
    if (top === bs) {
      // Active commit: a mirror of the top into the base, ready until job-complete.
      const job = this.start('commit', args, [top, base]);
      this.withDefaultHooks(job, {
        prepare: () => {
          this.block.replaceNode(top, finalBase);
          this.setWritable(finalBase, true);
        },
      });
      this.setWritable(finalBase, true);
      this.progress(job, 0, 0, [top, base], () => this.jobs.ready(job));
      return;
    }
    const overlay = [bs, ...this.chainBelow(bs)].find((n) => n.backing === top);
    const job = this.start('commit', args, [base]);
    this.withDefaultHooks(job, {
      prepare: () => {
        if (overlay) this.block.dropIntermediate(overlay, finalBase);
      },
    });
    // An inner commit walks the whole top layer (QEMU counts its length, allocated or not).
    const len = top.virtualSize;
    this.progress(job, len, len, [top, base], () => this.jobs.finish(job, undefined));
  }

  /** A node and the children it opened itself go read-write (QEMU's reopen for a commit). */
  private setWritable(node: BlockNode, writable: boolean): void {
    node.readOnly = !writable;
    for (const { node: child } of node.children)
      if (!child.monitorOwned && child.driver === 'file') child.readOnly = !writable;
  }

  private stream(args: StreamArgs): void {
    const bs = this.block.lookupBs(args.device, args.device);
    let base: BlockNode | undefined;
    if (args['base-node'] !== undefined) {
      base = this.block.lookupBs(undefined, args['base-node']);
      if (!this.chainBelow(bs).includes(base))
        throw qmpError(`Node '${base.nodeName}' is not a backing image of '${bs.nodeName}'`);
    } else if (args.base !== undefined) {
      base = this.findInChain(bs, args.base);
      if (!base) throw qmpError(`Can't find '${args.base}' in the backing chain`);
    }
    this.checkSpeed(args);
    const job = this.start('stream', args, []);
    const finalBase = base;
    this.withDefaultHooks(job, { prepare: () => this.block.dropIntermediate(bs, finalBase) });
    // With a layer to pull QEMU walks the whole device; with none it ends at once (0/0).
    const len = bs.backing && bs.backing !== base ? bs.virtualSize : 0;
    this.progress(job, len, len, [bs], () => this.jobs.finish(job, undefined));
  }

  // ---- backup ---------------------------------------------------------------------------

  /** Checks and starts a backup; returns the job's start (run at commit in a transaction). */
  private prepareBackup(args: BackupArgs): () => void {
    const source = this.block.lookupBs(args.device, args.device);
    const target = this.block.lookupBs(args.target, args.target);
    let sync = args.sync;
    let mode = args['bitmap-mode'];
    let bitmap: DirtyBitmap | undefined;
    if (args.bitmap !== undefined) {
      bitmap = source.bitmaps.find((b) => b.name === args.bitmap);
      if (!bitmap) throw qmpError(`Bitmap '${args.bitmap}' could not be found`);
      if (sync === 'incremental') {
        if (mode !== undefined && mode !== 'on-success')
          throw qmpError(
            "Bitmap sync mode must be 'on-success' when using sync mode 'incremental'",
          );
        mode = 'on-success';
        sync = 'bitmap';
      }
      if (mode === undefined)
        throw qmpError('Bitmap sync mode must be given when providing a bitmap');
      checkUsable(bitmap);
    } else if (mode !== undefined)
      throw qmpError('Cannot specify bitmap sync mode without a bitmap');
    if ((sync === 'bitmap' || sync === 'incremental') && !bitmap)
      throw qmpError(`must provide a valid bitmap name for '${sync}' sync mode`);
    if (source === target) throw qmpError('Source and target cannot be the same');
    this.checkSpeed(args);
    for (const id of target.users) {
      const other = this.jobs.get(id);
      if (other?.block)
        throw qmpError(
          `Node '${target.nodeName}' is busy: block device is in use by block job: ${other.type}`,
        );
    }
    if (source.virtualSize !== target.virtualSize)
      throw qmpError('Source and target image have different sizes');
    return () => this.startBackup(args, source, target, sync, mode, bitmap);
  }

  private startBackup(
    args: BackupArgs,
    source: BlockNode,
    target: BlockNode,
    sync: string,
    mode: string | undefined,
    bitmap: DirtyBitmap | undefined,
  ): void {
    const job = this.start('backup', args, [target]);
    if (bitmap) bitmap.busy = true;
    let succeeded = false;
    this.withDefaultHooks(job, {
      prepare: () => {
        succeeded = true;
      },
      clean: () => {
        if (!bitmap) return;
        bitmap.busy = false;
        // on-success: the bitmap now starts from this backup; always: also after a failure.
        if (mode === 'always' || (mode === 'on-success' && succeeded)) bitmap.count = 0;
      },
    });
    // The job drains its nodes once as it starts (QEMU: paused, running).
    this.jobs.transition(job, 'paused');
    this.jobs.transition(job, 'running');
    if (sync === 'none') {
      // Fleecing: copies only what the guest overwrites, until cancelled.
      job.total = source.virtualSize;
      return;
    }
    const len =
      sync === 'full'
        ? source.virtualSize
        : sync === 'bitmap'
          ? Math.min(source.virtualSize, (bitmap?.count ?? 0) * (bitmap?.granularity ?? 0))
          : 0; // top: nothing allocated in the top layer (guest writes are not modelled)
    this.progress(job, len, len, [source, target], () => this.jobs.finish(job, undefined));
  }

  // ---- verbs and queries ----------------------------------------------------------------

  private info(job: Job): Record<string, unknown> {
    const block = job.block;
    const mirrorMembers = membersOf(this.host.tables, 'BlockJobInfoMirror');
    return {
      type: job.type,
      device: job.id,
      len: job.total,
      offset: job.current,
      busy: false,
      paused: block?.resumeTo !== undefined,
      speed: block?.speed ?? 0,
      'io-status': 'ok',
      ready: block?.ready === true,
      status: job.status,
      'auto-finalize': job.autoFinalize,
      'auto-dismiss': job.autoDismiss,
      ...(job.error !== undefined ? { error: job.error } : {}),
      ...(job.type === 'mirror' && mirrorMembers.has('actively-synced')
        ? { 'actively-synced': block?.activelySynced === true }
        : {}),
    };
  }

  private setSpeed(job: Job, speed: number): void {
    if (speed < 0) throw qmpError("Parameter 'speed' expects a non-negative value");
    const block = job.block;
    if (!block) return;
    block.speed = speed;
    // The rate limit lifted: what was held back is done now.
    if (speed === 0) {
      block.due = true;
      block.held?.();
    }
  }

  handlers(table: HandlerTable): void {
    table.set(
      'blockdev-mirror',
      handler<MirrorArgs>((args) => this.mirror(args)),
    );
    table.set(
      'block-commit',
      handler<CommitArgs>((args) => this.commit(args)),
    );
    table.set(
      'block-stream',
      handler<StreamArgs>((args) => this.stream(args)),
    );
    table.set(
      'blockdev-backup',
      handler<BackupArgs>((args) => {
        this.prepareBackup(args)();
      }),
    );
    this.block.addAction<BackupArgs>('blockdev-backup', (data): TransactionAction => {
      // Jobs start when the whole transaction holds (QEMU: in the commit phase).
      const start = this.prepareBackup(data);
      return { commit: start, abort: () => {} };
    });
    table.set('query-block-jobs', () =>
      this.jobs
        .all()
        .filter((j) => j.block)
        .map((j) => this.info(j)),
    );
    table.set(
      'block-job-set-speed',
      handler<{ device: string; speed: number }>((args) => {
        this.setSpeed(this.jobs.verb(args.device, 'set-speed', true), args.speed);
      }),
    );
    table.set(
      'block-job-cancel',
      handler<{ device: string; force?: boolean }>((args) => {
        this.jobs.cancel(this.jobs.verb(args.device, 'cancel', true), args.force === true);
      }),
    );
    table.set(
      'block-job-complete',
      handler<{ device: string }>((args) => {
        this.jobs.complete(this.jobs.verb(args.device, 'complete', true));
      }),
    );
    table.set(
      'block-job-pause',
      handler<{ device: string }>((args) => {
        this.jobs.pause(this.jobs.verb(args.device, 'pause', true));
      }),
    );
    table.set(
      'block-job-resume',
      handler<{ device: string }>((args) => {
        this.jobs.resume(this.jobs.verb(args.device, 'resume', true));
      }),
    );
    table.set(
      'block-job-finalize',
      handler<{ id: string }>((args) => {
        this.jobs.finalize(this.jobs.verb(args.id, 'finalize', true));
      }),
    );
    table.set(
      'block-job-dismiss',
      handler<{ id: string }>((args) => {
        this.jobs.dismiss(this.jobs.verb(args.id, 'dismiss', true));
      }),
    );
  }
}
