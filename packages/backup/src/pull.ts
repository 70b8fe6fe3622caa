/**
 * Pull-mode backup: instead of QEMU writing the backup (push mode, `backup.ts`), QEMU exposes
 * each disk's content *at one instant* over NBD, and a reader outside QEMU takes what it needs.
 *
 * The point-in-time view is image fleecing: in one `transaction` with the checkpoint bitmaps,
 * a `blockdev-backup sync: none` job per disk inserts a copy-before-write filter over the disk
 * that copies old data into a temporary fleecing qcow2 (backed by the disk) before a guest
 * write overwrites it. Where the live schema has the `snapshot-access` driver, a
 * `snapshot-access` node over that filter is exported (QEMU's own view of the snapshot);
 * otherwise the fleecing node itself. Neither QEMU 7.2 nor 10.0 has `blockdev-replace`, and
 * `blockdev-reopen` cannot put a filter above a node a device is attached to, which is why
 * the backup job inserts the filter (see docs/decisions.md).
 *
 * The export (`block-export-add` type nbd, read-only, with the previous checkpoint's bitmap
 * for an incremental) listens on a unix socket in the VM's 0700 run dir, or — when asked
 * (`tcp`) — on a TCP port, loopback unless `allowRemote`, under TLS (`tls-creds-x509`) unless
 * `allowPlaintext`. Our NBD client reads
 * only the dirty extents (`qemu:dirty-bitmap:NAME`; a full backup: the allocated extents of
 * `base:allocation`) and writes them through `qemu-nbd` into a qcow2 layer whose backing file
 * is the previous point — the same backup directory format as push mode, so `restore` works.
 *
 * Everything added to QEMU is removed again in a `finally`, on success, failure and abort.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, readFileSync } from 'node:fs';
import { access, chmod, mkdir, open, readFile, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { backupArgs, blockJobId, type Machine, runQemuImg, watchBlockJobs } from '@qmpkit/machine';
import type { TransactionAction } from '@qmpkit/qapi';
import {
  type BackupResult,
  type IncrementalOptions,
  pendingOf,
  prepareBackup,
  transaction,
  undo,
  virtualSizes,
} from './backup.js';
import { type Disk, planBackup } from './chain.js';
import { BackupFailedError, PullExportError } from './errors.js';
import { NbdClient, type NbdConnectOptions, type NbdTlsOptions } from './nbd/client.js';
import { STATE_DIRTY, STATE_ZERO } from './nbd/codec.js';
import { type BackupPoint, diskFile, writeManifest } from './store.js';
import {
  clearPending,
  type Debris,
  emptyDebris,
  removeNamed,
  tearDown,
  writePending,
} from './teardown.js';

const run = promisify(execFile);

/** Where a pull backup is; `extent` phases come once per extent read. */
export type PullPhase =
  | {
      readonly phase: 'exported';
      /** The unix socket of the export (absent for a TCP export). */
      readonly socket?: string;
      /** The TCP address of the export, and whether it is under TLS. */
      readonly tcp?: { readonly host: string; readonly port: number; readonly tls: boolean };
      readonly exports: readonly string[];
    }
  | {
      readonly phase: 'extent';
      readonly device: string;
      readonly offset: number;
      readonly length: number;
      /** Bytes read from QEMU so far, all disks. */
      readonly bytesRead: number;
      /** Bytes of the extents to read, all disks (known once each disk's map was read). */
      readonly totalBytes: number;
    }
  | { readonly phase: 'tearing-down' };

/**
 * TLS for a TCP export: a directory in QEMU's `tls-creds-x509` layout (the shape live
 * migration's `tls` has). QEMU, the server, reads `ca-cert.pem`, `server-cert.pem`,
 * `server-key.pem` from `dir`; the reader (our client and `qemu-img`) reads `ca-cert.pem` and,
 * with `verifyPeer` (the default), `client-cert.pem` and `client-key.pem` from `clientDir`
 * (default `dir`). One directory with all five serves both.
 */
