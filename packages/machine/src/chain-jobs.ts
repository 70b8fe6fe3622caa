/**
 * Chain maintenance of one disk — `commit`, `stream`, `mirror` — planned against the model
 * (which disk, which layers; refused before anything runs when the disk or a node is unknown
 * or the chain has one layer) and run with the block-job runner on a host: a running
 * `Machine`, or the images of a stopped VM opened by `qemu-storage-daemon`
 * (`chainJobOnStoppedVm`: takes the VM's run-directory lock, runs the job on the daemon of
 * the QEMU release the VM last ran on,
 * brings the stored configuration in line with the new chain and writes the state file).
 */
import { randomBytes } from 'node:crypto';
import {
  type BlockNode,
  blockGraph,
  type ConfigParts,
  type ConfigSelection,
  deviceProps,
  plug as planPlug,
  unplug as planUnplug,
  reconcileBlockGraph,
  type VmConfig,
} from '@qmpkit/devices';
import type { Logger } from '@qmpkit/transport';
import { type BlockJob, type BlockJobHost, commit, mirror, stream } from './block-jobs.js';
import { ChainJobError } from './errors.js';
import { runQemuImg } from './qemu-img.js';
import { stateDocument, writeState } from './state.js';
import { withStoppedVm } from './stopped-vm.js';
import type { StorageDaemon } from './storage-daemon.js';

export type ChainOperation = 'commit' | 'stream' | 'mirror';

export interface ChainJobRequest {
  readonly op: ChainOperation;
  /** The disk's device id (default: the only disk). */
  readonly disk?: string;
  /**
   * commit: the top of the range merged down (default: the active layer — an active commit,
   * after which the disk uses the base).
   */
  readonly top?: string;
  /** commit: the layer receiving the data (default: the bottom); stream: where to stop. */
  readonly base?: string;
  /** mirror: a new qcow2 image (created with the disk's size) the disk moves onto. */
  readonly target?: string;
  /** Rate limit in bytes/s. */
  readonly speed?: number;
}

/** What a request means for a configuration: refused here when it cannot run. */
export interface ChainPlan {
  readonly op: ChainOperation;
  readonly disk: string;
  /** The disk's active layer. */
  readonly active: string;
  /** Its backing chain, base first (format nodes only). */
  readonly chain: readonly string[];
  /** commit: `top` and `base` (`active: true` when `top` is the active layer). */
  readonly commit?: { readonly top: string; readonly base: string; readonly active: boolean };
  readonly stream?: { readonly base: string | undefined };
  readonly mirror?: { readonly target: string };
}

/** Plans `request` against `config`, refusing (`ChainJobError`) what cannot run. */
export function planChainJob(config: VmConfig, request: ChainJobRequest): ChainPlan {
  const graph = blockGraph(config);
  const disks = (config.devices ?? []).flatMap((d) => {
    const drive = deviceProps(d).drive;
    return typeof drive === 'string' && graph.node(drive) !== undefined && d.id !== undefined
      ? [{ id: d.id, drive }]
      : [];
  });
  const names = disks.map((d) => d.id);
  let disk = disks[0];
  if (request.disk !== undefined) disk = disks.find((d) => d.id === request.disk);
  else if (disks.length > 1)
    throw new ChainJobError('ambiguous-disk', `the VM has ${disks.length} disks; name one`, {
      disks: names,
    });
  if (disk === undefined)
    throw new ChainJobError(
      'unknown-disk',
      request.disk === undefined
        ? 'the VM has no disk'
        : `no disk '${request.disk}' (disks: ${names.join(', ') || 'none'})`,
      { disks: names },
    );
  const chain = graph.chain(disk.drive);
  const active = chain.at(-1) ?? disk.drive;
  const known = (node: string | undefined, role: string) => {
    if (node !== undefined && !chain.includes(node))
      throw new ChainJobError(
        'unknown-node',
        `${role} '${node}' is not a layer of disk '${disk.id}' (chain, base first: ${chain.join(' ← ')})`,
        { disks: names, chain },
      );
  };
  known(request.top, 'top');
  known(request.base, 'base');
  const base = { op: request.op, disk: disk.id, active, chain };
  if (request.op === 'mirror') {
    if (request.target === undefined)
      throw new ChainJobError('bad-request', 'mirror needs a target image file', {
        disks: names,
        chain,
      });
    return { ...base, mirror: { target: request.target } };
  }
  if (chain.length < 2)
    throw new ChainJobError(
      'single-layer',
      `disk '${disk.id}' has a chain of one layer ('${active}'): nothing to ${request.op}`,
      { disks: names, chain },
    );
  if (request.op === 'stream') return { ...base, stream: { base: request.base } };
  const top = request.top ?? active;
  const bottom = request.base ?? (chain[0] as string);
  if (chain.indexOf(bottom) >= chain.indexOf(top))
    throw new ChainJobError(
      'bad-request',
      `commit base '${bottom}' must lie below top '${top}' (chain, base first: ${chain.join(' ← ')})`,
      { disks: names, chain },
    );
  return { ...base, commit: { top, base: bottom, active: top === active } };
}

