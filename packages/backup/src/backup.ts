/**
 * Push-mode backup of a running machine's disks into a backup directory: full or
 * incremental, all disks in one `transaction` (one instant), each to a fresh qcow2 file whose
 * backing file is the disk's previous point. The manifest gets the point only after every job
 * succeeded; on any failure the new files and nodes go away and the checkpoint chain is put
 * back (see `chain.ts`), so the previous backups and the next incremental are unaffected.
 */
import { randomBytes } from 'node:crypto';
import { chmod, open } from 'node:fs/promises';
import path from 'node:path';
import {
  type BlockJob,
  type BlockJobOutcome,
  type Machine,
  runQemuImg,
  watchBlockJobs,
} from '@qmpkit/machine';
import type { TransactionAction } from '@qmpkit/qapi';
import {
  type BackupPlan,
  checkChain,
  type Disk,
  type DiskJob,
  diskJob,
  planBackup,
  type ReportedBitmap,
  selectDisks,
} from './chain.js';
import {
  BackupChainError,
  BackupFailedError,
  type ChainProblem,
  CheckpointExistsError,
} from './errors.js';
import type { BackupHost, BackupQmp } from './host.js';
import {
  type BackupManifest,
  type BackupPoint,
  diskFile,
  ensureDir,
  FORMAT,
  pointId,
  readManifest,
  VERSION,
  writeManifest,
} from './store.js';
import {
  clearPending,
  type Debris,
  emptyDebris,
  type InterruptedBackup,
  removeNamed,
  repairInterrupted,
  tearDown,
  writePending,
} from './teardown.js';

export interface BackupOptions {
  /** The backup directory (created 0700 if missing). */
  readonly dir: string;
  /** Device ids of the disks (default: every disk; each must write to a qcow2 node). */
  readonly disks?: readonly string[];
  /** Name of the new checkpoint's bitmap (default `<prefix>-<point id>`). */
  readonly checkpoint?: string;
  /** `qemu-img` binary (default `qemu-img` on PATH). */
  readonly qemuImg?: string;
  /** Cancels the running jobs; the backup then fails with nothing changed. */
  readonly signal?: AbortSignal;
  /**
   * Push mode: let QEMU copy with `copy_file_range` (`x-perf.use-copy-range`, where the
   * schema has it). Default true; false keeps QEMU's plain read/write copy.
   */
  readonly copyOffload?: boolean;
  /**
   * Bytes per second each disk's job may copy (QEMU's job `speed`); absent: as fast as the
   * disks go. Push mode only (pull mode reads at the reader's pace).
   */
  readonly speed?: number;
  /** Called once the jobs run, e.g. to follow `job.progress()`. */
  readonly onJobs?: (jobs: readonly { readonly device: string; readonly job: BlockJob }[]) => void;
}

export interface IncrementalOptions extends BackupOptions {
  /**
   * When the chain cannot carry an incremental (a bitmap missing or inconsistent, no full
   * yet): `refuse` (default) throws `BackupChainError`; `full` takes a full backup instead
   * and says why in `repaired`.
   */
  readonly ifBroken?: 'refuse' | 'full';
}

export interface BackupResult {
  readonly point: BackupPoint;
  /** What was wrong with the chain when `ifBroken: 'full'` turned an incremental into a full. */
  readonly repaired?: readonly ChainProblem[];
  /**
   * Errors met while removing the temporary target nodes and files after the backup
   * completed (the backup itself is good; a node left behind is named `qmpkit-bk-…`).
   */
  readonly leftovers: readonly unknown[];
  /** A backup of the directory whose process died, repaired before this one started. */
  readonly interrupted?: InterruptedBackup;
}

/** A full backup of every disk; starts a new checkpoint chain. */
export function backupFull(machine: Machine, options: BackupOptions): Promise<BackupResult> {
  return runBackup(machine, options, 'full');
}

/** The writes since the last point of `options.dir`, of every disk, at one instant. */
export function backupIncremental(
  machine: Machine,
  options: IncrementalOptions,
): Promise<BackupResult> {
  return runBackup(machine, options, 'incremental');
}

async function bitmapsByNode(qmp: BackupQmp): Promise<Map<string, ReportedBitmap[]>> {
  const nodes = await qmp.execute('query-named-block-nodes', { flat: true });
  return new Map(nodes.map((n) => [n['node-name'] ?? '', n['dirty-bitmaps'] ?? []]));
}

export async function virtualSizes(qmp: BackupQmp): Promise<Map<string, number>> {
  const nodes = await qmp.execute('query-named-block-nodes', { flat: true });
  return new Map(nodes.map((n) => [n['node-name'] ?? '', n.image['virtual-size']]));
}

/** What both modes decide before touching QEMU: the chain check, point id, checkpoint. */
export interface PreparedBackup {
  readonly manifest: BackupManifest;
  readonly disks: readonly Disk[];
  readonly kind: 'full' | 'incremental';
  readonly repaired: ChainProblem[] | undefined;
  readonly id: string;
  readonly checkpoint: string;
  readonly last: BackupPoint | undefined;
  readonly since: string | undefined;
  readonly stale: ReadonlyMap<string, readonly string[]>;
  readonly interrupted: InterruptedBackup | undefined;
}