export interface PullTls {
  readonly dir: string;
  /** The reader's directory, when it is not `dir` (another CA, other client credentials). */
  readonly clientDir?: string;
  /** The name the reader checks the server's certificate against (default: the host). */
  readonly hostname?: string;
  /** QEMU asks for and checks the reader's client certificate (default true). */
  readonly verifyPeer?: boolean;
}

/** A TCP export instead of the unix socket. */
export interface PullTcp {
  /** Default `127.0.0.1`; anything but a loopback address needs `allowRemote`. */
  readonly host?: string;
  readonly port: number;
  readonly tls?: PullTls;
  /** Export on a host that is not loopback (reachable from other machines). */
  readonly allowRemote?: boolean;
  /** Export without TLS (anyone who reaches the port can read the disks). */
  readonly allowPlaintext?: boolean;
}

export interface PullOptions extends IncrementalOptions {
  /** NBD server socket (default `<run dir>/backup-nbd.sock`); refused if the path exists. */
  readonly socket?: string;
  /** Export on TCP instead of the unix socket (`socket` is then ignored). */
  readonly tcp?: PullTcp;
  /** `qemu-nbd` binary (default: next to `qemuImg`, else `qemu-nbd` on PATH). */
  readonly qemuNbd?: string;
  /** Called at each phase; may be async (the backup waits for it). */
  readonly onPhase?: (phase: PullPhase) => void | Promise<void>;
}

export interface PullResult extends BackupResult {
  /** Bytes the reader received from QEMU's export, per disk. */
  readonly bytesRead: Readonly<Record<string, number>>;
  /** Whether the exported node was `snapshot-access` (else the fleecing node). */
  readonly snapshotAccess: boolean;
}

/** A pull-mode full backup: same directory format as `backupFull`. */
export function pullBackupFull(machine: Machine, options: PullOptions): Promise<PullResult> {
  return pullBackup(machine, options, 'full');
}

/** A pull-mode incremental: only the extents the last checkpoint's bitmap marks are read. */
export function pullBackupIncremental(machine: Machine, options: PullOptions): Promise<PullResult> {
  return pullBackup(machine, options, 'incremental');
}

/** Names of what one disk's part of a pull backup adds to QEMU (`qkp<point>-…` nodes). */
interface PullDisk {
  readonly disk: Disk;
  readonly jobId: string;
  readonly fleece: string;
  readonly fleeceFile: string;
  readonly fleecePath: string;
  readonly filter: string;
  readonly snapshot: string;
  readonly exportId: string;
  readonly target: string;
}

function pullDisk(disk: Disk, id: string, dir: string): PullDisk {
  // Node names are at most 31 characters: the device id goes in as a short hash.
  const base = `qkp${id}-${createHash('sha256').update(disk.device).digest('hex').slice(0, 8)}`;
  return {
    disk,
    jobId: blockJobId('backup'),
    fleece: `${base}-fl`,
    fleeceFile: `${base}-ff`,
    fleecePath: path.join(dir, `.${disk.device}.${id}.fleece.qcow2`),
    filter: `${base}-cbw`,
    snapshot: `${base}-snap`,
    exportId: `qmpkit-pull-${id}-${disk.device}`,
    target: path.join(dir, diskFile(disk.device, id)),
  };
}