/** A host the chain jobs run on: the runner's needs plus model edits. */
export interface ChainHost extends BlockJobHost {
  readonly config: VmConfig;
  plug(parts: ConfigParts): Promise<unknown>;
  unplug(selection: ConfigSelection): Promise<unknown>;
  syncBlockGraph(): Promise<boolean>;
  /**
   * For a host without devices (the daemon): the disk now reads from `node` (a pivot). A
   * `Machine` learns it from QEMU's `query-block` and needs no hint.
   */
  pivoted?(disk: string, node: string): void;
}

export interface ChainJobResult {
  readonly op: ChainOperation;
  readonly disk: string;
  readonly jobId: string;
  /** The disk's chain before and after, base first. */
  readonly before: readonly string[];
  readonly after: readonly string[];
  /** Nodes the job left unused, deleted from QEMU and the model. */
  readonly removed: readonly string[];
  /** The `qemu-storage-daemon` that ran the job (stopped VM only). */
  readonly daemon?: { readonly path: string; readonly version: string };
}

/** Runs a planned chain job on `host`; `onJob` sees the job (for progress) once it started. */
export async function runChainJob(
  host: ChainHost,
  plan: ChainPlan,
  options: { readonly speed?: number; readonly onJob?: (job: BlockJob) => void } = {},
): Promise<ChainJobResult> {
  const speed = options.speed === undefined ? {} : { speed: options.speed };
  let job: BlockJob;
  let pivotTo: string | undefined;
  if (plan.commit !== undefined) {
    job = await commit(host, {
      device: plan.active,
      ...(plan.commit.active ? {} : { top: plan.commit.top }),
      base: plan.commit.base,
      ...speed,
    });
    if (plan.commit.active) pivotTo = plan.commit.base;
  } else if (plan.stream !== undefined) {
    job = await stream(host, {
      node: plan.active,
      ...(plan.stream.base === undefined ? {} : { base: plan.stream.base }),
      ...speed,
    });
  } else {
    const target = plan.mirror?.target as string;
    const size = await virtualSize(host, plan.active);
    await runQemuImg(['create', '-q', '-f', 'qcow2', target, String(size)]);
    const id = mirrorNodeName();
    const blockdevs: BlockNode[] = [
      { driver: 'file', 'node-name': `${id}-file`, filename: target },
      { driver: 'qcow2', 'node-name': id, file: `${id}-file` },
    ];
    await host.plug({ blockdevs });
    job = await mirror(host, { node: plan.active, target: id, sync: 'full', ...speed });
    pivotTo = id;
  }
  options.onJob?.(job);
  if (pivotTo !== undefined) {
    await job.ready();
    await job.complete();
    host.pivoted?.(plan.disk, pivotTo);
  }
  const outcome = await job.wait({ removeDetached: true });
  const after = afterChain(host.config, plan.disk);
  return {
    op: plan.op,
    disk: plan.disk,
    jobId: outcome.jobId,
    before: plan.chain,
    after,
    removed: outcome.removed ? outcome.detached : [],
  };
}

/**
 * The new image's format node (its file node adds `-file`): unique per call and, with the
 * suffix, within QEMU's 31 characters for a node name. (It used to hold the pid and the
 * time, which made the file node 32+ characters for any pid above 99: every mirror failed.)
 */
export function mirrorNodeName(): string {
  return `qmpkit-mirror-${randomBytes(4).toString('hex')}`;
}

function afterChain(config: VmConfig, disk: string): string[] {
  const device = (config.devices ?? []).find((d) => d.id === disk);
  const drive = device === undefined ? undefined : deviceProps(device).drive;
  return typeof drive === 'string' ? blockGraph(config).chain(drive) : [];
}

async function virtualSize(host: ChainHost, node: string): Promise<number> {
  const nodes = await host.qmp.execute('query-named-block-nodes', { flat: true });
  const found = nodes.find((n) => n['node-name'] === node);
  if (found === undefined)
    throw new ChainJobError('unknown-node', `QEMU has no node '${node}'`, { disks: [], chain: [] });
  return found.image['virtual-size'];
}