/** Reads the manifest and the disks' bitmaps; refuses (typed) what cannot be backed up. */
export async function prepareBackup(
  machine: BackupHost,
  options: IncrementalOptions,
  asked: 'full' | 'incremental',
): Promise<PreparedBackup> {
  const qmp = machine.qmp;
  await ensureDir(options.dir);
  const manifest: BackupManifest = (await readManifest(options.dir)) ?? {
    format: FORMAT,
    version: VERSION,
    prefix: `qmpkit-${randomBytes(4).toString('hex')}`,
    points: [],
  };
  const disks = selectDisks(machine.config, options.disks);
  const interrupted = await repairInterrupted(qmp, options.dir, manifest);
  const bitmaps = await bitmapsByNode(qmp);
  let kind = asked;
  let repaired: ChainProblem[] | undefined;
  if (asked === 'incremental') {
    const problems = checkChain(manifest, disks, bitmaps);
    if (problems.length > 0) {
      if (options.ifBroken !== 'full')
        throw new BackupChainError(
          problems,
          interrupted?.chain === 'dropped' ? interrupted : undefined,
        );
      kind = 'full';
      repaired = problems;
    }
  }
  const id = pointId(manifest.points.length + 1);
  const checkpoint = options.checkpoint ?? `${manifest.prefix}-${id}`;
  for (const d of disks)
    if (bitmaps.get(d.node)?.some((b) => b.name === checkpoint))
      throw new CheckpointExistsError(checkpoint, d.device, d.node);
  const last = manifest.points.at(-1);
  const since = kind === 'incremental' ? last?.checkpoint : undefined;
  // Bitmaps of this directory that a full backup leaves behind (older chains).
  const stale = new Map(
    disks.map((d) => [
      d.node,
      (bitmaps.get(d.node) ?? [])
        .map((b) => b.name ?? '')
        .filter((n) => n.startsWith(`${manifest.prefix}-`)),
    ]),
  );
  return { manifest, disks, kind, repaired, id, checkpoint, last, since, stale, interrupted };
}

export async function runBackup(
  machine: BackupHost,
  options: IncrementalOptions,
  asked: 'full' | 'incremental',
): Promise<BackupResult> {
  const qmp = machine.qmp;
  const prep = await prepareBackup(machine, options, asked);
  const { manifest, disks, kind, repaired, id, checkpoint, last, since, stale } = prep;
  const jobs = disks.map((d) => diskJob(d, id, path.join(options.dir, diskFile(d.device, id))));
  const plan = planBackup({
    jobs,
    checkpoint,
    ...(since === undefined ? {} : { since }),
    stale,
    ...(options.speed === undefined ? {} : { speed: options.speed }),
  });
  // Copy offload (`copy_file_range` from the disk's file into the target's): ~8× faster than
  // QEMU's default 64 KiB read/write loop in `pnpm bench:backup` (docs/decisions.md). QEMU
  // falls back to read/write by itself where the files cannot do it (other filesystem).
  const offload =
    options.copyOffload !== false && (await qmp.has('blockdev-backup', { member: 'x-perf' }));
  const actions: TransactionAction[] = plan.actions.map((a) =>
    a.type === 'blockdev-backup' && offload
      ? { type: a.type, data: { ...a.data, 'x-perf': { 'use-copy-range': true } } }
      : a,
  );
  const startedAt = new Date().toISOString();
  const qemuImg = options.qemuImg ?? 'qemu-img';

  const sizes = await virtualSizes(qmp);
  const planned: Debris = {
    exports: [],
    jobs: jobs.map((j) => ({ id: j.jobId })),
    nodes: jobs.flatMap((j) => [j.fileNode, j.target]),
    files: jobs.map((j) => j.file),
  };
  // Left by a run of the same point without a record (names are fixed by point and device).
  const stray = await removeNamed(qmp, planned);
  if (stray.length > 0) throw new AggregateError(stray, 'removing a stray backup target failed');
  await writePending(options.dir, { ...pendingOf(prep, 'push', startedAt), debris: planned });
  /** What exists so far: the target nodes, and files removed after a failure. */
  const made: Debris = emptyDebris();
  let started = false;
  try {
    // Aborted before anything was made: nothing to undo.
    options.signal?.throwIfAborted();
    for (const j of jobs) {
      const previous = last?.disks.find((d) => d.device === j.disk.device);
      const size = sizes.get(j.disk.node) ?? 0;
      // Created 0600 by us first: qemu-img keeps the mode of a file that exists.
      await (await open(j.file, 'wx', 0o600)).close();
      made.files.push(j.file);
      const args = ['create', '-q', '-f', 'qcow2'];
      if (kind === 'incremental' && previous !== undefined)
        args.push('-F', 'qcow2', '-b', previous.file, '-u');
      args.push(j.file, String(size));
      await runQemuImg(args, { qemuImg });
      await chmod(j.file, 0o600);
      await qmp.execute('blockdev-add', {
        driver: 'file',
        'node-name': j.fileNode,
        filename: j.file,
      });
      made.nodes.push(j.fileNode);
      // No backing opened: clusters the job does not copy stay unallocated in the file, which
      // is what makes it an incremental layer above the previous point.
      await qmp.execute('blockdev-add', {
        driver: 'qcow2',
        'node-name': j.target,
        file: j.fileNode,
        backing: null,
      });
      made.nodes.push(j.target);
    }
    options.signal?.throwIfAborted();
    const handles = await watchBlockJobs(
      { qmp },
      jobs.map((j) => ({ jobId: j.jobId, type: 'backup' as const })),
      () => qmp.execute('transaction', { actions }),
    );
    started = true;
    const outcomes = await runJobs(
      handles,
      jobs,
      options.signal,
      options.onJobs === undefined ? undefined : options.onJobs,
    );
    await transaction(qmp, plan.onSuccess);
    const leftovers = await tearDown(qmp, made, { files: false });
    const point: BackupPoint = {
      id,
      kind,
      checkpoint,
      ...(since === undefined ? {} : { since }),
      startedAt,
      completedAt: new Date().toISOString(),
      disks: jobs.map((j, i) => ({
        device: j.disk.device,
        node: j.disk.node,
        file: path.basename(j.file),
        virtualSize: sizes.get(j.disk.node) ?? 0,
        copied: outcomes[i]?.offset ?? 0,
      })),
    };
    await writeManifest(options.dir, { ...manifest, points: [...manifest.points, point] });
    await clearPending(options.dir);
    return {
      point,
      leftovers,
      ...(repaired === undefined ? {} : { repaired }),
      ...(prep.interrupted === undefined ? {} : { interrupted: prep.interrupted }),
    };
  } catch (cause) {
    const cleanupErrors: unknown[] = [];
    let chainIntact = true;
    if (started) {
      try {
        await undo(qmp, plan);
      } catch (error) {
        cleanupErrors.push(error);
        chainIntact = false;
      }
    }
    cleanupErrors.push(...(await tearDown(qmp, made)));
    // This process cleaned up what it could; what failed is in the error, not for a repair.
    await clearPending(options.dir).catch((e: unknown) => cleanupErrors.push(e));
    throw new BackupFailedError(kind, { chainIntact, cleanupErrors }, { cause });
  }
}

