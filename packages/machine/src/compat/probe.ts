/**
 * `probeCompatibility`: will the loading binary take a state the saving binary writes for
 * this configuration? Two answers, combined:
 *
 * - the **probe** (empirical, QEMU's own verdict): the configuration is started paused on the
 *   saving binary and migrated over a private unix socket into the loading binary started
 *   with `-incoming defer`. Both run on scratch images of the same sizes and formats (sparse
 *   or fresh, never a copy or a write of the user's), chardevs on `null`, netdevs on plain
 *   `user`, file-backed RAM on anonymous RAM. `return-path` is on for both sides, so the
 *   source learns of a failed load (without it 7.2 reports `completed` while the target
 *   died). When the load fails, QEMU's stderr is the reason.
 * - the **static** vmstate diff (`diffVmstate` of both binaries' dumps), restricted to the
 *   sections of the device types this configuration instantiates (read from the running
 *   source: built-in board devices included, devices the VM does not have left out).
 *
 * Verdict: `refuse` when the probe failed (with QEMU's reason); `warn` when only the static
 * check flags sections (listed; the probe loaded them); `ok` otherwise. Dumps and verdicts are
 * cached under `<cacheDir>/compat`, keyed on each binary's version and fingerprint (the
 * executable and its firmware files, `qemuFingerprint`), the machine type and the device set
 * of the configuration, never on a path.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BlockNode, VmConfig } from '@qmpkit/devices';
import {
  defaultCacheDir,
  type QemuBinary,
  type ResolveQemuOptions,
  resolveQemuBinary,
} from '../binary.js';
import { isQemuLaunchError } from '../errors.js';
import { launch, type Machine } from '../machine.js';
import { migrateOutgoing } from '../migration.js';
import { resolveBinary } from '../proc.js';
import { runQemuImg } from '../qemu-img.js';
import { writeFileAtomic } from '../state.js';
import { diffVmstate, type VmstateProblem } from '../vmstate/compare.js';
import { dumpVmstate } from '../vmstate/dump.js';
import { parseVmstateDump, type VmstateDump } from '../vmstate/model.js';
import { CompatProbeError } from './errors.js';
import { type QemuFingerprint, qemuFingerprint } from './fingerprint.js';
import { walkMachine } from './machine-type-diff.js';

export type CompatibilityVerdict = 'ok' | 'warn' | 'refuse';

/** What the migration from the saving into the loading binary did. */
export interface CompatibilityProbe {
  /** The loading binary completed the incoming migration. */
  readonly loaded: boolean;
  /** QEMU's reason when it did not (the loading side's stderr, condensed). */
  readonly reason?: string;
  /** The loading side's whole stderr when it failed. */
  readonly stderr?: string;
  /** Milliseconds the probe took (0 when it came from the cache). */
  readonly ms: number;
  /** The verdict came from the cache; no QEMU ran. */
  readonly cached: boolean;
}

export interface CompatibilityResult {
  readonly verdict: CompatibilityVerdict;
  readonly machineType: string;
  readonly save: QemuFingerprint;
  readonly load: QemuFingerprint;
  readonly probe: CompatibilityProbe;
  /** Dump sections (device types) this configuration instantiates on the saving binary. */
  readonly sections: readonly string[];
  /** Static problems in those sections (`diffVmstate` save → load). */
  readonly staticProblems: readonly VmstateProblem[];
  /** Sections with static problems, sorted. */
  readonly flaggedSections: readonly string[];
  /** Flagged sections the probe loaded all the same (empty when it refused). */
  readonly flaggedButLoaded: readonly string[];
  /** The cache key (hex): versions, fingerprints, machine type, device set. */
  readonly key: string;
}

export interface ProbeCompatibilityOptions extends ResolveQemuOptions {
  /** The binary that saves (or is migrated from). */
  readonly save: QemuBinary | string;
  /** The binary that loads. */
  readonly load: QemuBinary | string;
  readonly config: VmConfig;
  /** Default `config.machine.type`; pass the pinned type of a VM whose config names an alias. */
  readonly machineType?: string;
  /** Use and fill the cache under `<cacheDir>/compat` (default true). */
  readonly cache?: boolean;
  /** Milliseconds for the whole probe (default 120 000); both QEMUs are ended after it. */
  readonly timeoutMs?: number;
  /** Where scratch images and run directories go (default `os.tmpdir()`); removed after. */
  readonly scratchParent?: string;
  /** `qemu-img` for scratch images of non-raw formats (default `qemu-img` on `PATH`). */
  readonly qemuImg?: string;
}

