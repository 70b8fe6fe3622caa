/**
 * `chooseStrategy`: probes what the VM and QEMU allow and picks a strategy, with reasons.
 */
import { blockGraph } from '@qmpkit/devices';
import type { Machine } from '@qmpkit/machine';
import { SnapshotUnsupportedError } from './errors.js';
import type { StrategyKind } from './types.js';

export interface StrategyProbes {
  /** `snapshot-save` exists (QEMU ≥ 6.0). */
  readonly snapshotSave: boolean;
  /** `query-migrate` `blocked-reasons`: they block savevm and migration alike. */
  readonly migrationBlockers: readonly string[];
  /** Writable qcow2 nodes an internal snapshot covers. */
  readonly snapshottableNodes: readonly string[];
  /** Writable nodes savevm considers but cannot snapshot (raw disks, a raw OVMF varstore). */
  readonly savevmBlockers: readonly string[];
  /** The node behind pflash1 when it is a writable raw varstore. */
  readonly rawVarstore: string | undefined;
  /** Active layers an external snapshot puts overlays on. */
  readonly writableLayers: readonly string[];
  /** Memory backend objects with `share: true` (another process can change guest RAM). */
  readonly sharedMemoryBackends: readonly string[];
  /** The `x-ignore-shared` migration capability is on: shared RAM is left out of snapshots. */
  readonly ignoreShared: boolean;
  /** The `background-snapshot` capability can be enabled (userfaultfd write-protect works). */
  readonly backgroundSnapshot: boolean;
}

export interface StrategyCandidate {
  readonly kind: StrategyKind;
  readonly feasible: boolean;
  readonly reasons: readonly string[];
}

export interface StrategyChoice {
  readonly kind: StrategyKind;
  /** One line per strategy: chosen / possible / not possible, and why. */
  readonly explanation: string;
  readonly candidates: readonly StrategyCandidate[];
  readonly probes: StrategyProbes;
}

export interface ChooseOptions {
  /** Take this one when it is feasible (default order: external, internal-jobs, internal-hmp). */
  readonly prefer?: StrategyKind;
  /** Live saves are wanted: only the external strategy with background-snapshot has them. */
  readonly live?: boolean;
}

async function probe(machine: Machine): Promise<StrategyProbes> {
  const config = machine.config;
  const graph = blockGraph(config);
  const pflash1 = graph.pflash('pflash1');
  const rawVarstore =
    pflash1 !== undefined && graph.classify(pflash1).class === 'writable-unsnapshottable'
      ? pflash1
      : undefined;
  const shared = (config.objects ?? [])
    .filter(
      (o) => String(o['qom-type']).startsWith('memory-backend') && 'share' in o && o.share === true,
    )
    .map((o) => o.id);
  let snapshotSave = machine.qemuVersion.major >= 6;
  let migrationBlockers: string[] = [];
  let ignoreShared = false;
  let backgroundSnapshot = false;
  if (machine.status === 'running') {
    const qmp = machine.qmp;
    snapshotSave = await qmp.has('snapshot-save');
    migrationBlockers = (await qmp.execute('query-migrate'))['blocked-reasons'] ?? [];
    const caps = await qmp.execute('query-migrate-capabilities');
    ignoreShared = caps.some((c) => c.capability === 'x-ignore-shared' && c.state);
    const bg = caps.find((c) => c.capability === 'background-snapshot');
    if (bg !== undefined) {
      // QEMU checks userfaultfd write-protect support when the capability is set.
      backgroundSnapshot = await qmp
        .execute('migrate-set-capabilities', {
          capabilities: [{ capability: 'background-snapshot', state: true }],
        })
        .then(
          () => true,
          () => false,
        );
      if (backgroundSnapshot && !bg.state)
        await qmp.execute('migrate-set-capabilities', {
          capabilities: [{ capability: 'background-snapshot', state: false }],
        });
    }
  }
  return {
    snapshotSave,
    migrationBlockers,
    snapshottableNodes: graph.snapshottableNodes(),
    savevmBlockers: graph.savevmBlockers(),
    rawVarstore,
    writableLayers: graph.writableActiveLayers(),
    sharedMemoryBackends: shared,
    ignoreShared,
    backgroundSnapshot,
  };
}