/** The pending record's common part (see `teardown.ts`). */
export function pendingOf(prep: PreparedBackup, mode: 'push' | 'pull', startedAt: string) {
  return {
    id: prep.id,
    kind: prep.kind,
    mode,
    checkpoint: prep.checkpoint,
    ...(prep.since === undefined ? {} : { since: prep.since }),
    nodes: prep.disks.map((d) => d.node),
    pid: process.pid,
    startedAt,
  };
}

export async function transaction(
  qmp: BackupQmp,
  actions: readonly TransactionAction[],
): Promise<void> {
  if (actions.length > 0) await qmp.execute('transaction', { actions: [...actions] });
}

/** Puts the checkpoint chain back after a failed backup whose transaction had run. */
export async function undo(qmp: BackupQmp, plan: BackupPlan): Promise<void> {
  // Merge and enable first (one transaction, so no write falls between), then drop the new.
  const restore = plan.onFailure.filter((a) => a.type !== 'block-dirty-bitmap-remove');
  const remove = plan.onFailure.filter((a) => a.type === 'block-dirty-bitmap-remove');
  await transaction(qmp, restore);
  await transaction(qmp, remove);
}

/** Waits for every job; on the first failure (or abort) cancels the others. */
async function runJobs(
  handles: readonly BlockJob[],
  jobs: readonly DiskJob[],
  signal: AbortSignal | undefined,
  onJobs: BackupOptions['onJobs'],
): Promise<BlockJobOutcome[]> {
  const cancelAll = () => {
    for (const h of handles)
      h.cancel().catch(() => {
        // Already concluded: its own wait() reports how it ended.
      });
  };
  // Armed before `onJobs` runs, and an abort that came earlier (while the targets were made,
  // or from `onJobs` itself) cancels at once: a listener added to an aborted signal never fires.
  signal?.addEventListener('abort', cancelAll, { once: true });
  try {
    onJobs?.(handles.map((job, i) => ({ device: jobs[i]?.disk.device ?? '', job })));
    if (signal?.aborted === true) cancelAll();
    const settled = await Promise.allSettled(
      handles.map((h) =>
        h.wait().catch((error: unknown) => {
          cancelAll();
          throw error;
        }),
      ),
    );
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const outcomes = settled.map((s) => (s as PromiseFulfilledResult<BlockJobOutcome>).value);
    if (signal?.aborted === true || outcomes.some((o) => o.outcome === 'cancelled'))
      throw signal?.reason ?? 'a backup job was cancelled';
    return outcomes;
  } finally {
    signal?.removeEventListener('abort', cancelAll);
  }
}