/** A binary with a file path (a bare name is looked up on `PATH`): fingerprints need the file. */
async function withFile(
  spec: QemuBinary | string,
  options: ResolveQemuOptions,
): Promise<QemuBinary> {
  const qemu = typeof spec === 'string' ? await resolveQemuBinary(spec, options) : spec;
  if (qemu.path.includes('/')) return qemu;
  const file = await resolveBinary(qemu.path, options.env ?? process.env);
  return file === undefined ? qemu : { ...qemu, path: file };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Deterministic JSON (object keys sorted), for hashing. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null)
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value) ?? 'null';
}

/**
 * What of a configuration decides the device state: CPU, RAM, SMP, defaults, machine
 * properties, devices (drivers and properties), extra arguments. Backends (image paths,
 * sockets, netdev options) are left out: they are not in the migration stream.
 */
export function deviceSet(config: VmConfig): unknown {
  return {
    cpu: config.cpu ?? null,
    memory: config.memory,
    smp: config.smp ?? null,
    nodefaults: config.nodefaults ?? true,
    machine: config.machine.props ?? {},
    devices: (config.devices ?? []).map((d) => canonical(d)).sort(),
    staticArgs: config.staticArgs ?? [],
  };
}

// ---- scratch configuration ----------------------------------------------------------------

/** The format driver whose `file` child is `nodeName` (undefined for a bare protocol node). */
function formatOver(nodes: readonly BlockNode[], nodeName: string): string | undefined {
  for (const n of nodes) {
    const file = (n as { file?: unknown }).file;
    if (file === nodeName) return n.driver;
  }
  return undefined;
}

async function scratchImage(
  original: string,
  format: string | undefined,
  target: string,
  qemuImg: string | undefined,
): Promise<void> {
  const opts = qemuImg === undefined ? {} : { qemuImg };
  if (format === undefined || format === 'raw') {
    // Same size, no data: a sparse file (the probe never runs the guest).
    const info = await stat(original);
    await writeFile(target, '');
    await truncate(target, info.size);
    return;
  }
  // -U: the user's VM may hold the image; reading its header is all this does.
  const info = await runQemuImg(['info', '-U', '--output=json', original], opts);
  const size = (JSON.parse(info.stdout) as { 'virtual-size': number })['virtual-size'];
  await runQemuImg(['create', '-q', '-f', format, target, String(size)], opts);
}

/**
 * The configuration on scratch images in `dir`, with the backends that could touch something
 * of the user's replaced (see the module comment). `side` keeps the two QEMUs' images apart.
 */
export async function scratchConfig(
  config: VmConfig,
  dir: string,
  side: string,
  qemuImg?: string,
): Promise<VmConfig> {
  const nodes = config.blockdevs ?? [];
  let n = 0;
  const blockdevs: BlockNode[] = [];
  for (const node of nodes) {
    const filename = (node as { filename?: unknown }).filename;
    if ((node.driver === 'file' || node.driver === 'host_device') && typeof filename === 'string') {
      const target = path.join(dir, `${side}-${n++}.img`);
      await scratchImage(filename, formatOver(nodes, node['node-name']), target, qemuImg);
      blockdevs.push({ ...node, driver: 'file', filename: target } as BlockNode);
    } else if ('backing' in node) {
      // Scratch images have no backing file; QEMU must not look for one.
      blockdevs.push({ ...node, backing: null } as BlockNode);
    } else blockdevs.push(node);
  }
  const { incoming: _incoming, ...rest } = config;
  return {
    ...rest,
    paused: true,
    blockdevs,
    chardevs: (config.chardevs ?? []).map((c) => ({
      id: c.id,
      backend: { type: 'null', data: {} },
    })),
    netdevs: (config.netdevs ?? []).map((d) => ({ id: d.id, type: 'user' })),
    objects: (config.objects ?? []).map((o) =>
      o['qom-type'] === 'memory-backend-file'
        ? { 'qom-type': 'memory-backend-ram', id: o.id, size: o.size }
        : o,
    ),
  };
}

