/**
 * Local disks for live migration (`migrate(…, { disks: 'copy' })`): the target QEMU gets fresh
 * images of the same format and virtual size, exports each over NBD (writable), and the source
 * mirrors every disk into an NBD client node of its own. The sequence and its traps
 * (`docs/decisions.md`, the migration notes):
 *
 * - `nbd-server-start` takes the legacy `{type, data}` address; `blockdev-add`'s `server` is
 *   flat; ports are strings.
 * - All mirrors start before any is waited for; RAM moves only once every mirror is `ready`.
 * - The mirrors end with `block-job-cancel` at `pre-switchover` (source stopped: the last
 *   writes are on the target, a ready mirror cancelled does not pivot, so the source keeps its
 *   original graph for a roll-back). Completing them would re-attach the source's devices to
 *   the NBD nodes.
 * - The exports go (and with them the NBD server) before the target runs the guest: a writable
 *   export on the disk node conflicts with the guest device's write permission.
 *
 * Everything this module adds to the source carries the `qmpkit-mig-` prefix, so a roll-back
 * finds its leftovers in QEMU's own lists (`query-jobs`, `query-named-block-nodes`) rather
 * than in bookkeeping that a failure may have cut short.
 */
import { access, mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import type { VmConfig } from '@qmpkit/devices';
import { deviceProps } from '@qmpkit/devices';
import { isQmpCommandError, type Logger } from '@qmpkit/transport';
import { type BlockJob, mirror } from './block-jobs.js';
import { BlockJobError, LiveMigrationError } from './errors.js';
import type { Machine } from './machine.js';
import { PhaseClock, type PhaseDeadline } from './migration-run.js';
import type { ExitInfo } from './process.js';
import { runQemuImg } from './qemu-img.js';

/** Names of jobs and nodes the disk copy adds to the source (and exports to the target). */
export const DISK_COPY_PREFIX = 'qmpkit-mig-';

/** Where the target's NBD server listens: a unix socket (default, in its run dir) or TCP. */
export type NbdTransport =
  | { readonly type: 'unix'; readonly path?: string }
  | { readonly type: 'tcp'; readonly host?: string; readonly port?: number };

/** One disk copied to the target. */
export interface CopiedDisk {
  /** The format node the guest's device uses (the same name on both sides). */
  readonly node: string;
  readonly format: 'qcow2' | 'raw';
  /** Virtual size in bytes. */
  readonly size: number;
  readonly sourceFile: string;
  readonly targetFile: string;
  /** The NBD export's name on the target. */
  readonly exportName: string;
  /** The NBD client node on the source, the mirror's target. */
  readonly clientNode: string;
  readonly jobId: string;
}

/** What the source side of a copy needs to know of a disk (a remote receiver's images are not its). */
export type MirroredDisk = Pick<CopiedDisk, 'node' | 'exportName' | 'clientNode' | 'jobId'>;

/** The names a source uses to mirror `node` into the target's export of the same name. */
export function mirroredDisk(node: string): MirroredDisk {
  return {
    node,
    exportName: node,
    clientNode: `${DISK_COPY_PREFIX}nbd-${node}`,
    jobId: `${DISK_COPY_PREFIX}mirror-${node}`,
  };
}

/** One mirror's progress (bytes copied of `len`; `len` grows while the guest writes). */
export interface DiskProgress {
  readonly node: string;
  readonly offset: number;
  readonly len: number;
  readonly ready: boolean;
}

type BlockNode = NonNullable<VmConfig['blockdevs']>[number];

function invalid(desc: string): LiveMigrationError {
  return new LiveMigrationError('invalid-options', 'starting-target', desc);
}

function nodeMap(config: VmConfig): Map<string, BlockNode> {
  return new Map((config.blockdevs ?? []).map((n) => [n['node-name'], n]));
}

function field(node: BlockNode, key: string): unknown {
  return Object.getOwnPropertyDescriptor(node, key)?.value;
}

/** The `file`-driver node below `top` (through `file` and blkdebug/… `image` links). */
function fileNodeBelow(nodes: Map<string, BlockNode>, top: string): BlockNode | undefined {
  let name: unknown = field(nodes.get(top) as BlockNode, 'file');
  for (let depth = 0; depth < 8 && typeof name === 'string'; depth++) {
    const node = nodes.get(name);
    if (node === undefined) return undefined;
    if (node.driver === 'file') return node;
    name = field(node, 'file') ?? field(node, 'image');
  }
  return undefined;
}

/** The writable format nodes the guest's devices use: the disks a copy moves. */
export function writableDisks(config: VmConfig): string[] {
  const nodes = nodeMap(config);
  const out: string[] = [];
  for (const device of config.devices ?? []) {
    const props = deviceProps(device);
    const drive = props.drive;
    if (typeof drive !== 'string' || out.includes(drive)) continue;
    const node = nodes.get(drive);
    if (node === undefined || field(node, 'read-only') === true || props.readonly === true)
      continue;
    out.push(drive);
  }
  return out;
}

/**
 * Decides which disks move and where their fresh images go: the target configuration's own
 * image paths when the caller gave one (they must differ from the source's), else the source's
 * file names inside `diskDir`. Returns the disks and the configuration to launch the target
 * with. Supports qcow2 and raw over a `file` node. A qcow2 with a backing chain is flattened:
 * the mirror (`sync: full`) reads through the whole chain, so the target's fresh image of the
 * virtual size receives every byte the guest sees; its node gets `backing: null` and the
 * chain's nodes that nothing else uses leave the target's configuration (docs/decisions.md).
 */
export async function planDiskCopy(
  source: Machine,
  targetConfig: VmConfig,
  givenConfig: boolean,
  diskDir: string | undefined,
): Promise<{ disks: CopiedDisk[]; config: VmConfig }> {
  const srcNodes = nodeMap(source.config);
  const sizes = new Map(
    (await source.qmp.execute('query-named-block-nodes', { flat: true })).map((n) => [
      n['node-name'] ?? '',
      n.image['virtual-size'],
    ]),
  );
  const disks: CopiedDisk[] = [];
  const renamed = new Map<string, string>();
  const used = new Set<string>();
  for (const node of writableDisks(source.config)) {
    const top = srcNodes.get(node) as BlockNode;
    if (top.driver !== 'qcow2' && top.driver !== 'raw')
      throw invalid(`disk ${node}: only qcow2 and raw disks can be copied (it is ${top.driver})`);
    const srcFile = fileNodeBelow(srcNodes, node);
    const sourceFile = srcFile === undefined ? undefined : field(srcFile, 'filename');
    if (typeof sourceFile !== 'string')
      throw invalid(`disk ${node}: its image is not a plain file node`);
    const size = sizes.get(node);
    if (size === undefined) throw invalid(`disk ${node}: QEMU does not report its size`);
    let targetFile: string;
    if (givenConfig) {
      const tgtNodes = nodeMap(targetConfig);
      const tgtTop = tgtNodes.get(node);
      if (tgtTop?.driver !== top.driver)
        throw invalid(`disk ${node}: the target configuration has no ${top.driver} node '${node}'`);
      const f = fileNodeBelow(tgtNodes, node);
      const name = f === undefined ? undefined : field(f, 'filename');
      if (typeof name !== 'string')
        throw invalid(`disk ${node}: the target's image is not a plain file node`);
      targetFile = path.resolve(name);
    } else {
      if (diskDir === undefined)
        throw invalid('disks: copy needs a place for the target images: give target.diskDir');
      let base = path.basename(sourceFile);
      if (used.has(base)) base = `${node}-${base}`;
      used.add(base);
      targetFile = path.join(path.resolve(diskDir), base);
      renamed.set(srcFile?.['node-name'] ?? '', targetFile);
    }
    if (targetFile === path.resolve(sourceFile))
      throw invalid(`disk ${node}: the target image would be the source's own (${sourceFile})`);
    disks.push({
      format: top.driver,
      size,
      sourceFile: path.resolve(sourceFile),
      targetFile,
      ...mirroredDisk(node),
    });
  }
  if (disks.length === 0) throw invalid('disks: copy, but the guest has no writable disk');
  const renamedConfig: VmConfig =
    renamed.size === 0
      ? targetConfig
      : {
          ...targetConfig,
          blockdevs: (targetConfig.blockdevs ?? []).map((n) => {
            const file = renamed.get(n['node-name']);
            return file === undefined ? n : ({ ...n, filename: file } as BlockNode);
          }),
        };
  return {
    disks,
    config: flattenCopied(
      renamedConfig,
      disks.map((d) => d.node),
    ),
  };
}

/**
 * The receiving side of a copy to an address (`receiveMigration`'s `disks: 'copy'`): a fresh
 * image per writable disk of `config`, of the size the caller gives per node (this host cannot
 * see the source's; the source refuses a mismatch before it writes, `checkExportSizes`), named
 * after the configuration's image file inside `diskDir`. Returns the disks and the
 * configuration to launch with (file nodes pointing at the fresh images, chains flattened).
 */
export function planReceivedDisks(
  config: VmConfig,
  sizes: Readonly<Record<string, number>>,
  diskDir: string,
): { disks: CopiedDisk[]; config: VmConfig } {
  const nodes = nodeMap(config);
  const disks: CopiedDisk[] = [];
  const renamed = new Map<string, string>();
  const used = new Set<string>();
  for (const node of writableDisks(config)) {
    const top = nodes.get(node) as BlockNode;
    if (top.driver !== 'qcow2' && top.driver !== 'raw')
      throw invalid(`disk ${node}: only qcow2 and raw disks can be copied (it is ${top.driver})`);
    const fileNode = fileNodeBelow(nodes, node);
    const named = fileNode === undefined ? undefined : field(fileNode, 'filename');
    if (fileNode === undefined || typeof named !== 'string')
      throw invalid(`disk ${node}: its image is not a plain file node`);
    const size = Object.getOwnPropertyDescriptor(sizes, node)?.value as unknown;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0)
      throw invalid(
        `disk ${node}: give its virtual size in bytes (the source's; e.g. --disk-size ${node}=64M)`,
      );
    let base = path.basename(named);
    if (used.has(base)) base = `${node}-${base}`;
    used.add(base);
    const targetFile = path.join(path.resolve(diskDir), base);
    renamed.set(fileNode['node-name'], targetFile);
    disks.push({
      format: top.driver,
      size,
      sourceFile: named,
      targetFile,
      ...mirroredDisk(node),
    });
  }
  if (disks.length === 0) throw invalid('disks: copy, but the guest has no writable disk');
  const unknown = Object.keys(sizes).filter((k) => !disks.some((d) => d.node === k));
  if (unknown.length > 0)
    throw invalid(
      `disk sizes given for ${unknown.join(', ')}, which no device uses as a writable disk`,
    );
  const renamedConfig: VmConfig = {
    ...config,
    blockdevs: (config.blockdevs ?? []).map((n) => {
      const file = renamed.get(n['node-name']);
      return file === undefined ? n : ({ ...n, filename: file } as BlockNode);
    }),
  };
  return {
    disks,
    config: flattenCopied(
      renamedConfig,
      disks.map((d) => d.node),
    ),
  };
}