async function pullBackup(
  machine: Machine,
  options: PullOptions,
  asked: 'full' | 'incremental',
): Promise<PullResult> {
  const qmp = machine.qmp;
  // Refused before anything is changed, in QEMU or on disk.
  const tcp = options.tcp === undefined ? undefined : await checkTcp(options.tcp);
  const socket =
    tcp === undefined
      ? (options.socket ?? path.join(machine.runDir, 'backup-nbd.sock'))
      : undefined;
  // After the preparation: it removes the socket of a pull whose process died (its record).
  const prep = await prepareBackup(machine, options, asked);
  if (socket !== undefined && (await exists(socket)))
    throw new PullExportError('socket-exists', socket);
  const { manifest, disks, kind, repaired, id, checkpoint, last, since, stale } = prep;
  const tlsObject = tcp?.tls === undefined ? undefined : `qmpkit-pull-tls-${id}`;
  const qemuImg = options.qemuImg ?? 'qemu-img';
  const qemuNbd =
    options.qemuNbd ??
    (qemuImg.includes(path.sep) ? path.join(path.dirname(qemuImg), 'qemu-nbd') : 'qemu-nbd');
  const snapshotAccess = await qmp.has('blockdev-add', {
    member: 'driver',
    value: 'snapshot-access',
  });
  const parts = disks.map((d) => pullDisk(d, id, options.dir));
  const sizes = await virtualSizes(qmp);

  // The checkpoint transaction of push mode, with `sync: none` jobs into the fleecing nodes.
  const plan = planBackup({
    jobs: parts.map((p) => ({
      disk: p.disk,
      jobId: p.jobId,
      target: p.fleece,
      fileNode: p.fleeceFile,
      file: p.fleecePath,
    })),
    checkpoint,
    ...(since === undefined ? {} : { since }),
    stale,
  });
  const actions: TransactionAction[] = plan.actions.map((a) => {
    const part =
      a.type === 'blockdev-backup' ? parts.find((p) => p.jobId === a.data['job-id']) : undefined;
    return part === undefined
      ? a
      : {
          type: 'blockdev-backup',
          data: backupArgs(part.jobId, {
            node: part.disk.node,
            target: part.fleece,
            sync: 'none',
            filterNodeName: part.filter,
          }),
        };
  });

  const startedAt = new Date().toISOString();
  // The writer's sockets, in the VM's 0700 run dir (named by point: one pull at a time).
  const scratch = path.join(machine.runDir, `backup-pull-${id}`);
  const planned: Debris = {
    exports: parts.map((p) => p.exportId),
    jobs: parts.map((p) => ({ id: p.jobId })),
    nodes: parts.flatMap((p) => [p.fleeceFile, p.fleece, p.snapshot]),
    files: [...parts.flatMap((p) => [p.fleecePath, p.target]), scratch],
    objects: tlsObject === undefined ? [] : [tlsObject],
  };
  // Left by a run of the same point without a record (names are fixed by point and device);
  // never the socket: a path that exists was refused above and stays untouched.
  const stray = await removeNamed(qmp, planned);
  if (stray.length > 0) throw new AggregateError(stray, 'removing a stray pull export failed');
  await writePending(options.dir, {
    ...pendingOf(prep, 'pull', startedAt),
    debris: { ...planned, socket, tcp: tcp?.address },
  });
  /** What exists so far; the targets are removed only after a failure. */
  const made: Debris = emptyDebris();
  const targets: string[] = [];
  let transactionRan = false;
  const bytesRead: Record<string, number> = {};
  const copied: Record<string, number> = {};

  try {
    await mkdir(scratch, { mode: 0o700 });
    made.files.push(scratch);
    for (const p of parts) {
      const size = sizes.get(p.disk.node) ?? 0;
      await createPrivate(p.fleecePath);
      made.files.push(p.fleecePath);
      await runQemuImg(['create', '-q', '-f', 'qcow2', p.fleecePath, String(size)], { qemuImg });
      await qmp.execute('blockdev-add', {
        driver: 'file',
        'node-name': p.fleeceFile,
        filename: p.fleecePath,
      });
      made.nodes.push(p.fleeceFile);
      await qmp.execute('blockdev-add', {
        driver: 'qcow2',
        'node-name': p.fleece,
        file: p.fleeceFile,
        backing: p.disk.node,
      });
      made.nodes.push(p.fleece);
    }
    const handles = await watchBlockJobs(
      { qmp },
      parts.map((p) => ({ jobId: p.jobId, type: 'backup' as const })),
      () => qmp.execute('transaction', { actions }),
    );
    handles.forEach((handle, i) => {
      made.jobs.push({ id: parts[i]?.jobId ?? handle.id, handle });
    });
    transactionRan = true;
    if (snapshotAccess)
      for (const p of parts) {
        await qmp.execute('blockdev-add', {
          driver: 'snapshot-access',
          'node-name': p.snapshot,
          file: p.filter,
        });
        made.nodes.push(p.snapshot);
      }
    if (tcp !== undefined) await startTcpServer(qmp, tcp, tlsObject, made);
    else if (socket !== undefined) {
      await qmp.execute('nbd-server-start', { addr: { type: 'unix', data: { path: socket } } });
      made.socket = socket;
    }
    for (const p of parts) {
      await qmp.execute('block-export-add', {
        type: 'nbd',
        id: p.exportId,
        'node-name': snapshotAccess ? p.snapshot : p.fleece,
        name: p.disk.device,
        writable: false,
        ...(since === undefined ? {} : { bitmaps: [{ node: p.disk.node, name: since }] }),
      });
      made.exports.push(p.exportId);
    }
    await options.onPhase?.({
      phase: 'exported',
      ...(socket === undefined ? {} : { socket }),
      ...(tcp === undefined
        ? {}
        : { tcp: { host: tcp.host, port: tcp.port, tls: tcp.tls !== undefined } }),
      exports: [...made.exports],
    });
    const endpoint: Endpoint =
      tcp === undefined
        ? { path: socket ?? '' }
        : { tcp, ...(tlsObject === undefined ? {} : { tlsObject }) };

    const total = { read: 0, planned: 0 };
    for (const p of parts) {
      options.signal?.throwIfAborted();
      const previous = last?.disks.find((d) => d.device === p.disk.device);
      const size = sizes.get(p.disk.node) ?? 0;
      await createPrivate(p.target);
      targets.push(p.target);
      const args = ['create', '-q', '-f', 'qcow2'];
      if (kind === 'incremental' && previous !== undefined)
        args.push('-F', 'qcow2', '-b', previous.file, '-u');
      args.push(p.target, String(size));
      await runQemuImg(args, { qemuImg });
      await chmod(p.target, 0o600);
      const result = await copyExtents({
        endpoint,
        exportName: p.disk.device,
        context: since === undefined ? 'base:allocation' : `qemu:dirty-bitmap:${since}`,
        target: p.target,
        scratch,
        qemuNbd,
        qemuImg,
        device: p.disk.device,
        total,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        ...(options.onPhase === undefined ? {} : { onPhase: options.onPhase }),
      });
      bytesRead[p.disk.device] = result.bytesRead;
      copied[p.disk.device] = result.copied;
    }
    options.signal?.throwIfAborted();
    await options.onPhase?.({ phase: 'tearing-down' });
    const leftovers = await tearDown(qmp, made);
    if (leftovers.length > 0) throw new AggregateError(leftovers, 'tearing down the export failed');
    await transaction(qmp, plan.onSuccess);
    const point: BackupPoint = {
      id,
      kind,
      checkpoint,
      ...(since === undefined ? {} : { since }),
      startedAt,
      completedAt: new Date().toISOString(),
      disks: parts.map((p) => ({
        device: p.disk.device,
        node: p.disk.node,
        file: path.basename(p.target),
        virtualSize: sizes.get(p.disk.node) ?? 0,
        copied: copied[p.disk.device] ?? 0,
      })),
    };
    await writeManifest(options.dir, { ...manifest, points: [...manifest.points, point] });
    await clearPending(options.dir);
    return {
      point,
      leftovers: [],
      bytesRead,
      snapshotAccess,
      ...(repaired === undefined ? {} : { repaired }),
      ...(prep.interrupted === undefined ? {} : { interrupted: prep.interrupted }),
    };
  } catch (cause) {
    const cleanupErrors = await tearDown(qmp, made);
    let chainIntact = true;
    if (transactionRan) {
      try {
        await undo(qmp, plan);
      } catch (error) {
        cleanupErrors.push(error);
        chainIntact = false;
      }
    }
    for (const f of targets)
      await rm(f, { force: true }).catch((e: unknown) => cleanupErrors.push(e));
    // This process cleaned up what it could; what failed is in the error, not for a repair.
    await clearPending(options.dir).catch((e: unknown) => cleanupErrors.push(e));
    throw new BackupFailedError(kind, { chainIntact, cleanupErrors }, { cause });
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** Created 0600 by us first: qemu-img keeps the mode of a file that exists. */
async function createPrivate(file: string): Promise<void> {
  await (await open(file, 'wx', 0o600)).close();
}

interface CopyOptions {
  readonly endpoint: Endpoint;
  readonly exportName: string;
  readonly context: string;
  readonly target: string;
  readonly scratch: string;
  readonly qemuNbd: string;
  readonly qemuImg: string;
  readonly device: string;
  readonly total: { read: number; planned: number };
  readonly signal?: AbortSignal;
  readonly onPhase?: (phase: PullPhase) => void | Promise<void>;
}

/**
 * Reads the extents of `context` that hold data (dirty, or allocated and not zero) from the
 * VM's export and writes them at the same offsets into `target`: an incremental through our
 * NBD client into a `qemu-nbd`, a full with `qemu-img convert` (see the decision record).
 * `bytesRead` of a full is the size of the data extents the map names, which is what
 * `qemu-img convert` reads (it skips the holes too).
 */
async function copyExtents(o: CopyOptions): Promise<{ bytesRead: number; copied: number }> {
  const source = await NbdClient.connect({
    ...connectTo(o.endpoint),
    exportName: o.exportName,
    metaContexts: [o.context],
  });
  let writer: QemuNbd | undefined;
  try {
    const dirtyOnly = o.context !== 'base:allocation';
    const wanted: { offset: number; length: number }[] = [];
    for (let at = 0; at < source.size; ) {
      const extents = await source.blockStatus(o.context, at, source.size - at);
      for (const e of extents) {
        const length = Math.min(e.length, source.size - e.offset);
        const take = dirtyOnly ? (e.flags & STATE_DIRTY) !== 0 : (e.flags & STATE_ZERO) === 0;
        if (take && length > 0) {
          const prev = wanted.at(-1);
          if (prev !== undefined && prev.offset + prev.length === e.offset) prev.length += length;
          else wanted.push({ offset: e.offset, length });
        }
        at = e.offset + length;
      }
    }
    const planned = wanted.reduce((sum, e) => sum + e.length, 0);
    o.total.planned += planned;
    if (!dirtyOnly) {
      // A full backup reads every data extent: `qemu-img convert` over the export does that
      // several times faster than our client (docs/decisions.md), and skips the same holes.
      await runQemuImg(
        ['convert', '-n', '--target-is-zero', ...convertSource(o.endpoint, o.exportName)].concat([
          '-O',
          'qcow2',
          o.target,
        ]),
        { qemuImg: o.qemuImg },
      );
      o.total.read += planned;
      o.signal?.throwIfAborted();
      await o.onPhase?.({
        phase: 'extent',
        device: o.device,
        offset: 0,
        length: source.size,
        bytesRead: o.total.read,
        totalBytes: o.total.planned,
      });
      return { bytesRead: planned, copied: planned };
    }
    writer = await QemuNbd.start(o.qemuNbd, o.target, path.join(o.scratch, `${o.exportName}.sock`));
    const sink = await NbdClient.connect({ path: writer.socket, exportName: '' });
    let copied = 0;
    const pieces: { offset: number; length: number }[] = [];
    for (const e of wanted)
      for (let at = e.offset; at < e.offset + e.length; at += PIECE)
        pieces.push({ offset: at, length: Math.min(PIECE, e.offset + e.length - at) });
    const zeros = Buffer.alloc(PIECE);
    try {
      // A few requests in flight on both connections: one at a time leaves both servers idle
      // for a round trip per piece (see docs/decisions.md for the numbers).
      const worker = async () => {
        for (let piece = pieces.shift(); piece !== undefined; piece = pieces.shift()) {
          const { offset: at, length } = piece;
          o.signal?.throwIfAborted();
          const { data, received } = await source.readCounted(at, length);
          o.total.read += received;
          if (data.equals(zeros.subarray(0, length))) {
            // A full backup has no backing: zeros need not be written at all.
            if (dirtyOnly) await sink.writeZeroes(at, length);
          } else await sink.write(at, data);
          copied += length;
          o.signal?.throwIfAborted();
          await o.onPhase?.({
            phase: 'extent',
            device: o.device,
            offset: at,
            length,
            bytesRead: o.total.read,
            totalBytes: o.total.planned,
          });
        }
      };
      const results = await Promise.allSettled(Array.from({ length: IN_FLIGHT }, worker));
      const failed = results.find((r) => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      await sink.flush();
    } finally {
      await sink.close();
    }
    await writer.exited();
    writer = undefined;
    return { bytesRead: source.bytesRead, copied };
  } finally {
    await source.close().catch(() => {
      // The VM side may be gone already (QEMU killed); the caller's error says why.
    });
    await writer?.kill();
  }
}

/**
 * Requests each disk's copy keeps in flight, and their size. Measured against qemu-nbd and
 * QEMU's export (docs/decisions.md): a 4 MiB READ took ~10× as long as a 1 MiB one, so 4 in
 * flight of 4 MiB read at 40–110 MiB/s and 8 of 1 MiB at 150–530 MiB/s in the same runs.
 */
const IN_FLIGHT = 8;
const PIECE = 1024 * 1024;

/**
 * A `qemu-nbd` serving one qcow2 file on a private unix socket. `--fork` makes the start
 * deterministic: the command returns once the socket listens. Without `--persistent` it ends
 * by itself when our client disconnects.
 */
class QemuNbd {
  private constructor(
    readonly socket: string,
    readonly pid: number,
  ) {}

  static async start(binary: string, file: string, socket: string): Promise<QemuNbd> {
    const pidFile = `${socket}.pid`;
    await run(binary, [
      '--fork',
      `--pid-file=${pidFile}`,
      `--socket=${socket}`,
      '--format=qcow2',
      '--export-name=',
      file,
    ]);
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    return new QemuNbd(socket, pid);
  }

  /** Waits (bounded) until the server, its client gone, has closed the image and exited. */
  async exited(): Promise<void> {
    for (let i = 0; i < 1000 && alive(this.pid); i++) await new Promise((r) => setTimeout(r, 10));
    if (alive(this.pid)) throw new PullExportError('writer-stuck', this.socket);
  }

  async kill(): Promise<void> {
    if (alive(this.pid)) process.kill(this.pid, 'SIGKILL');
    for (let i = 0; i < 500 && alive(this.pid); i++) await new Promise((r) => setTimeout(r, 10));
  }
}

function alive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // A zombie only waits to be reaped (the forked daemon is not our child): it is gone.
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** Where the reader finds the export. */
type Endpoint =
  | { readonly path: string; readonly tcp?: undefined }
  | { readonly tcp: CheckedTcp; readonly tlsObject?: string };

/** `PullTcp` after the checks, with the TLS material the reader needs read into memory. */
interface CheckedTcp {
  readonly host: string;
  readonly port: number;
  /** `host:port` (`[v6]:port`). */
  readonly address: string;
  readonly tls?: PullTls & { readonly client: NbdTlsOptions; readonly clientDir: string };
}

const SERVER_FILES = ['ca-cert.pem', 'server-cert.pem', 'server-key.pem'] as const;
const CLIENT_FILES = ['ca-cert.pem', 'client-cert.pem', 'client-key.pem'] as const;

/** Whether `host` is a loopback address or `localhost`. */
function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/**
 * The TCP export's address and TLS checked before anything is changed: a remote host needs
 * `allowRemote`, no TLS needs `allowPlaintext`, and every file both sides need must be
 * readable (QEMU itself would only complain at the first handshake).
 */
async function checkTcp(options: PullTcp): Promise<CheckedTcp> {
  const host = options.host ?? '127.0.0.1';
  const address = `${host.includes(':') ? `[${host}]` : host}:${options.port}`;
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535)
    throw new PullExportError('server-start', address, { detail: 'the port must be 1 to 65535' });
  if (!isLoopback(host) && options.allowRemote !== true)
    throw new PullExportError('remote-host', address);
  const tls = options.tls;
  if (tls === undefined) {
    if (options.allowPlaintext !== true) throw new PullExportError('plaintext-tcp', address);
    return { host, port: options.port, address };
  }
  const dir = path.resolve(tls.dir);
  const clientDir = path.resolve(tls.clientDir ?? tls.dir);
  const verifyPeer = tls.verifyPeer ?? true;
  const needed = [
    ...SERVER_FILES.map((f) => path.join(dir, f)),
    ...(verifyPeer ? CLIENT_FILES : CLIENT_FILES.slice(0, 1)).map((f) => path.join(clientDir, f)),
  ];
  const missing: string[] = [];
  for (const file of new Set(needed))
    await access(file, constants.R_OK).catch(() => missing.push(file));
  if (missing.length > 0) throw new PullExportError('tls-files', dir, { missing });
  const read = (name: string) => readFile(path.join(clientDir, name));
  const client: NbdTlsOptions = {
    ca: await read('ca-cert.pem'),
    ...(verifyPeer
      ? { cert: await read('client-cert.pem'), key: await read('client-key.pem') }
      : {}),
    hostname: tls.hostname ?? host,
  };
  return { host, port: options.port, address, tls: { ...tls, dir, clientDir, client } };
}

/**
 * The export's TLS object (when asked), then the NBD server on TCP with it. A server QEMU
 * refuses (port in use, address not local) is a `PullExportError` (`server-start`).
 */
async function startTcpServer(
  qmp: Machine['qmp'],
  tcp: CheckedTcp,
  tlsObject: string | undefined,
  made: Debris,
): Promise<void> {
  if (tcp.tls !== undefined && tlsObject !== undefined) {
    await qmp.execute('object-add', {
      'qom-type': 'tls-creds-x509',
      id: tlsObject,
      dir: tcp.tls.dir,
      endpoint: 'server',
      'verify-peer': tcp.tls.verifyPeer ?? true,
    });
    made.objects?.push(tlsObject);
  }
  try {
    await qmp.execute('nbd-server-start', {
      addr: { type: 'inet', data: { host: tcp.host, port: String(tcp.port) } },
      ...(tlsObject === undefined ? {} : { 'tls-creds': tlsObject }),
    });
  } catch (error) {
    throw new PullExportError(
      'server-start',
      tcp.address,
      { detail: error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error) },
      { cause: error },
    );
  }
  made.tcp = tcp.address;
}

function connectTo(endpoint: Endpoint): Pick<NbdConnectOptions, 'path' | 'tcp' | 'tls'> {
  if (endpoint.tcp === undefined) return { path: endpoint.path };
  return {
    tcp: { host: endpoint.tcp.host, port: endpoint.tcp.port },
    ...(endpoint.tcp.tls === undefined ? {} : { tls: endpoint.tcp.tls.client }),
  };
}

/** A value in QEMU's `key=value,…` option syntax: a comma is doubled. */
function optionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/**
 * `qemu-img convert`'s source arguments for the export: an `nbd+unix` URI, or for TCP the
 * `nbd` driver's options with a client `tls-creds-x509` object of its own (`--object`).
 */
function convertSource(endpoint: Endpoint, exportName: string): string[] {
  if (endpoint.tcp === undefined)
    return [
      '-f',
      'raw',
      `nbd+unix:///${encodeURIComponent(exportName)}?socket=${encodeURIComponent(endpoint.path)}`,
    ];
  const { tcp } = endpoint;
  const opts = [
    'driver=nbd',
    'server.type=inet',
    `server.host=${optionValue(tcp.host)}`,
    `server.port=${tcp.port}`,
    `export=${optionValue(exportName)}`,
  ];
  const args: string[] = [];
  if (tcp.tls !== undefined) {
    const id = 'qmpkit-reader-tls';
    args.push(
      '--object',
      `tls-creds-x509,id=${id},dir=${optionValue(tcp.tls.clientDir)},endpoint=client`,
    );
    opts.push(`tls-creds=${id}`, `tls-hostname=${optionValue(tcp.tls.client.hostname)}`);
  }
  return [...args, '--image-opts', opts.join(',')];
}