function candidates(p: StrategyProbes, live: boolean): StrategyCandidate[] {
  const common = p.migrationBlockers.map((r) => `migration is blocked: ${r}`);
  const sharedRam =
    p.sharedMemoryBackends.length > 0 && p.ignoreShared
      ? [
          `x-ignore-shared is on and guest RAM is in shared backend(s) ${p.sharedMemoryBackends.join(', ')}: savevm would silently leave that RAM out`,
        ]
      : [];
  const noLive = live ? ['live saves need the external strategy (background-snapshot)'] : [];
  const internalBase = [
    ...common,
    ...sharedRam,
    ...noLive,
    ...(p.snapshottableNodes.length === 0 ? ['no writable qcow2 disk to hold the VM state'] : []),
  ];
  const hmp = [
    ...internalBase,
    ...p.savevmBlockers.map(
      (n) =>
        `block node '${n}'${n === p.rawVarstore ? ' (the pflash1 varstore)' : ''} is writable but not qcow2, and HMP savevm cannot leave it out`,
    ),
  ];
  const jobs = [...internalBase, ...(p.snapshotSave ? [] : ['no snapshot-save in this QEMU'])];
  const external = [
    ...common,
    ...(p.writableLayers.length === 0 ? ['no writable disk to put an overlay on'] : []),
    ...(live && !p.backgroundSnapshot
      ? ['the background-snapshot capability cannot be enabled (userfaultfd write-protect)']
      : []),
  ];
  return [
    { kind: 'external', feasible: external.length === 0, reasons: external },
    { kind: 'internal-jobs', feasible: jobs.length === 0, reasons: jobs },
    { kind: 'internal-hmp', feasible: hmp.length === 0, reasons: hmp },
  ];
}

const WHY: Record<StrategyKind, string> = {
  external:
    'qcow2 overlays + a migration stream file: the fastest save and load, live mode available, images do not grow by the RAM size per snapshot',
  'internal-jobs':
    'snapshot-save jobs: everything stays inside the qcow2 images, only writable qcow2 nodes are listed (a raw varstore does not block)',
  'internal-hmp':
    'HMP savevm: works on any QEMU, but every writable disk must be qcow2 and errors come back as text',
};

/**
 * Probes the VM (`snapshot-save`, migration blockers, disk formats, a raw pflash varstore,
 * shared memory backends with `x-ignore-shared`, background-snapshot support) and picks
 * a strategy. Throws `SnapshotUnsupportedError` with every reason when none is feasible.
 */
export async function chooseStrategy(
  machine: Machine,
  options: ChooseOptions = {},
): Promise<StrategyChoice> {
  return decideStrategy(await probe(machine), options);
}

/**
 * The decision of `chooseStrategy` over probe results, without a VM (internal: exported
 * for tests). Throws `SnapshotUnsupportedError` with every reason when none is feasible.
 */
export function decideStrategy(
  probes: StrategyProbes,
  options: ChooseOptions = {},
): StrategyChoice {
  const list = candidates(probes, options.live === true);
  const preferred = list.find((c) => c.kind === options.prefer && c.feasible);
  const chosen = preferred ?? list.find((c) => c.feasible);
  if (chosen === undefined)
    throw new SnapshotUnsupportedError(
      options.prefer ?? 'external',
      list.flatMap((c) => c.reasons.map((r) => `${c.kind}: ${r}`)),
    );
  const explanation = list
    .map((c) =>
      c.kind === chosen.kind
        ? `${c.kind}: chosen${preferred ? ' (preferred)' : ''} — ${WHY[c.kind]}`
        : c.feasible
          ? `${c.kind}: possible — ${WHY[c.kind]}`
          : `${c.kind}: not possible — ${c.reasons.join('; ')}`,
    )
    .join('\n');
  return { kind: chosen.kind, explanation, candidates: list, probes };
}