// ---- the probe ----------------------------------------------------------------------------

/** QEMU's stderr condensed to its messages (program prefix and harmless module noise gone). */
export function condenseReason(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.replace(/^qemu-system-[\w-]+:\s*/, '').trim())
    .filter((l) => l !== '' && !/failed to open module|^warning:/i.test(l));
  return lines.slice(-4).join('; ');
}

interface ProbeRun {
  loaded: boolean;
  reason?: string;
  stderr?: string;
  types: string[];
}

async function runProbe(
  save: QemuBinary,
  load: QemuBinary,
  config: VmConfig,
  options: ProbeCompatibilityOptions,
  dir: string,
): Promise<ProbeRun> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const quiet = { warn: () => undefined };
  const started: Machine[] = [];
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  try {
    const common = {
      stateFile: false as const,
      runDirParent: dir,
      accel: config.accel ?? ['tcg'],
      logger: quiet,
      signal: deadline.signal,
    };
    const source = await launch(await scratchConfig(config, dir, 'save', options.qemuImg), {
      ...common,
      qemu: save,
    }).catch((error: unknown) => {
      // An invalid configuration or a missing binary is the caller's error as it stands.
      if (!isQemuLaunchError(error) || error.reason === 'not-found') throw error;
      throw new CompatProbeError('source', `QEMU ${save.version} did not start the configuration`, {
        cause: error,
      });
    });
    started.push(source);
    const types = [
      ...new Set((await walkMachine(source, { properties: false })).map((o) => o.type)),
    ];
    let target: Machine;
    try {
      target = await launch(await scratchConfig(config, dir, 'load', options.qemuImg), {
        ...common,
        qemu: load,
        incoming: true,
      });
    } catch (error) {
      // The loading binary refusing the configuration itself is QEMU's verdict too.
      if (!isQemuLaunchError(error) || error.reason === 'not-found') throw error;
      return { loaded: false, reason: condenseReason(error.stderr), stderr: error.stderr, types };
    }
    started.push(target);
    const machine = target;
    const uri = `unix:${path.join(dir, 'migrate.sock')}`;
    const caps = [
      { capability: 'events' as const, state: true },
      { capability: 'return-path' as const, state: true },
    ];
    await machine.qmp.execute('migrate-set-capabilities', { capabilities: caps });
    let off: () => void = () => undefined;
    const incoming = new Promise<boolean>((resolve) => {
      off = machine.qmp.on('MIGRATION', (e) => {
        if (e.data.status === 'completed') resolve(true);
        if (e.data.status === 'failed') resolve(false);
      });
    });
    const exited = machine.exited.then(() => false);
    await machine.qmp.execute('migrate-incoming', { uri });
    await source.qmp.execute('migrate-set-capabilities', { capabilities: caps });
    await source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 1024 ** 4 });
    const outgoing = migrateOutgoing(source, {
      uri,
      timeout: timeoutMs,
      signal: deadline.signal,
    }).then(
      () => true,
      () => false,
    );
    const aborted = once(deadline.signal, 'abort').then(() => 'timeout' as const);
    const loaded = await Promise.race([Promise.race([incoming, exited]), aborted]);
    off();
    if (loaded === 'timeout')
      throw new CompatProbeError('timeout', `no verdict within ${timeoutMs} ms`);
    await outgoing;
    if (loaded) return { loaded, types };
    // A failed load: QEMU prints why and exits (7.2 always; 10.0 by default).
    const gone = await Promise.race([
      machine.exited.then(() => true),
      once(deadline.signal, 'abort').then(() => false),
    ]);
    if (!gone) await machine.kill();
    const stderr = machine.stderr();
    return { loaded: false, reason: condenseReason(stderr), stderr, types };
  } finally {
    clearTimeout(timer);
    for (const m of started.reverse())
      if (m.status === 'running')
        // kill(): both are scratch VMs, nothing to flush.
        await m.kill();
  }
}

