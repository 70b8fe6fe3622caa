/**
 * The pure half of a backup: which disks, whether the checkpoint chain can carry an
 * incremental (every disk still has the last checkpoint's bitmap, recording, consistent, not
 * busy — libvirt's `qemuBlockBitmapChainIsValid` idea), and the `transaction` that starts a
 * backup and its checkpoint at one instant on all disks. No I/O: `backup.ts` runs the plan.
 *
 * Checkpoint scheme (one active bitmap per disk): checkpoint N's bitmap records the writes
 * since N. A full backup adds bitmap N and starts `sync: full` in one transaction. An
 * incremental adds bitmap N+1, *disables* bitmap N and starts `sync: bitmap` from bitmap N
 * (`bitmap-mode: never`) in one transaction, so bitmap N holds exactly the writes between the
 * two instants; bitmap N is removed only after every disk's job succeeded. On failure, bitmap
 * N+1 is merged back into N, N re-enabled and N+1 removed: the chain is as before.
 */
import { blockGraph, deviceProps, type VmConfig } from '@qmpkit/devices';
import { backupArgs, blockJobId } from '@qmpkit/machine';
import type { TransactionAction } from '@qmpkit/qapi';
import { BackupUnsupportedError, type ChainProblem } from './errors.js';
import type { BackupManifest } from './store.js';

export interface Disk {
  /** Device id. */
  readonly device: string;
  /** The node guest writes land in (the device's active layer). */
  readonly node: string;
}

/** What `query-named-block-nodes` says about one bitmap. */
export interface ReportedBitmap {
  readonly name?: string;
  readonly recording: boolean;
  readonly busy: boolean;
  readonly persistent: boolean;
  readonly inconsistent?: boolean;
}

/**
 * The disks to back up: the devices named (default: every device with a drive), each with its
 * active layer, which must be a writable qcow2 node (persistent bitmaps live in qcow2).
 */
export function selectDisks(config: VmConfig, devices?: readonly string[]): Disk[] {
  const graph = blockGraph(config);
  const reasons: string[] = [];
  const out: Disk[] = [];
  const all = (config.devices ?? []).filter((d) => typeof deviceProps(d).drive === 'string');
  const wanted = devices ?? all.map((d) => d.id ?? '');
  for (const id of wanted) {
    const device = all.find((d) => d.id === id);
    const drive = device === undefined ? undefined : deviceProps(device).drive;
    if (typeof drive !== 'string' || graph.node(drive) === undefined) {
      reasons.push(`no disk device '${id}'`);
      continue;
    }
    const node = graph.activeLayer(drive);
    const info = graph.node(node);
    if (info?.driver !== 'qcow2')
      reasons.push(
        `disk '${id}' writes to a ${info?.driver ?? 'unknown'} node '${node}', and only qcow2 keeps persistent dirty bitmaps`,
      );
    else if (info.readOnly) reasons.push(`disk '${id}' (node '${node}') is read-only`);
    else out.push({ device: id, node });
  }
  if (out.length === 0 && reasons.length === 0) reasons.push('the VM has no disk');
  if (reasons.length > 0) throw new BackupUnsupportedError(reasons);
  return out;
}

/**
 * What stands in the way of an incremental backup of `disks` on top of `manifest`'s last
 * point; empty when the chain is intact.
 */
export function checkChain(
  manifest: BackupManifest | undefined,
  disks: readonly Disk[],
  bitmaps: ReadonlyMap<string, readonly ReportedBitmap[]>,
): ChainProblem[] {
  const last = manifest?.points.at(-1);
  if (manifest === undefined || last === undefined)
    return [{ kind: 'no-full', detail: 'the backup directory holds no full backup yet' }];
  const problems: ChainProblem[] = [];
  const had = last.disks.map((d) => d.device).sort();
  const have = disks.map((d) => d.device).sort();
  if (had.join('\0') !== have.join('\0'))
    problems.push({
      kind: 'disks-changed',
      detail: `the chain is of disks [${had.join(', ')}], this backup is of [${have.join(', ')}]`,
    });
  const bitmap = last.checkpoint;
  for (const disk of disks) {
    const at = { device: disk.device, node: disk.node, bitmap };
    const found = bitmaps.get(disk.node)?.find((b) => b.name === bitmap);
    if (found === undefined)
      problems.push({
        ...at,
        kind: 'bitmap-missing',
        detail: `disk '${disk.device}' (node '${disk.node}') has no bitmap '${bitmap}' of checkpoint ${last.id}`,
      });
    else if (found.inconsistent === true)
      problems.push({
        ...at,
        kind: 'bitmap-inconsistent',
        detail: `bitmap '${bitmap}' on disk '${disk.device}' is inconsistent (the image was not closed cleanly)`,
      });
    else if (found.busy)
      problems.push({
        ...at,
        kind: 'bitmap-busy',
        detail: `bitmap '${bitmap}' on disk '${disk.device}' is in use by another operation`,
      });
    else if (!found.recording)
      problems.push({
        ...at,
        kind: 'bitmap-disabled',
        detail: `bitmap '${bitmap}' on disk '${disk.device}' does not record writes`,
      });
  }
  return problems;
}