/** `ChainHost` over a storage daemon holding a stopped VM's images. */
class DaemonChainHost implements ChainHost {
  config: VmConfig;
  readonly #daemon: StorageDaemon;
  readonly #pivots = new Map<string, string>();

  constructor(daemon: StorageDaemon, config: VmConfig) {
    this.#daemon = daemon;
    this.config = config;
  }

  get qmp() {
    return this.#daemon.qmp;
  }

  pivoted(disk: string, node: string): void {
    this.#pivots.set(disk, node);
  }

  async plug(parts: ConfigParts): Promise<void> {
    const { config, steps } = planPlug(this.config, parts);
    for (const step of steps) await this.#daemon.qmp.executeUnchecked(step.execute, step.arguments);
    this.config = config;
  }

  async unplug(selection: ConfigSelection): Promise<void> {
    const { config, steps } = planUnplug(this.config, selection, { cascade: false });
    for (const step of steps) await this.#daemon.qmp.executeUnchecked(step.execute, step.arguments);
    this.config = config;
  }

  async syncBlockGraph(): Promise<boolean> {
    const graph = await this.#daemon.qmp.execute('x-debug-query-block-graph');
    const byId = new Map(graph.nodes.map((n) => [n.id, n]));
    const children = new Map<string, Map<string, string>>();
    for (const n of graph.nodes)
      if (n.type === 'block-driver') children.set(n.name, new Map<string, string>());
    for (const edge of graph.edges) {
      const parent = byId.get(edge.parent);
      const child = byId.get(edge.child);
      if (parent?.type !== 'block-driver' || child?.type !== 'block-driver') continue;
      children.get(parent.name)?.set(edge.name, child.name);
    }
    const devices = new Map<string, string>();
    for (const d of this.config.devices ?? []) {
      const drive = deviceProps(d).drive;
      if (d.id !== undefined && typeof drive === 'string')
        devices.set(d.id, this.#pivots.get(d.id) ?? drive);
    }
    const { config, changed } = reconcileBlockGraph(this.config, { devices, children });
    this.config = config;
    return changed;
  }
}

/**
 * A `ChainHost` over a running storage daemon holding the images of `config` (opened with its
 * `blockdevs`): what `chainJobOnStoppedVm` runs on, for callers that manage the daemon
 * themselves. Its `config` follows the chain as jobs change it.
 */
export function storageDaemonChainHost(
  daemon: StorageDaemon,
  config: VmConfig,
): ChainHost & { readonly config: VmConfig } {
  return new DaemonChainHost(daemon, config);
}

export interface StoppedVmChainOptions {
  /** The VM's state file (`<vm-dir>/state.json`). */
  readonly stateFile: string;
  /** Its run directory, whose lock says nobody else manages the VM. */
  readonly runDir: string;
  readonly request: ChainJobRequest;
  /**
   * The storage daemon (a path, a name on `PATH` or a release in the cache). Default: the
   * daemon of the QEMU release the VM last ran on (`storageDaemonFor`); one older than that
   * QEMU is used with a warning to `logger`.
   */
  readonly qemu?: string;
  readonly cacheDir?: string;
  readonly onJob?: (job: BlockJob) => void;
  /** Told about an explicit daemon older than the VM's QEMU. */
  readonly logger?: Pick<Logger, 'warn'>;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * A chain job on the images of a stopped VM: takes its run directory's lock (a VM another
 * process manages is a `RunDirLockedError`), plans the job (refusals before anything opens
 * the images), opens the images with `qemu-storage-daemon`, runs the job, quits the daemon
 * (images flushed and closed) and only then writes the state file with the new chain.
 */
export async function chainJobOnStoppedVm(options: StoppedVmChainOptions): Promise<ChainJobResult> {
  const { qemu, ...rest } = options;
  return withStoppedVm(
    { ...rest, ...(qemu === undefined ? {} : { storageDaemon: qemu }) },
    async (state, open) => {
      const plan = planChainJob(state.config, options.request);
      const { daemon, binary } = await open();
      const host = new DaemonChainHost(daemon, state.config);
      const result = await runChainJob(host, plan, {
        ...(options.request.speed === undefined ? {} : { speed: options.request.speed }),
        ...(options.onJob === undefined ? {} : { onJob: options.onJob }),
      });
      const exit = await daemon.quit();
      if (exit.code !== 0)
        throw new ChainJobError(
          'daemon-failed',
          `qemu-storage-daemon ended with ${exit.signal ?? `exit code ${exit.code}`} after the job; the state file was not changed`,
          { disks: [plan.disk], chain: plan.chain },
        );
      await writeState(options.stateFile, stateDocument(host.config, state.launch, state.runtime));
      return { ...result, daemon: { path: binary.path, version: binary.version } };
    },
  );
}