// ---- cache --------------------------------------------------------------------------------

interface CachedVerdict {
  readonly loaded: boolean;
  readonly reason?: string;
  readonly stderr?: string;
  readonly types: readonly string[];
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (error) {
    // A missing or torn cache entry is a miss; it is written again.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || error instanceof SyntaxError)
      return undefined;
    throw error;
  }
}

async function cachedDump(
  qemu: QemuBinary,
  fp: QemuFingerprint,
  machineType: string,
  dir: string | undefined,
): Promise<VmstateDump> {
  const file =
    dir === undefined
      ? undefined
      : path.join(dir, 'vmstate', `${fp.version}-${fp.sha256.slice(0, 32)}-${machineType}.json`);
  if (file !== undefined) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text !== undefined) return parseVmstateDump(text, file);
  }
  const { dump, text } = await dumpVmstate(qemu, machineType);
  if (file !== undefined) {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, text);
  }
  return dump;
}

/**
 * Probes whether `options.load` takes the device state `options.save` writes for
 * `options.config` (see the module comment). Never touches the configuration's images.
 * Throws `CompatProbeError` when no verdict could be reached, `QemuBinaryError` for a binary
 * that is not QEMU, `VmstateRunError` when a binary lacks the machine type.
 */
export async function probeCompatibility(
  options: ProbeCompatibilityOptions,
): Promise<CompatibilityResult> {
  const machineType = options.machineType ?? options.config.machine.type;
  const config: VmConfig = {
    ...options.config,
    machine: { ...options.config.machine, type: machineType },
  };
  const save = await withFile(options.save, options);
  const load = await withFile(options.load, options);
  const [saveFp, loadFp] = await Promise.all([qemuFingerprint(save), qemuFingerprint(load)]);
  const cacheRoot =
    options.cache === false
      ? undefined
      : path.join(options.cacheDir ?? defaultCacheDir(options.env), 'compat');
  const key = sha256(
    canonical({
      save: [saveFp.version, saveFp.sha256],
      load: [loadFp.version, loadFp.sha256],
      machineType,
      devices: deviceSet(config),
    }),
  );
  const saveDump = await cachedDump(save, saveFp, machineType, cacheRoot);
  const loadDump = await cachedDump(load, loadFp, machineType, cacheRoot);
  const verdictFile =
    cacheRoot === undefined ? undefined : path.join(cacheRoot, 'verdicts', `${key}.json`);
  const started = Date.now();
  let cached = verdictFile === undefined ? undefined : await readJson<CachedVerdict>(verdictFile);
  const fromCache = cached !== undefined;
  if (cached === undefined) {
    const dir = await mkdtemp(path.join(options.scratchParent ?? tmpdir(), 'qmpkit-probe-'));
    try {
      cached = await runProbe(save, load, config, options, dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    if (verdictFile !== undefined) {
      await mkdir(path.dirname(verdictFile), { recursive: true, mode: 0o700 });
      await writeFileAtomic(verdictFile, `${JSON.stringify(cached, null, 2)}\n`);
    }
  }
  const types = new Set(cached.types);
  const sections = [...saveDump.sections.keys()].filter((k) => types.has(k)).sort();
  const used = new Set(sections);
  const staticProblems = diffVmstate(saveDump, loadDump).problems.filter((p) =>
    used.has(p.section),
  );
  const flaggedSections = [...new Set(staticProblems.map((p) => p.section))].sort();
  const verdict: CompatibilityVerdict = !cached.loaded
    ? 'refuse'
    : flaggedSections.length > 0
      ? 'warn'
      : 'ok';
  return {
    verdict,
    machineType,
    save: saveFp,
    load: loadFp,
    probe: {
      loaded: cached.loaded,
      ...(cached.reason === undefined ? {} : { reason: cached.reason }),
      ...(cached.stderr === undefined ? {} : { stderr: cached.stderr }),
      ms: fromCache ? 0 : Date.now() - started,
      cached: fromCache,
    },
    sections,
    staticProblems,
    flaggedSections,
    flaggedButLoaded: cached.loaded ? flaggedSections : [],
    key,
  };
}