/** One disk's part of a backup: the job, its target node and file. */
export interface DiskJob {
  readonly disk: Disk;
  readonly jobId: string;
  /** qcow2 node of the target file (added by the runner before the transaction). */
  readonly target: string;
  readonly fileNode: string;
  readonly file: string;
}

export interface BackupPlan {
  readonly kind: 'full' | 'incremental';
  readonly checkpoint: string;
  readonly since?: string;
  readonly jobs: readonly DiskJob[];
  /** The one transaction: new bitmaps, (incremental) old ones disabled, the backup jobs. */
  readonly actions: readonly TransactionAction[];
  /** Run after every job succeeded: bitmaps the chain no longer needs. */
  readonly onSuccess: readonly TransactionAction[];
  /** Run after a failure: the chain put back as it was before the transaction. */
  readonly onFailure: readonly TransactionAction[];
}

/**
 * The transaction of a backup of `jobs`' disks: `since` absent for a full backup. `stale` are
 * bitmaps of this directory still on the disks (older chains), removed after a full succeeds.
 */
export function planBackup(options: {
  readonly jobs: readonly DiskJob[];
  readonly checkpoint: string;
  readonly since?: string;
  readonly stale?: ReadonlyMap<string, readonly string[]>;
  /** Bytes per second each job may copy (QEMU's `speed`; absent: unlimited). */
  readonly speed?: number;
}): BackupPlan {
  const { jobs, checkpoint, since } = options;
  const speed = options.speed === undefined ? {} : { speed: options.speed };
  const actions: TransactionAction[] = [];
  const onSuccess: TransactionAction[] = [];
  const onFailure: TransactionAction[] = [];
  for (const j of jobs) {
    const node = j.disk.node;
    actions.push({
      type: 'block-dirty-bitmap-add',
      data: { node, name: checkpoint, persistent: true },
    });
    if (since === undefined) {
      actions.push({
        type: 'blockdev-backup',
        data: backupArgs(j.jobId, { node, target: j.target, sync: 'full', ...speed }),
      });
      for (const name of options.stale?.get(node) ?? [])
        onSuccess.push({ type: 'block-dirty-bitmap-remove', data: { node, name } });
    } else {
      // Disabled before the job takes it, in the same transaction: the bitmap then holds
      // exactly the writes between the previous checkpoint and this instant.
      actions.push({ type: 'block-dirty-bitmap-disable', data: { node, name: since } });
      actions.push({
        type: 'blockdev-backup',
        data: backupArgs(j.jobId, {
          node,
          target: j.target,
          sync: 'bitmap',
          bitmap: since,
          bitmapMode: 'never',
          ...speed,
        }),
      });
      onSuccess.push({ type: 'block-dirty-bitmap-remove', data: { node, name: since } });
      onFailure.push({
        type: 'block-dirty-bitmap-merge',
        data: { node, target: since, bitmaps: [checkpoint] },
      });
      onFailure.push({ type: 'block-dirty-bitmap-enable', data: { node, name: since } });
    }
    onFailure.push({ type: 'block-dirty-bitmap-remove', data: { node, name: checkpoint } });
  }
  return {
    kind: since === undefined ? 'full' : 'incremental',
    checkpoint,
    ...(since === undefined ? {} : { since }),
    jobs,
    actions,
    onSuccess,
    onFailure,
  };
}

/** Node names and job ids for one disk's part of a backup. */
export function diskJob(disk: Disk, pointId: string, file: string): DiskJob {
  const base = `qmpkit-bk-${pointId}-${disk.device}`;
  return {
    disk,
    jobId: blockJobId('backup'),
    target: base,
    fileNode: `${base}-file`,
    file,
  };
}
