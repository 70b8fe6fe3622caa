/**
 * What a backup adds to QEMU and to disk, and how it goes away again — one tear-down for push
 * mode (`backup.ts`), pull mode (`pull.ts`) and the repair of a backup whose process died.
 *
 * Before a backup changes anything it writes `.backup-pending.json` into the backup directory:
 * the point id, kind, checkpoint and every name it will add (exports, NBD socket or TCP server,
 * TLS object, jobs, nodes, files). The record goes once the backup ended — succeeded, or failed and cleaned up by the
 * process itself. A record that is still there when the next backup of the directory starts
 * means that process died in the middle (libvirt keeps its job state in the status XML for
 * the same reason), and `repairInterrupted` removes what it names and puts the checkpoint
 * chain back as far as the bitmaps QEMU now reports allow.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { type BlockJob, writeFileAtomic } from '@qmpkit/machine';
import type { ReportedBitmap } from './chain.js';
import type { BackupQmp } from './host.js';
import type { BackupManifest } from './store.js';

/** Everything a backup added: removed in this order (exports before the server, etc.). */
export interface Debris {
  readonly exports: string[];
  /** The NBD server's socket, when this backup started the server on a unix socket. */
  socket?: string | undefined;
  /** The NBD server's `host:port`, when this backup started the server on TCP. */
  tcp?: string | undefined;
  /**
   * QOM objects (the export's `tls-creds-x509`), removed after the server that uses them.
   * Optional: records written before TCP exports existed do not have it.
   */
  readonly objects?: string[];
  readonly jobs: { readonly id: string; readonly handle?: BlockJob }[];
  /** Block nodes, in the order they were added (deleted in reverse). */
  readonly nodes: string[];
  /** Files and directories (removed recursively). */
  readonly files: string[];
}

export function emptyDebris(): Debris {
  return { exports: [], jobs: [], nodes: [], files: [], objects: [] };
}

/**
 * Removes what `debris` names and empties it; returns the errors instead of throwing, so one
 * step that fails does not keep the others from running.
 */
export async function tearDown(
  qmp: BackupQmp,
  debris: Debris,
  options: { readonly files: boolean } = { files: true },
): Promise<unknown[]> {
  const errors: unknown[] = [];
  const step = async (what: () => Promise<unknown>) => {
    try {
      await what();
    } catch (error) {
      errors.push(error);
    }
  };
  for (const e of debris.exports.splice(0)) await step(() => deleteExport(qmp, e));
  const socket = debris.socket;
  const tcp = debris.tcp;
  debris.socket = undefined;
  debris.tcp = undefined;
  if (socket !== undefined || tcp !== undefined) await step(() => qmp.execute('nbd-server-stop'));
  if (socket !== undefined) await step(() => rm(socket, { force: true }));
  // Only once the server that holds them is gone: QEMU refuses to delete an object in use.
  for (const o of debris.objects?.splice(0) ?? [])
    await step(() => qmp.execute('object-del', { id: o }));
  for (const j of debris.jobs.splice(0))
    await step(async () => {
      if (j.handle === undefined) return endJob(qmp, j.id);
      await j.handle.cancel().catch(() => {
        // Concluded already: wait() below reads how it ended and dismisses it.
      });
      await j.handle.wait();
    });
  for (const n of debris.nodes.splice(0).reverse())
    await step(() => qmp.execute('blockdev-del', { 'node-name': n }));
  const files = debris.files.splice(0);
  if (options.files)
    for (const f of files) await step(() => rm(f, { recursive: true, force: true }));
  return errors;
}

/** Deletes an export and waits until QEMU has let go of it (clients may still be closing). */
export async function deleteExport(qmp: BackupQmp, id: string): Promise<void> {
  let off = () => {};
  const gone = new Promise<void>((resolve) => {
    off = qmp.on('BLOCK_EXPORT_DELETED', (event) => {
      if (event.data.id === id) resolve();
    });
  });
  try {
    await qmp.execute('block-export-del', { id });
    const listed = (await qmp.execute('query-block-exports')).some((e) => e.id === id);
    if (listed) await gone;
  } finally {
    off();
  }
}

/** Cancels a job we only know by id (its handle died with its process), then dismisses it. */
async function endJob(qmp: BackupQmp, id: string): Promise<void> {
  let off = () => {};
  const concluded = new Promise<void>((resolve) => {
    off = qmp.on('JOB_STATUS_CHANGE', (event) => {
      if (event.data.id === id && event.data.status === 'concluded') resolve();
    });
  });
  try {
    const job = (await qmp.execute('query-jobs')).find((j) => j.id === id);
    if (job === undefined || job.status === 'null') return;
    if (job.status !== 'concluded') {
      await qmp.execute('job-cancel', { id });
      const now = (await qmp.execute('query-jobs')).find((j) => j.id === id);
      if (now !== undefined && now.status !== 'concluded') await concluded;
    }
    await qmp.execute('job-dismiss', { id });
  } finally {
    off();
  }
}

/**
 * Removes those of `named` that exist: the nodes and exports this QEMU has (after a relaunch
 * they are gone), jobs by id, files. Also what a backup of the same point id left without a
 * record (the names are fixed by point id and device).
 */