/** The node names a node refers to (`file`, `backing`, `image`, `data-file` given by name). */
function children(node: BlockNode): string[] {
  const out: string[] = [];
  for (const key of ['file', 'backing', 'image', 'data-file']) {
    const v = field(node, key);
    if (typeof v === 'string') out.push(v);
  }
  return out;
}

/**
 * The target's configuration for copied disks: each copied node without its backing chain
 * (`backing: null`; its fresh image holds all the data), and the chain's nodes dropped unless
 * a device or another node still uses them.
 */
export function flattenCopied(config: VmConfig, copied: readonly string[]): VmConfig {
  const nodes = config.blockdevs ?? [];
  const byName = new Map(nodes.map((n) => [n['node-name'], n]));
  const hasChain = copied.filter((name) => {
    const b =
      byName.get(name) === undefined ? undefined : field(byName.get(name) as BlockNode, 'backing');
    return b !== undefined && b !== null;
  });
  if (hasChain.length === 0) return config;
  const flattened = nodes.map((n) =>
    hasChain.includes(n['node-name']) ? ({ ...n, backing: null } as BlockNode) : n,
  );
  // Keep what the devices reach through the flattened graph; drop the rest of the old chains.
  const wanted = new Set<string>();
  const flatByName = new Map(flattened.map((n) => [n['node-name'], n]));
  const visit = (name: string) => {
    if (wanted.has(name)) return;
    const node = flatByName.get(name);
    if (node === undefined) return;
    wanted.add(name);
    for (const c of children(node)) visit(c);
  };
  const chains = new Set<string>();
  const collect = (name: string) => {
    const node = byName.get(name);
    if (node === undefined || chains.has(name)) return;
    chains.add(name);
    for (const c of children(node)) collect(c);
  };
  for (const name of hasChain) {
    const b = field(byName.get(name) as BlockNode, 'backing');
    if (typeof b === 'string') collect(b);
  }
  for (const n of flattened) if (!chains.has(n['node-name'])) visit(n['node-name']);
  return { ...config, blockdevs: flattened.filter((n) => wanted.has(n['node-name'])) };
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/**
 * What `createTargetImages` will make, parents first: the directories that do not exist yet
 * and the image files (recorded in the state file before they are created).
 */
export async function plannedPaths(disks: readonly CopiedDisk[]): Promise<string[]> {
  const out: string[] = [];
  for (const disk of disks) {
    const missing: string[] = [];
    for (let dir = path.dirname(disk.targetFile); !(await exists(dir)); dir = path.dirname(dir))
      missing.unshift(dir);
    for (const dir of missing) if (!out.includes(dir)) out.push(dir);
    if (await exists(disk.targetFile))
      throw invalid(`disk ${disk.node}: the target image ${disk.targetFile} exists already`);
    out.push(disk.targetFile);
  }
  return out;
}

/** Creates the fresh target images (and their directories, 0700). */
export async function createTargetImages(
  disks: readonly CopiedDisk[],
  logger: Logger,
): Promise<void> {
  for (const disk of disks) {
    await mkdir(path.dirname(disk.targetFile), { recursive: true, mode: 0o700 });
    await runQemuImg(['create', '-q', '-f', disk.format, disk.targetFile, String(disk.size)], {
      logger,
    });
  }
}

/** Removes what `createTargetImages` made (files first, then the directories it created). */
export async function removeMade(made: readonly string[]): Promise<void> {
  for (const p of [...made].reverse()) await rm(p, { recursive: true, force: true });
}

/**
 * A free TCP port on `host`, the kernel's pick, released at once (NBD has no query for the port
 * of a server started on port 0; a paused post-copy target must not be asked in band).
 */
export async function freePort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** The address the source's NBD clients connect to, and a `qemu-img`-style URI per export. */
export interface NbdAddress {
  readonly server:
    | { readonly type: 'unix'; readonly path: string }
    | { readonly type: 'inet'; readonly host: string; readonly port: string };
  uri(exportName: string): string;
}

/**
 * TLS on the NBD link: the id of a `tls-creds-x509` object each side already has (the
 * migration's own: endpoint `server` on the target, `client` on the source) and the name the
 * source checks the server's certificate against.
 */
export interface NbdTls {
  readonly creds: string;
  readonly hostname?: string;
}

/** Starts the target's NBD server (with TLS: only TLS clients) and a writable export of every disk. */
export async function exportTargetDisks(
  target: Machine,
  disks: readonly CopiedDisk[],
  transport: NbdTransport,
  tls?: NbdTls,
): Promise<NbdAddress> {
  const creds = tls !== undefined ? { 'tls-creds': tls.creds } : {};
  let address: NbdAddress;
  if (transport.type === 'unix') {
    const socket = transport.path ?? path.join(target.runDir, 'nbd.sock');
    await target.qmp.execute('nbd-server-start', {
      addr: { type: 'unix', data: { path: socket } },
      ...creds,
    });
    address = {
      server: { type: 'unix', path: socket },
      uri: (name) => `nbd+unix:///${name}?socket=${socket}`,
    };
  } else {
    const host = transport.host ?? '127.0.0.1';
    let port = transport.port;
    for (let attempt = 0; ; attempt++) {
      const chosen = port ?? (await freePort(host));
      try {
        await target.qmp.execute('nbd-server-start', {
          addr: { type: 'inet', data: { host, port: String(chosen) } },
          ...creds,
        });
        port = chosen;
        break;
      } catch (error) {
        // Someone took the free port between our check and QEMU's bind: pick another.
        if (transport.port !== undefined || attempt >= 3) throw error;
      }
    }
    const bracketed = host.includes(':') ? `[${host}]` : host;
    address = {
      server: { type: 'inet', host, port: String(port) },
      uri: (name) => `nbd://${bracketed}:${port}/${name}`,
    };
  }
  for (const disk of disks)
    await target.qmp.execute('block-export-add', {
      type: 'nbd',
      id: `${DISK_COPY_PREFIX}${disk.exportName}`,
      'node-name': disk.node,
      name: disk.exportName,
      writable: true,
    });
  return address;
}

/** Adds an NBD client node per disk on the source and starts every mirror into them. */
export async function startMirrors(
  source: Machine,
  disks: readonly MirroredDisk[],
  address: NbdAddress,
  jobs: BlockJob[],
  speed: number | undefined,
  tls?: NbdTls,
): Promise<void> {
  for (const disk of disks)
    await source.qmp.execute('blockdev-add', {
      driver: 'nbd',
      'node-name': disk.clientNode,
      server: address.server,
      export: disk.exportName,
      ...(tls !== undefined ? { 'tls-creds': tls.creds } : {}),
      ...(tls?.hostname !== undefined ? { 'tls-hostname': tls.hostname } : {}),
    });
  await checkExportSizes(source, disks);
  // The host has no model to sync: the NBD nodes are not part of the VM's configuration.
  const host = { qmp: source.qmp };
  for (const disk of disks)
    jobs.push(
      await mirror(host, {
        node: disk.node,
        target: disk.clientNode,
        jobId: disk.jobId,
        ...(speed !== undefined ? { speed } : {}),
      }),
    );
}

/**
 * Refuses (`disk-size-mismatch`) when an NBD client node's size (the target's export) differs
 * from its disk's: a smaller target would fail mid-copy, a larger one would hand the guest a
 * disk of another size. Runs before any mirror starts, so nothing is written yet. A remote
 * receiver makes its images from sizes it was told, so this is where a wrong size shows.
 */
export async function checkExportSizes(
  source: Machine,
  disks: readonly MirroredDisk[],
): Promise<void> {
  const sizes = new Map(
    (await source.qmp.execute('query-named-block-nodes', { flat: true })).map((n) => [
      n['node-name'] ?? '',
      n.image['virtual-size'],
    ]),
  );
  const differences: string[] = [];
  for (const disk of disks) {
    const mine = sizes.get(disk.node);
    const theirs = sizes.get(disk.clientNode);
    if (mine !== theirs)
      differences.push(
        `disk ${disk.node}: the source's is ${mine ?? '?'} bytes, the target's export ${theirs ?? '?'} bytes`,
      );
  }
  if (differences.length > 0)
    throw new LiveMigrationError(
      'disk-size-mismatch',
      'mirroring',
      "the target's images differ in size from the source's disks (nothing was copied)",
      { differences },
    );
}

/** Every mirror's progress, from `query-block-jobs`. */
export async function mirrorProgress(
  source: Machine,
  disks: readonly MirroredDisk[],
): Promise<DiskProgress[]> {
  const jobs = await source.qmp.execute('query-block-jobs');
  return disks.map((d) => {
    const j = jobs.find((x) => x.device === d.jobId);
    return { node: d.node, offset: j?.offset ?? 0, len: j?.len ?? 0, ready: j?.ready ?? false };
  });
}

/**
 * Waits until every mirror is `ready`, reporting each mirror's progress every `interval` ms.
 * Throws `disk-copy` when a mirror fails (e.g. the NBD server went away), `source-exited`,
 * whatever `checkAbort` throws, or `timeout` past the phase's hard deadline.
 */
export async function untilMirrorsReady(options: {
  readonly source: Machine;
  readonly disks: readonly MirroredDisk[];
  readonly jobs: readonly BlockJob[];
  readonly signal: AbortSignal;
  readonly checkAbort: () => void;
  readonly interval: number;
  readonly deadline: PhaseDeadline;
  readonly logger: Logger;
  readonly onProgress: (disks: DiskProgress[], elapsedMs: number) => void;
  /** The target, when it is a QEMU of ours: its exit ends the wait too. */
  readonly target?: Machine;
}): Promise<void> {
  const { source, target, disks, jobs, signal } = options;
  const state: { ready: boolean; error: unknown; source?: ExitInfo; target?: ExitInfo } = {
    ready: false,
    error: undefined,
  };
  let wake: () => void = () => {};
  Promise.all(jobs.map((j) => j.ready())).then(
    () => {
      state.ready = true;
      wake();
    },
    (error: unknown) => {
      state.error = error;
      wake();
    },
  );
  void source.exited.then((e) => {
    state.source = e;
    wake();
  });
  void target?.exited.then((e) => {
    state.target = e;
    wake();
  });
  const onAbort = () => wake();
  signal.addEventListener('abort', onAbort);
  const clock = new PhaseClock();
  try {
    for (;;) {
      options.checkAbort();
      if (state.source !== undefined)
        throw new LiveMigrationError(
          'source-exited',
          'mirroring',
          `the source QEMU exited (${state.source.signal ?? `exit code ${state.source.code}`})`,
        );
      if (state.target !== undefined && target !== undefined)
        throw new LiveMigrationError(
          'target-exited',
          'mirroring',
          `the target QEMU exited while the disks were copied (${state.target.signal ?? `exit code ${state.target.code}`})`,
          { exitCode: state.target.code, signal: state.target.signal, stderr: target.stderr() },
        );
      if (state.error !== undefined) {
        const e = state.error;
        throw new LiveMigrationError(
          'disk-copy',
          'mirroring',
          e instanceof BlockJobError ? e.desc : e instanceof Error ? e.message : String(e),
          {},
          { cause: e },
        );
      }
      // Read before sampling: QEMU sets a job's status to ready before it emits the event, so a
      // query sent after the event was seen answers ready. Checked after the sample instead, the
      // ready event could arrive in the same read as a reply that still said not ready, and the
      // last sample reported would show a mirror that never became ready.
      const readyBeforeSample = state.ready;
      // Progress is for display: a sample the busy monitor did not answer is skipped.
      const progress = await mirrorProgress(source, disks).catch(() => undefined);
      if (progress !== undefined) options.onProgress(progress, Math.round(clock.elapsed));
      if (readyBeforeSample) return;
      clock.check('mirroring', options.deadline, options.logger, progress, 'the disk copy');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.interval);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = () => {};
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * At `pre-switchover` (the source stopped): ends every mirror with a cancel (the target holds
 * the same data; the source keeps its graph) and deletes the NBD client nodes. The target's
 * exports stay until `removeExports`.
 */
export async function endMirrors(
  source: Machine,
  disks: readonly MirroredDisk[],
  jobs: readonly BlockJob[],
): Promise<void> {
  for (const job of jobs) await job.cancel();
  for (const job of jobs) {
    const outcome = await job.wait();
    if (outcome.outcome !== 'cancelled')
      throw new LiveMigrationError(
        'disk-copy',
        'switchover',
        `mirror ${job.id} ended as '${outcome.outcome}' instead of a cancel after ready`,
      );
  }
  for (const disk of disks)
    await source.qmp.execute('blockdev-del', { 'node-name': disk.clientNode });
}

/** Deletes the target's exports (waiting for QEMU to say they are gone) and its NBD server. */
export async function removeExports(target: Machine, disks: readonly CopiedDisk[]): Promise<void> {
  const ids = new Set(disks.map((d) => `${DISK_COPY_PREFIX}${d.exportName}`));
  const gone = new Promise<void>((resolve) => {
    const off = target.qmp.on('BLOCK_EXPORT_DELETED', (e) => {
      ids.delete(e.data.id);
      if (ids.size === 0) {
        off();
        resolve();
      }
    });
  });
  for (const id of [...ids]) await target.qmp.execute('block-export-del', { id, mode: 'hard' });
  await gone;
  await target.qmp.execute('nbd-server-stop');
}

/**
 * Takes everything the disk copy added off the source, read from QEMU itself: jobs named
 * `qmpkit-mig-…` are force-cancelled and dismissed once concluded, nodes of that name deleted.
 * Bounded: gives up after `timeoutMs` and says what is left.
 */
export async function sweepSource(source: Machine, timeoutMs = 30_000): Promise<void> {
  const started = performance.now();
  const ours = async () =>
    (await source.qmp.execute('query-jobs', undefined, { timeout: 10_000 })).filter((j) =>
      j.id.startsWith(DISK_COPY_PREFIX),
    );
  const cancelled = new Set<string>();
  for (;;) {
    const jobs = await ours();
    if (jobs.length === 0) break;
    for (const job of jobs) {
      // A job may move on between the query and the command: the next round sees it again.
      try {
        if (job.status === 'concluded')
          await source.qmp.execute('job-dismiss', { id: job.id }, { timeout: 10_000 });
        else if (job.status !== 'null' && !cancelled.has(job.id)) {
          cancelled.add(job.id);
          await source.qmp.execute(
            'block-job-cancel',
            { device: job.id, force: true },
            { timeout: 10_000 },
          );
        }
      } catch (error) {
        if (!isQmpCommandError(error)) throw error;
      }
    }
    if (performance.now() - started > timeoutMs)
      throw new LiveMigrationError(
        'disk-copy',
        'rollback',
        `mirror jobs still on the source after ${timeoutMs} ms: ${jobs.map((j) => `${j.id} (${j.status})`).join(', ')}`,
      );
    await new Promise((r) => setTimeout(r, 20));
  }
  const nodes = await source.qmp.execute('query-named-block-nodes', { flat: true });
  for (const n of nodes) {
    const name = n['node-name'];
    if (name?.startsWith(DISK_COPY_PREFIX) === true)
      await source.qmp.execute('blockdev-del', { 'node-name': name });
  }
}