export async function removeNamed(qmp: BackupQmp, named: Debris): Promise<unknown[]> {
  const nodes = new Set(
    (await qmp.execute('query-named-block-nodes', { flat: true })).map((n) => n['node-name']),
  );
  const listed = new Set((await qmp.execute('query-block-exports')).map((e) => e.id));
  const objects = named.objects ?? [];
  const present =
    objects.length === 0
      ? new Set<string>()
      : new Set((await qmp.execute('qom-list', { path: '/objects' })).map((o) => o.name));
  const debris: Debris = {
    exports: named.exports.filter((e) => listed.has(e)),
    socket: named.socket,
    tcp: named.tcp,
    objects: objects.filter((o) => present.has(o)),
    jobs: named.jobs.map((j) => ({ id: j.id })),
    nodes: named.nodes.filter((n) => nodes.has(n)),
    files: [...named.files],
  };
  // Its NBD server can only still run in the QEMU it ran in (its nodes are still there; the
  // fleecing nodes go only after the server stopped). Otherwise only the socket file is left.
  if ((debris.socket !== undefined || debris.tcp !== undefined) && debris.nodes.length === 0) {
    if (debris.socket !== undefined) await rm(debris.socket, { force: true });
    debris.socket = undefined;
    debris.tcp = undefined;
  }
  return tearDown(qmp, debris);
}

/** The record of a backup in progress (see the module comment). */
export interface PendingBackup {
  readonly id: string;
  readonly kind: 'full' | 'incremental';
  readonly mode: 'push' | 'pull';
  readonly checkpoint: string;
  readonly since?: string;
  /** The disks' nodes that carry the checkpoint bitmaps. */
  readonly nodes: readonly string[];
  readonly pid: number;
  readonly startedAt: string;
  readonly debris: Debris;
}

const PENDING = '.backup-pending.json';

export async function writePending(dir: string, pending: PendingBackup): Promise<void> {
  await writeFileAtomic(path.join(dir, PENDING), `${JSON.stringify(pending, jobIds, 2)}\n`);
}

/** Job handles are not data: the record keeps their ids. */
function jobIds(key: string, value: unknown): unknown {
  if (key === 'jobs' && Array.isArray(value))
    return value.map((j: { id: string }) => ({ id: j.id }));
  return value;
}

export async function clearPending(dir: string): Promise<void> {
  await rm(path.join(dir, PENDING), { force: true });
}

async function readPending(dir: string): Promise<PendingBackup | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, PENDING), 'utf8');
  } catch {
    return undefined;
  }
  return JSON.parse(text) as PendingBackup;
}

/** What `repairInterrupted` found and did. */
export interface InterruptedBackup {
  /** The point id, kind and mode of the backup whose process died, and that process. */
  readonly id: string;
  readonly kind: 'full' | 'incremental';
  readonly mode: 'push' | 'pull';
  readonly pid: number;
  /**
   * `merged`: its checkpoint's bitmaps were merged back into the previous checkpoint's,
   * which records again, so the next incremental holds every write since the last point.
   * `dropped`: its bitmaps were removed, and the previous checkpoint's bitmaps are as QEMU
   * reports them (after QEMU itself was killed: inconsistent, so a full backup is needed).
   * `untouched`: it was a full backup, whose checkpoint was removed; the chain before it
   * is as it was.
   */
  readonly chain: 'merged' | 'dropped' | 'untouched';
  /** Errors met while removing what it left (each step is tried). */
  readonly leftovers: readonly unknown[];
}

/**
 * Repairs after a backup of `dir` whose process died (a pending record, and no such point in
 * the manifest): removes its exports, NBD server, jobs, nodes and files, and puts the
 * checkpoint chain back where the bitmaps allow it (`InterruptedBackup.chain`).
 */
export async function repairInterrupted(
  qmp: BackupQmp,
  dir: string,
  manifest: BackupManifest,
): Promise<InterruptedBackup | undefined> {
  const pending = await readPending(dir);
  if (pending === undefined) return undefined;
  if (manifest.points.some((p) => p.id === pending.id && p.checkpoint === pending.checkpoint)) {
    // It died after writing the manifest: the point is complete, only the record is left.
    await clearPending(dir);
    return undefined;
  }
  const leftovers = await removeNamed(qmp, pending.debris);

  const bitmaps = new Map(
    (await qmp.execute('query-named-block-nodes', { flat: true })).map((n) => [
      n['node-name'] ?? '',
      (n['dirty-bitmaps'] ?? []) as readonly ReportedBitmap[],
    ]),
  );
  const usable = (node: string, name: string | undefined) => {
    const b = bitmaps.get(node)?.find((x) => x.name === name);
    return b !== undefined && b.inconsistent !== true && !b.busy;
  };
  const merge = pending.nodes.every(
    (node) =>
      usable(node, pending.checkpoint) &&
      (pending.since === undefined || usable(node, pending.since)),
  );
  const actions = [];
  if (merge && pending.since !== undefined) {
    const since = pending.since;
    for (const node of pending.nodes) {
      actions.push({
        type: 'block-dirty-bitmap-merge' as const,
        data: { node, target: since, bitmaps: [pending.checkpoint] },
      });
      actions.push({ type: 'block-dirty-bitmap-enable' as const, data: { node, name: since } });
    }
  }
  try {
    // In one transaction, so no write falls between the merge and the enable.
    if (actions.length > 0) await qmp.execute('transaction', { actions });
    for (const node of pending.nodes)
      if (bitmaps.get(node)?.some((b) => b.name === pending.checkpoint))
        await qmp.execute('block-dirty-bitmap-remove', { node, name: pending.checkpoint });
  } catch (error) {
    leftovers.push(error);
  }
  await clearPending(dir);
  return {
    id: pending.id,
    kind: pending.kind,
    mode: pending.mode,
    pid: pending.pid,
    chain: pending.since === undefined ? 'untouched' : merge ? 'merged' : 'dropped',
    leftovers,
  };
}
