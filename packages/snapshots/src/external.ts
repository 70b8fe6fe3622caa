/**
 * External snapshots: the disks are frozen under fresh qcow2 overlays (switched in one
 * `transaction` of `blockdev-snapshot` actions) and RAM + device state is written with the
 * migration protocol into a state file in the store.
 *
 * Save: overlays are created (`qemu-img create -u`, argument array) and added
 * (`blockdev-add`, `backing: null`) *before* the pause; then stop → transaction → model
 * update (`machine.adopt`) → `migrate uri=unix:` into the transport's stream sink (fsync,
 * byte count and SHA-256 on the fly) → `cont` → manifest commit. With `live`, the
 * `background-snapshot` capability lets QEMU resume the guest itself right after the device
 * state is written, while RAM is copied on write-faults.
 *
 * Load: the state file is verified (size, `QEVM` v3, SHA-256) before anything is touched,
 * then QEMU is restarted on the snapshot's configuration with a fresh overlay above each
 * frozen layer (so the snapshot stays reusable), `-incoming defer`, and fed the file as an
 * inherited fd (`migrate-incoming uri=fd:N`) under a deadline; a failure carries the
 * destination's stderr and exit code.
 *
 * Disk-only (`diskOnly`): overlays only, no state file, the guest keeps running; with a
 * quiesce hook (default: the VM's guest agent) the switch runs between a filesystem freeze
 * and its thaw (`quiesced.ts`), and the record says `consistency: 'filesystem' | 'crash'`.
 * Loading one restarts QEMU on fresh overlays above its layers: a cold boot from the disks.
 *
 * Delete: removes the state file; a layer other images still build on is merged into them
 * first (`block-stream` for images the running VM uses, `qemu-img rebase` for the others),
 * so every remaining chain stays valid.
 */
import { chmod, open, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  type BlockNode,
  backingOf,
  blockGraph,
  chainNodes,
  fromDocument,
  insertOverlay,
  type LayerFile,
  layerFile as modelLayerFile,
  toDocument,
  usersOf,
  type VmConfig,
  withoutLayer,
  withReadOnly,
} from '@qmpkit/devices';
import {
  isMigrationError,
  type MachineQmp,
  migrateIncoming,
  migrateOutgoing,
  runQemuImg,
  setUpMigration,
} from '@qmpkit/machine';
import { isQmpJobError } from '@qmpkit/transport';
import { createStreamSink } from '@qmpkit/transport/fd';
import { BaseStrategy, refuseMixing, toInfo, withoutSnapshot } from './base.js';
import { keepDump } from './compat.js';
import {
  isSnapshotAbortedError,
  isSnapshotStateFormatError,
  SnapshotAbortedError,
  SnapshotExistsError,
  SnapshotIntegrityError,
  SnapshotQemuError,
  SnapshotQuiesceError,
  SnapshotRestoreError,
  SnapshotStateFormatError,
  SnapshotTimeoutError,
  SnapshotUnsupportedError,
} from './errors.js';
import {
  applyEncoding,
  chooseEncoding,
  DEFAULT_MAPPED_RAM_LOAD,
  DEFAULT_MAPPED_RAM_SAVE,
  fileUriFor,
  type MappedRamSupport,
  machineSupport,
  mappedRamSupport,
  probeDirectIo,
  recordedEncoding,
} from './mapped-ram.js';
import { preflightLoad } from './preflight.js';
import { AGENT_PORT_NAME, agentQuiesce } from './quiesce.js';
import { DEFAULT_QUIESCE_TIMEOUT, isSwitchedLateError, quiesced } from './quiesced.js';
import {
  copyRamFile,
  hasIgnoreShared,
  privateRamConfig,
  sharedRamBackend,
  verifyRamFile,
} from './shared-ram.js';
import { sha256File, verifyStateFile } from './statefile.js';
import { configFiles } from './store.js';
import { startTask, type TaskContext } from './task.js';
import type {
  DeleteOptions,
  DeleteResult,
  LoadOptions,
  LoadResult,
  SaveOptions,
  SaveResult,
  SharedRamOutcome,
  SnapshotConsistency,
  SnapshotRecord,
  SnapshotTask,
  StrategyKind,
} from './types.js';
import {
  checkName,
  defaultTimeout,
  ensureBlockActive,
  newId,
  pause,
  recordedBinary,
  resume,
  settleConsoles,
  vmIdentity,
} from './vm.js';

/** 1 TiB/s: QEMU 7.2 throttles migration to 128 MiB/s by default, even of a paused VM. */
const MAX_BANDWIDTH = 1024 ** 4;

export interface ExternalOptions {
  /** `qemu-img` binary (default `qemu-img` on PATH). */
  readonly qemuImg?: string;
}

/** `qemu-img args…` (argument array, `QemuImgError` on failure, dies with this process). */
async function run(qemuImg: string, args: readonly string[]): Promise<void> {
  await runQemuImg(args, { qemuImg });
}

/** `layerFile` of the devices model, with the file name resolved (the store compares paths). */
function layerFile(config: VmConfig, node: string): LayerFile | undefined {
  const layer = modelLayerFile(config, node);
  return layer === undefined ? undefined : { ...layer, filename: path.resolve(layer.filename) };
}

/** An overlay file created for `target`, with the block nodes that open it. */
interface PlannedOverlay {
  readonly target: string;
  readonly format: BlockNode;
  readonly file: BlockNode;
  readonly path: string;
}

function recordConfig(record: SnapshotRecord): VmConfig {
  return fromDocument(record.config, { validate: false });
}

export class ExternalStrategy extends BaseStrategy {
  readonly kind: StrategyKind = 'external';
  readonly #qemuImg: string;

  constructor(...args: [...ConstructorParameters<typeof BaseStrategy>, ExternalOptions?]) {
    super(args[0], args[1]);
    this.#qemuImg = args[2]?.qemuImg ?? 'qemu-img';
  }

  /** Creates overlay files above `layers` of `config` and returns the nodes to add. */
  async #createOverlays(
    config: VmConfig,
    layers: readonly string[],
    id: string,
    sizes: ReadonlyMap<string, number>,
  ): Promise<PlannedOverlay[]> {
    const out: PlannedOverlay[] = [];
    try {
      for (const [i, target] of layers.entries()) {
        const lf = layerFile(config, target);
        if (lf === undefined)
          throw new SnapshotUnsupportedError(this.kind, [
            `block node '${target}' is not backed by a plain file, so no overlay can name it as backing`,
          ]);
        const file = this.store.layerPath(id, i);
        // Created 0600 by us first: qemu-img would create it 0644 (umask), and it keeps the
        // mode of a file that exists.
        await (await open(file, 'wx', 0o600)).close();
        const size = sizes.get(target);
        const args = ['create', '-q', '-f', 'qcow2', '-F', lf.format, '-b', lf.filename];
        if (size === undefined) args.push(file);
        else args.push('-u', file, String(size));
        out.push({
          target,
          path: file,
          file: { driver: 'file', 'node-name': `qs${id}-${i}f`, filename: file },
          format: {
            driver: 'qcow2',
            'node-name': `qs${id}-${i}`,
            file: `qs${id}-${i}f`,
          } as BlockNode,
        });
        await run(this.#qemuImg, args);
        await chmod(file, 0o600);
      }
      return out;
    } catch (error) {
      await Promise.all(out.map((o) => rm(o.path, { force: true })));
      throw error;
    }
  }

  async #virtualSizes(qmp: MachineQmp): Promise<Map<string, number>> {
    const nodes = await qmp.execute('query-named-block-nodes', { flat: true });
    return new Map(nodes.map((n) => [n['node-name'] ?? '', n.image['virtual-size']]));
  }

  save(name: string, options: SaveOptions = {}): SnapshotTask<SaveResult> {
    if (options.diskOnly === true)
      return startTask(name, options, (ctx) => this.#saveDiskOnly(name, options, ctx));
    return startTask(name, options, async (ctx) => {
      checkName(this.kind, name);
      const machine = this.machine;
      if (machine.status !== 'running')
        throw new SnapshotUnsupportedError(this.kind, ['the machine is not running']);
      const existing = this.store.find(name);
      if (existing !== undefined && options.overwrite !== true)
        throw new SnapshotExistsError(name, 'store');
      refuseMixing(this.store, this.kind, existing?.id);
      const qmp = machine.qmp;
      const live = options.live === true;
      if (live && options.sharedRam === true)
        throw new SnapshotUnsupportedError(this.kind, [
          'sharedRam copies the RAM file while the guest is paused; a live save would let the guest change it during the copy',
        ]);
      const identity = await vmIdentity(machine);
      const timeout = options.timeout ?? defaultTimeout(identity.memoryBytes);
      const deadline = performance.now() + timeout;
      const left = () => Math.max(1, deadline - performance.now());
      const migration = await qmp.execute('query-migrate');
      const blocked = migration['blocked-reasons'] ?? [];
      if (blocked.length > 0) throw new SnapshotUnsupportedError(this.kind, blocked);
      if (migration.status === 'active' || migration.status === 'setup')
        throw new SnapshotUnsupportedError(this.kind, ['a migration is already running']);
      await ensureBlockActive(qmp, timeout);
      const before = machine.config;
      const graph = blockGraph(before);
      const layers = graph.writableActiveLayers();
      if (layers.length === 0)
        throw new SnapshotUnsupportedError(this.kind, ['the VM has no writable disk to freeze']);
      const frozen = layers.map((l) => layerFile(before, l)?.filename ?? '');
      // A template for clones: the RAM file instead of RAM in the stream, where possible.
      let sharedRam: SharedRamOutcome | undefined;
      let ramBackend: { id: string; memPath: string } | undefined;
      if (options.sharedRam === true) {
        const found = sharedRamBackend(before);
        if ('reason' in found) sharedRam = { used: false, ...found };
        else if (!(await hasIgnoreShared(qmp)))
          sharedRam = {
            used: false,
            reason: 'no-x-ignore-shared',
            detail: `QEMU ${identity.qemuVersion} has no x-ignore-shared migration capability`,
          };
        else ramBackend = found;
      }
      const vmstateKey = await keepDump(machine, this.store.dir, identity.machineType);
      const id = newId();
      const statePath = this.store.statePath(id);
      const support = (await machineSupport(machine)) ?? (await mappedRamSupport(qmp));
      const tuning = { ...DEFAULT_MAPPED_RAM_SAVE, ...options.mappedRam };
      const fileUri = fileUriFor(statePath);
      const encoding = chooseEncoding(support, {
        // The RAM file is the bulk of a template; its stream stays the one every QEMU loads.
        portable: options.portable === true || options.sharedRam === true,
        live,
        uriOk: fileUri !== undefined,
        directIoOk:
          support.mappedRam && support.directIo && tuning.directIo
            ? await probeDirectIo(this.store.statesDir)
            : false,
        tuning,
      });

      // Everything that does not need the guest paused happens first.
      ctx.phase('overlay');
      await this.store.update((m) => ({
        ...m,
        pending: [
          ...m.pending,
          { id, name, strategy: this.kind, startedAt: new Date().toISOString() },
        ],
      }));
      const dropPending = () =>
        this.store
          .update((m) => ({ ...m, pending: m.pending.filter((p) => p.id !== id) }))
          // The save's own error is what the caller needs; a pending entry that stays is
          // found and cleaned up by the next open (that is what it is for).
          .catch(() => undefined);
      const overlays = await this.#createOverlays(
        before,
        layers,
        id,
        await this.#virtualSizes(qmp),
      ).catch(async (error: unknown) => {
        await dropPending();
        throw error;
      });
      const added: string[] = [];
      let switched = false;
      let wasRunning = false;
      let stopMs: number | undefined;
      let resumeMs: number | undefined;
      let consoles: ReturnType<typeof machine.consoleState> = [];
      let sink: Awaited<ReturnType<typeof createStreamSink>> | undefined;
      let result: { bytes: number; sha256: string } | undefined;
      const ramPath = `${statePath}.ram`;
      try {
        // Nodes of the devices model go through the unchecked call, as every model-made
        // step does (`BlockNode` is the model's type, checked by its own validator).
        for (const o of overlays) {
          await qmp.executeUnchecked('blockdev-add', o.file);
          added.push(o.file['node-name']);
          await qmp.executeUnchecked('blockdev-add', { ...o.format, backing: null });
          added.push(o.format['node-name']);
        }
        await setUpMigration(machine, {
          capabilities: [
            { capability: 'background-snapshot', state: live },
            { capability: 'x-ignore-shared', state: ramBackend !== undefined },
          ],
          parameters: { 'max-bandwidth': MAX_BANDWIDTH },
        });
        await applyEncoding(qmp, support, encoding);
        if (encoding.format === 'stream')
          sink = await createStreamSink({
            file: statePath,
            acceptTimeout: 30_000,
            timeout: left(),
          });
        // QEMU writes a mapped-ram file itself (`file:` URI); created 0600 by us first, as
        // QEMU would create it with the umask's mode and keeps the mode of a file that exists.
        else await (await open(statePath, 'wx', 0o600)).close();
        ctx.checkAborted();

        ctx.phase('pause');
        const paused = await pause(qmp, left());
        wasRunning = paused.wasRunning;
        stopMs = paused.stopMs;
        ctx.phase('switch');
        await qmp.execute('transaction', {
          actions: overlays.map((o) => ({
            type: 'blockdev-snapshot' as const,
            data: { node: o.target, overlay: o.format['node-name'] },
          })),
        });
        switched = true;
        let next = before;
        for (const o of overlays)
          next = insertOverlay(next, {
            target: { node: o.target },
            overlay: o.format,
            nodes: [o.file],
          }).config;
        await machine.adopt(next);
        // Output in flight at the pause has arrived by now (several event-loop turns).
        consoles = machine.consoleState();
        ctx.checkAborted();

        ctx.phase('save', identity.memoryBytes);
        const target = sink ?? { uri: fileUri ?? '', bytes: 0 };
        const outcome = await this.#migrate(target, ctx, name, left, identity.memoryBytes, live);
        if (live) resumeMs = outcome.resumeMs;
        else {
          // Still paused: let anything still in flight arrive, then take the console text.
          await settleConsoles(machine);
          consoles = machine.consoleState();
        }
        result = await withDeadline(
          sink !== undefined ? sink.done : this.#sealFile(statePath, ctx),
          left(),
          () => new SnapshotTimeoutError(name, 'save', timeout),
        );
        if (ctx.signal.aborted) await rm(statePath, { force: true });
        ctx.checkAborted();
        if (ramBackend !== undefined) {
          // Still paused: the file holds exactly the RAM the stream left out.
          const ramFile = await withDeadline(
            copyRamFile(ramBackend.memPath, ramPath, ramBackend.id),
            left(),
            () => new SnapshotTimeoutError(name, 'save', timeout),
          );
          sharedRam = { used: true, ramFile };
        }
        ctx.phase('saved');
        if (encoding.format !== 'stream') await applyEncoding(qmp, support, { format: 'stream' });
        if (live)
          await qmp.execute('migrate-set-capabilities', {
            capabilities: [{ capability: 'background-snapshot', state: false }],
          });
        ctx.phase('resume');
        if (wasRunning && resumeMs === undefined) {
          const status = await qmp.execute('query-status');
          if (!status.running) resumeMs = await resume(qmp, left());
        }
      } catch (error) {
        sink?.abort(error);
        if (sink === undefined) await rm(statePath, { force: true });
        await rm(ramPath, { force: true });
        await this.#undoSave(qmp, { added, switched, overlays, wasRunning, live, support });
        await dropPending();
        throw translate(error, name, ctx, timeout);
      }

      ctx.phase('commit');
      const st = await stat(statePath);
      const written = { ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
      // The frozen layers were the VM's writable active layers: reopen them read-only so
      // their files carry no write lock (offline merges of other images need to read them).
      await this.#freeze(qmp, layers);
      const parent = this.store.byId(this.store.manifest.current)?.name ?? null;
      const record: SnapshotRecord = {
        id,
        name,
        strategy: this.kind,
        parent: existing !== undefined && parent === name ? existing.parent : parent,
        createdAt: new Date().toISOString(),
        description: options.description,
        qemuVersion: identity.qemuVersion,
        machineType: identity.machineType,
        configHash: identity.configHash,
        ...recordedBinary(identity),
        ...(vmstateKey !== undefined ? { vmstateKey } : {}),
        memoryBytes: identity.memoryBytes,
        vmStateBytes: result.bytes,
        wasRunning,
        stateFile: {
          path: statePath,
          bytes: result.bytes,
          sha256: result.sha256,
          written,
          encoding,
        },
        layers: frozen,
        ...(sharedRam?.used === true ? { ramFile: sharedRam.ramFile } : {}),
        tag: undefined,
        live,
        consoles,
        config: toDocument(before),
      };
      await this.store.update((m) => ({
        ...m,
        snapshots: [...m.snapshots.filter((s) => s.id !== existing?.id), record],
        pending: m.pending.filter((p) => p.id !== id),
        current: id,
      }));
      // The replaced snapshot's files go after the commit, through the normal delete path
      // (its layers may be merged into images that build on them).
      // The new snapshot is committed and the old record is out of the manifest; if this
      // fails, the old files are unreferenced and the next open removes them as debris.
      if (existing !== undefined) await this.#deleteRecord(existing).catch(() => undefined);
      ctx.phase('done');
      return {
        snapshot: toInfo(record),
        strategy: this.kind,
        timings: {
          totalMs: performance.now() - ctx.startedAt,
          downtimeMs:
            stopMs !== undefined && resumeMs !== undefined ? resumeMs - stopMs : undefined,
          phases: ctx.phaseTimes(),
        },
        bytesWritten: result.bytes,
        ...(sharedRam !== undefined ? { sharedRam } : {}),
      };
    });
  }

  /**
   * A mapped-ram file QEMU wrote: fsync (QEMU does not; `completed` is not durable) and its
   * size and SHA-256. QEMU wrote the file itself, so the hash needs one read of it; that read
   * (from the page cache unless the file was written with O_DIRECT) runs beside the fsync
   * instead of after it: the file does not change any more, and the fsync's writeback and the
   * read-back overlap. The `save` phase ends with the fsync; `checksum` is what the hash takes
   * beyond it.
   */
  async #sealFile(file: string, ctx: TaskContext): Promise<{ bytes: number; sha256: string }> {
    const { size } = await stat(file);
    const handle = await open(file, 'r');
    let sha256: Promise<string>;
    // Progress of the hash is the checksum phase's: held back while the save phase lasts.
    let hashed = 0;
    let reporting = false;
    try {
      sha256 = sha256File(
        file,
        (b) => {
          hashed = b;
          if (reporting) ctx.bytes(b, size);
        },
        ctx.signal,
      );
      // Observed below; here only its rejection is kept from going unhandled while the
      // fsync runs (a failed fsync is thrown first, and the read then stops with the signal
      // or at its end).
      sha256.catch(() => undefined);
      await handle.sync();
    } finally {
      await handle.close();
    }
    ctx.phase('checksum', size);
    reporting = true;
    ctx.bytes(hashed, size);
    return { bytes: size, sha256: await sha256 };
  }

  /**
   * A disk-only save: overlays added while the guest runs, then freeze → `transaction` →
   * thaw (the thaw always runs; past `quiesceTimeout` it runs without waiting for the
   * switch, and the switch is called off if it has not been sent yet), then the frozen layers
   * are reopened read-only and the record committed with its `consistency`.
   */
  async #saveDiskOnly(name: string, options: SaveOptions, ctx: TaskContext): Promise<SaveResult> {
    checkName(this.kind, name);
    const machine = this.machine;
    if (machine.status !== 'running')
      throw new SnapshotUnsupportedError(this.kind, ['the machine is not running']);
    if (options.live === true)
      throw new SnapshotUnsupportedError(this.kind, [
        'live and diskOnly exclude each other: a disk-only save writes no RAM',
      ]);
    const existing = this.store.find(name);
    if (existing !== undefined && options.overwrite !== true)
      throw new SnapshotExistsError(name, 'store');
    refuseMixing(this.store, this.kind, existing?.id);
    const qmp = machine.qmp;
    const identity = await vmIdentity(machine);
    const timeout = options.timeout ?? defaultTimeout(0);
    const quiesceTimeout = options.quiesceTimeout ?? DEFAULT_QUIESCE_TIMEOUT;
    const deadline = performance.now() + timeout;
    const left = () => Math.max(1, deadline - performance.now());
    await ensureBlockActive(qmp, timeout);
    const before = machine.config;
    const layers = blockGraph(before).writableActiveLayers();
    if (layers.length === 0)
      throw new SnapshotUnsupportedError(this.kind, ['the VM has no writable disk to freeze']);
    // The hook is settled before anything is created: a refusal leaves nothing behind.
    const owned =
      options.quiesce === undefined ? agentQuiesce(before, Math.min(left(), 10_000)) : undefined;
    const hook = options.quiesce === false ? undefined : (options.quiesce ?? owned?.hook);
    if (hook === undefined && options.requireQuiesce === true)
      throw new SnapshotQuiesceError(name, 'no-agent', {
        message:
          options.quiesce === false
            ? 'requireQuiesce with quiesce: false'
            : `requireQuiesce, but the VM has no guest agent port (a virtserialport named ${AGENT_PORT_NAME} on a UNIX socket chardev); pass a quiesce hook`,
      });
    const frozen = layers.map((l) => layerFile(before, l)?.filename ?? '');
    const id = newId();
    const status = await qmp.execute('query-status');

    ctx.phase('overlay');
    await this.store.update((m) => ({
      ...m,
      pending: [
        ...m.pending,
        { id, name, strategy: this.kind, startedAt: new Date().toISOString() },
      ],
    }));
    const dropPending = () =>
      this.store
        .update((m) => ({ ...m, pending: m.pending.filter((p) => p.id !== id) }))
        // As in `save`: the next open cleans a pending entry that stays.
        .catch(() => undefined);
    const added: string[] = [];
    let overlays: PlannedOverlay[] = [];
    let consistency: SnapshotConsistency = 'crash';
    let thawError: unknown;
    try {
      overlays = await this.#createOverlays(before, layers, id, await this.#virtualSizes(qmp));
      for (const o of overlays) {
        await qmp.executeUnchecked('blockdev-add', o.file);
        added.push(o.file['node-name']);
        await qmp.executeUnchecked('blockdev-add', { ...o.format, backing: null });
        added.push(o.format['node-name']);
      }
      ctx.checkAborted();
      const actions = overlays.map((o) => ({
        type: 'blockdev-snapshot' as const,
        data: { node: o.target, overlay: o.format['node-name'] },
      }));
      const outcome = await quiesced(
        hook,
        {
          name,
          timeoutMs: quiesceTimeout,
          requireQuiesce: options.requireQuiesce === true,
          settleTimeoutMs: left(),
          phase: (p) => ctx.phase(p),
        },
        async (proceed) => {
          await options.onFrozen?.();
          if (!proceed()) return;
          await qmp.execute('transaction', { actions });
        },
      );
      consistency = outcome.consistency;
      thawError = outcome.thawError;
    } catch (error) {
      if (isSwitchedLateError(error)) {
        // The switch happened after the guest was thawed: the VM runs on the overlays now
        // (nothing references them; a later load or open collects them).
        await this.#adoptOverlays(overlays);
      } else {
        for (const node of [...added].reverse())
          await qmp
            .execute('blockdev-del', { 'node-name': node })
            // An unused node that stays goes away with the QEMU process; its file goes below.
            .catch(() => undefined);
        await Promise.all(overlays.map((o) => rm(o.path, { force: true })));
      }
      await dropPending();
      await owned?.close();
      throw translate(isSwitchedLateError(error) ? error.error : error, name, ctx, timeout);
    }
    await owned?.close();
    await this.#adoptOverlays(overlays);

    ctx.phase('commit');
    await this.#freeze(qmp, layers);
    const parent = this.store.byId(this.store.manifest.current)?.name ?? null;
    const record: SnapshotRecord = {
      id,
      name,
      strategy: this.kind,
      parent: existing !== undefined && parent === name ? existing.parent : parent,
      createdAt: new Date().toISOString(),
      description: options.description,
      qemuVersion: identity.qemuVersion,
      machineType: identity.machineType,
      configHash: identity.configHash,
      ...recordedBinary(identity),
      memoryBytes: identity.memoryBytes,
      vmStateBytes: 0,
      wasRunning: status.running,
      stateFile: undefined,
      layers: frozen,
      tag: undefined,
      live: false,
      diskOnly: true,
      consistency,
      consoles: [],
      config: toDocument(before),
    };
    await this.store.update((m) => ({
      ...m,
      snapshots: [...m.snapshots.filter((s) => s.id !== existing?.id), record],
      pending: m.pending.filter((p) => p.id !== id),
      current: id,
    }));
    // As in `save`: the old record is out of the manifest; its files are debris otherwise.
    if (existing !== undefined) await this.#deleteRecord(existing).catch(() => undefined);
    if (thawError !== undefined)
      throw new SnapshotQuiesceError(
        name,
        'thaw-failed',
        {
          message:
            'the snapshot was taken, but the thaw after it failed: the guest may still be frozen (thaw it through the agent)',
          committed: true,
        },
        { cause: thawError },
      );
    ctx.phase('done');
    return {
      snapshot: toInfo(record),
      strategy: this.kind,
      timings: {
        totalMs: performance.now() - ctx.startedAt,
        downtimeMs: undefined,
        phases: ctx.phaseTimes(),
      },
      bytesWritten: 0,
    };
  }

  /** The model after a disk-only switch: each overlay above its target. */
  async #adoptOverlays(overlays: readonly PlannedOverlay[]): Promise<void> {
    let next = this.machine.config;
    for (const o of overlays)
      next = insertOverlay(next, {
        target: { node: o.target },
        overlay: o.format,
        nodes: [o.file],
      }).config;
    await this.machine.adopt(next);
  }

  /** `blockdev-reopen` of `layers` with `read-only: true`, and the model with them. */
  async #freeze(qmp: MachineQmp, layers: readonly string[]): Promise<void> {
    const config = this.machine.config;
    const frozen = withReadOnly(config, new Set(layers));
    for (const layer of layers) {
      const node = (frozen.blockdevs ?? []).find((b) => b['node-name'] === layer);
      if (node === undefined) continue;
      await qmp.executeUnchecked('blockdev-reopen', { options: [node] });
    }
    await this.machine.adopt(frozen);
  }

  /** Runs the outgoing migration into the sink (machine's `migrateOutgoing`). */
  async #migrate(
    sink: { uri: string; readonly bytes: number },
    ctx: TaskContext,
    name: string,
    left: () => number,
    total: number,
    live: boolean,
  ): Promise<{ resumeMs?: number }> {
    ctx.checkAborted();
    try {
      const outcome = await migrateOutgoing(this.machine, {
        uri: sink.uri,
        timeout: left(),
        signal: ctx.signal,
        onTick: () => ctx.bytes(sink.bytes, total),
      });
      ctx.checkAborted();
      return live && outcome.resumeMs !== undefined ? { resumeMs: outcome.resumeMs } : {};
    } catch (error) {
      if (ctx.signal.aborted)
        throw new SnapshotAbortedError(name, 'save', { cause: ctx.signal.reason });
      if (!isMigrationError(error)) throw error;
      if (error.reason === 'timeout') throw new SnapshotTimeoutError(name, 'save', left());
      const stderr = error.stderr.trim();
      throw new SnapshotQemuError(
        {
          strategy: this.kind,
          operation: 'save',
          command: 'migrate',
          desc:
            error.reason === 'exited'
              ? `QEMU exited during the save${stderr ? `: ${stderr}` : ''}`
              : error.desc,
        },
        { cause: error },
      );
    }
  }

  /**
   * Undo of a failed save: before the switch, the added nodes and files go; after it the
   * VM keeps running on the overlays (they hold its writes from now on; no snapshot
   * references them, and a later load or open collects them). The guest is resumed.
   */
  async #undoSave(
    qmp: MachineQmp,
    s: {
      added: string[];
      switched: boolean;
      overlays: readonly { path: string }[];
      wasRunning: boolean;
      live: boolean;
      support: MappedRamSupport;
    },
  ): Promise<void> {
    if (this.machine.status !== 'running') return;
    await applyEncoding(qmp, s.support, { format: 'stream' })
      // Every later save sets the encoding itself; a live migration would find mapped-ram
      // on and fail with QEMU's own message.
      .catch(() => undefined);
    // Every step of the undo is best effort: the save's own error is what the caller gets,
    // and none of these leaves anything a later operation trips over.
    await qmp
      .execute('migrate-set-capabilities', {
        capabilities: [{ capability: 'background-snapshot', state: false }],
      })
      // Every later save sets this capability itself.
      .catch(() => undefined);
    if (!s.switched) {
      for (const node of [...s.added].reverse())
        await qmp
          .execute('blockdev-del', { 'node-name': node })
          // An unused node that stays goes away with the QEMU process; its file goes below.
          .catch(() => undefined);
      await Promise.all(s.overlays.map((o) => rm(o.path, { force: true })));
    }
    if (s.wasRunning) {
      // Unknown status (QEMU busy or gone): nothing to resume from here.
      const status = await qmp.execute('query-status').catch(() => undefined);
      if (status !== undefined && !status.running)
        // A guest left paused shows in query-status; the save's error must not be replaced.
        await resume(qmp, 30_000).catch(() => undefined);
    }
  }

  load(name: string, options: LoadOptions = {}): SnapshotTask<LoadResult> {
    return startTask(name, options, async (ctx) => {
      const record = this.record(name);
      if (record.diskOnly === true) return this.#loadDiskOnly(record, options, ctx);
      const machine = this.machine;
      const identity = await vmIdentity(machine);
      const target = await preflightLoad(machine, record, identity, options, {
        restarts: true,
        config: recordConfig(record),
        storeDir: this.store.dir,
      });
      const timeout = options.timeout ?? defaultTimeout(identity.memoryBytes);
      const deadline = performance.now() + timeout;
      const left = () => Math.max(1, deadline - performance.now());
      const state = record.stateFile;
      if (state === undefined)
        throw new SnapshotIntegrityError(name, '(none)', 'missing', {
          message: 'the manifest names no state file',
        });
      // A mapped-ram file needs mapped-ram on the incoming side: the preflight refused a
      // loading binary without it and says what that binary offers (undefined: unknown until
      // the QEMU started below is asked, before it reads).
      const recorded = recordedEncoding(state);
      let incoming:
        | { support: MappedRamSupport | undefined; directIoOk: boolean; uri: string }
        | undefined;
      if (recorded.format === 'mapped-ram') {
        const uri = fileUriFor(state.path);
        if (uri === undefined)
          throw new SnapshotUnsupportedError(this.kind, [
            `the state file's path contains ',offset=', which QEMU's file: URI cannot name`,
          ]);
        const wantDirect = options.mappedRam?.directIo ?? DEFAULT_MAPPED_RAM_LOAD.directIo;
        incoming = {
          support: target.support,
          directIoOk: wantDirect ? await probeDirectIo(path.dirname(state.path)) : false,
          uri,
        };
      }

      // Everything is verified before the running VM is touched.
      ctx.phase('verify', state.bytes);
      const verified = await verifyStateFile(name, state.path, state, options.verify ?? 'full', {
        onBytes: (b) => ctx.bytes(b, state.bytes),
        signal: ctx.signal,
      }).catch((error: unknown) => {
        if (ctx.signal.aborted)
          throw new SnapshotAbortedError(name, 'verify', { cause: ctx.signal.reason });
        throw error;
      });
      const saved = recordConfig(record);
      const ramFile = record.ramFile;
      if (ramFile !== undefined)
        await verifyRamFile(name, ramFile, (options.verify ?? 'full') === 'full' ? 'full' : 'size');
      const loaded = await this.#loadConfig(name, saved, ctx);
      const overlays = loaded.overlays;
      // A template's RAM is its file, mapped privately (the store's copy is never written).
      const config =
        ramFile !== undefined ? privateRamConfig(loaded.config, ramFile) : loaded.config;
      const previousFiles = new Set(configFiles(machine.config));

      ctx.phase('restart');
      const teardownMs = Date.now();
      let uri: string;
      try {
        const inherited = await machine.restart(config, {
          incoming: true,
          paused: true,
          // A mapped-ram file is opened by QEMU itself (`file:`), several times with multifd.
          ...(incoming === undefined ? { inheritFiles: [{ path: state.path }] } : {}),
          consoleState: record.consoles,
          ...(target.qemu !== undefined ? { qemu: target.qemu } : {}),
        });
        uri = incoming?.uri ?? inherited[0]?.uri ?? '';
      } catch (error) {
        await Promise.all(overlays.map((o) => rm(o.path, { force: true })));
        throw error;
      }
      ctx.phase('load', state.bytes);
      const qmp = machine.qmp;
      if (incoming !== undefined)
        await this.#incomingEncoding(name, incoming, options, left, timeout, overlays);
      if (ramFile !== undefined)
        await setUpMigration(machine, {
          capabilities: [{ capability: 'x-ignore-shared', state: true }],
        });
      await this.#incoming(uri, name, left, timeout);
      ctx.phase('resume');
      let resumeMs: number | undefined;
      if (options.resume ?? record.wasRunning) resumeMs = await resume(qmp, left());
      ctx.phase('commit');
      await this.store.update((m) => ({ ...m, current: record.id }));
      // The previous run's own overlays are garbage now unless a snapshot builds on them.
      const keep = this.store.referencedFiles();
      for (const f of configFiles(machine.config)) keep.add(f);
      for (const f of previousFiles)
        if (!keep.has(f) && path.dirname(f) === this.store.layersDir) await rm(f, { force: true });
      ctx.phase('done');
      return {
        snapshot: toInfo(record),
        strategy: this.kind,
        timings: {
          totalMs: performance.now() - ctx.startedAt,
          downtimeMs: resumeMs !== undefined ? resumeMs - teardownMs : undefined,
          phases: ctx.phaseTimes(),
        },
        bytesRead: state.bytes,
        verified,
        ...(target.compat !== undefined ? { compat: target.compat } : {}),
        warnings: target.warnings,
      };
    });
  }

  /**
   * Sets mapped-ram (+ multifd, direct I/O) on the QEMU started for the load, under the
   * load's deadline. Where that QEMU has no mapped-ram (known only now when the machine was
   * not running before), it is stopped and its overlays removed: `SnapshotStateFormatError`.
   * Any other failure stops it too (it would wait for a stream that never comes).
   */
  async #incomingEncoding(
    name: string,
    incoming: { support: MappedRamSupport | undefined; directIoOk: boolean; uri: string },
    options: LoadOptions,
    left: () => number,
    timeout: number,
    overlays: readonly { path: string }[],
  ): Promise<void> {
    const machine = this.machine;
    const qmp = machine.qmp;
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      // Ends whatever command waits (the QMP connection closes with the process).
      void machine.kill().catch(() => undefined);
    }, left());
    try {
      const support = incoming.support ?? (await machineSupport(machine));
      if (support === undefined || !support.mappedRam) {
        const v = machine.qemuVersion;
        await machine.stop().catch(() => machine.kill().catch(() => undefined));
        await Promise.all(overlays.map((o) => rm(o.path, { force: true })));
        throw new SnapshotStateFormatError(name, `${v.major}.${v.minor}.${v.micro}`);
      }
      const tuning = { ...DEFAULT_MAPPED_RAM_LOAD, ...options.mappedRam };
      const encoding = chooseEncoding(support, {
        portable: false,
        live: false,
        uriOk: true,
        directIoOk: incoming.directIoOk,
        tuning,
      });
      await applyEncoding(qmp, support, encoding);
    } catch (error) {
      if (isSnapshotStateFormatError(error)) throw error;
      const exit = await machine.kill().catch(() => machine.exited);
      if (expired)
        throw new SnapshotRestoreError(
          name,
          'timeout',
          {
            exitCode: exit.code,
            signal: exit.signal,
            stderr: machine.stderr(),
            detail: `no completed incoming migration within ${timeout} ms`,
          },
          { cause: error },
        );
      throw new SnapshotQemuError(
        {
          strategy: this.kind,
          operation: 'load',
          command: 'migrate-set-capabilities',
          desc: error instanceof Error ? error.message : String(error),
        },
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A disk-only snapshot has no RAM to restore: QEMU is restarted on the snapshot's
   * configuration with a fresh overlay above each of its layers and the guest boots from
   * them (a cold boot, as after a clean shutdown for `filesystem` consistency, or after a
   * power cut for `crash`). `resume: false` starts it paused (`-S`).
   */
  async #loadDiskOnly(
    record: SnapshotRecord,
    options: LoadOptions,
    ctx: TaskContext,
  ): Promise<LoadResult> {
    const machine = this.machine;
    const name = record.name;
    const identity = await vmIdentity(machine);
    const saved = recordConfig(record);
    // The same checks as any load (binary, machine type, the VM against the snapshot); no
    // compatibility check: a cold boot carries no device state across binaries.
    const target = await preflightLoad(
      machine,
      record,
      identity,
      { ...options, force: true },
      { restarts: true, config: saved, storeDir: this.store.dir },
    );
    ctx.phase('verify');
    const { config, overlays } = await this.#loadConfig(name, saved, ctx);
    const previousFiles = new Set(configFiles(machine.config));

    ctx.phase('restart');
    try {
      await machine.restart(config, {
        paused: options.resume === false,
        ...(target.qemu !== undefined ? { qemu: target.qemu } : {}),
      });
    } catch (error) {
      await Promise.all(overlays.map((o) => rm(o.path, { force: true })));
      throw error;
    }
    ctx.phase('commit');
    await this.store.update((m) => ({ ...m, current: record.id }));
    const keep = this.store.referencedFiles();
    for (const f of configFiles(machine.config)) keep.add(f);
    for (const f of previousFiles)
      if (!keep.has(f) && path.dirname(f) === this.store.layersDir) await rm(f, { force: true });
    ctx.phase('done');
    return {
      snapshot: toInfo(record),
      strategy: this.kind,
      timings: {
        totalMs: performance.now() - ctx.startedAt,
        downtimeMs: undefined,
        phases: ctx.phaseTimes(),
      },
      bytesRead: 0,
      verified: undefined,
      warnings: target.warnings,
    };
  }

  /**
   * What a load runs: every layer of the snapshot's configuration checked to exist, then a
   * fresh overlay above each writable active layer, the snapshot's layers opened read-only
   * (they are never written again). Shared by full and disk-only loads.
   */
  async #loadConfig(
    name: string,
    saved: VmConfig,
    ctx: TaskContext,
  ): Promise<{ config: VmConfig; overlays: PlannedOverlay[] }> {
    for (const file of configFiles(saved)) {
      try {
        await stat(file);
      } catch (cause) {
        throw new SnapshotIntegrityError(
          name,
          file,
          'layer-missing',
          { message: 'a disk layer of the snapshot is missing' },
          { cause },
        );
      }
    }
    ctx.checkAborted();
    const layers = blockGraph(saved).writableActiveLayers();
    const overlays = await this.#createOverlays(saved, layers, newId(), new Map());
    let config = withReadOnly(saved, chainNodes(saved, layers));
    for (const o of overlays)
      config = insertOverlay(config, {
        target: { node: o.target },
        overlay: o.format,
        nodes: [o.file],
      }).config;
    return { config, overlays };
  }

  /** `migrate-incoming` on the freshly started QEMU (machine's `migrateIncoming`). */
  async #incoming(uri: string, name: string, left: () => number, timeout: number): Promise<void> {
    try {
      await migrateIncoming(this.machine, { uri, timeout: left() });
    } catch (error) {
      if (
        isMigrationError(error) &&
        (error.reason === 'failed' || error.reason === 'exited' || error.reason === 'timeout')
      )
        throw new SnapshotRestoreError(
          name,
          error.reason,
          {
            exitCode: error.exitCode,
            signal: error.signal,
            stderr: error.stderr,
            // The whole load's deadline, which the caller set (the migration got what was left).
            detail:
              error.reason === 'timeout'
                ? `no completed incoming migration within ${timeout} ms`
                : error.desc,
          },
          { cause: error },
        );
      throw error;
    }
  }

  async delete(name: string, _options: DeleteOptions = {}): Promise<DeleteResult> {
    const started = performance.now();
    const record = this.record(name);
    const { merged, removed } = await this.#deleteRecord(record);
    return {
      snapshot: toInfo(record),
      strategy: this.kind,
      merged,
      removed,
      totalMs: performance.now() - started,
    };
  }

  async #deleteRecord(record: SnapshotRecord): Promise<{ merged: string[]; removed: string[] }> {
    const machine = this.machine;
    const saved = recordConfig(record);
    const merged: string[] = [];
    const removed: string[] = [];
    const others = this.store.snapshots().filter((s) => s.id !== record.id);
    const running = machine.status === 'running' ? machine.config : undefined;
    const runningFiles = new Set(configFiles(running));
    let liveConfig = running;
    const rewrite = new Map<string, VmConfig>(
      others.filter((s) => s.config).map((s) => [s.id, recordConfig(s)]),
    );
    const layerNames = blockGraph(saved).writableActiveLayers();
    for (const layerNode of layerNames) {
      const lf = layerFile(saved, layerNode);
      if (lf === undefined || path.dirname(lf.filename) !== this.store.layersDir) continue;
      // Every configuration (other snapshots', the running VM's) that contains the layer.
      const holders: { config: VmConfig; live: boolean; id?: string }[] = [];
      for (const [id, c] of rewrite) holders.push({ config: c, live: false, id });
      if (liveConfig) holders.push({ config: liveConfig, live: true });
      const mergedInto = new Set<string>();
      for (const h of holders) {
        const node = (h.config.blockdevs ?? []).find(
          (b) =>
            b.driver === 'file' &&
            path.resolve(String((b as { filename?: unknown }).filename)) === lf.filename,
        );
        const here = node
          ? (h.config.blockdevs ?? []).find(
              (b) => (b as { file?: unknown }).file === node['node-name'],
            )
          : undefined;
        if (node === undefined || here === undefined) continue;
        const hereLayer = layerFile(h.config, here['node-name']);
        if (hereLayer === undefined) continue;
        const base = backingOf(h.config, here['node-name']);
        const baseFile = base ? layerFile(h.config, base) : undefined;
        for (const user of usersOf(h.config, here['node-name'])) {
          const userFile = layerFile(h.config, user);
          if (userFile === undefined || mergedInto.has(userFile.filename)) continue;
          if (h.live || runningFiles.has(userFile.filename)) {
            if (!h.live) continue; // merged through the running VM's holder
            await this.#stream(user, base);
          } else {
            await run(this.#qemuImg, [
              'rebase',
              '-q',
              '-f',
              'qcow2',
              ...(baseFile ? ['-F', baseFile.format, '-b', baseFile.filename] : ['-b', '']),
              userFile.filename,
            ]);
          }
          mergedInto.add(userFile.filename);
          merged.push(userFile.filename);
        }
        const next = withoutLayer(h.config, hereLayer);
        if (h.live) {
          for (const n of [hereLayer.node, hereLayer.fileNode])
            await machine.qmp
              .execute('blockdev-del', { 'node-name': n })
              // Streamed out of every chain; a node QEMU still keeps for another user stays
              // until the process ends, and the model drops it either way.
              .catch(() => undefined);
          liveConfig = next;
        } else if (h.id !== undefined) rewrite.set(h.id, next);
      }
    }
    if (liveConfig !== undefined && liveConfig !== running) {
      await machine.syncBlockGraph().catch(() => false);
      await machine.adopt(liveConfig);
    }
    await this.store.update((m) => ({
      ...m,
      snapshots: withoutSnapshot(m.snapshots, record.id).map((s) => {
        const c = rewrite.get(s.id);
        return c ? { ...s, config: toDocument(c) } : s;
      }),
      current:
        m.current === record.id
          ? (m.snapshots.find((s) => s.name === record.parent)?.id ?? null)
          : m.current,
    }));
    // Files go last: the manifest no longer needs them.
    const keep = this.store.referencedFiles();
    for (const f of configFiles(machine.config)) keep.add(f);
    const candidates = [record.stateFile?.path, record.ramFile?.path, ...record.layers].filter(
      (f): f is string => typeof f === 'string',
    );
    for (const f of candidates) {
      if (keep.has(path.resolve(f))) continue;
      if (
        path.dirname(path.resolve(f)) !== this.store.layersDir &&
        path.dirname(path.resolve(f)) !== this.store.statesDir
      )
        continue;
      await rm(f, { force: true });
      removed.push(f);
    }
    return { merged, removed };
  }

  /** Live merge: `block-stream` the layer below `user` (down to `base`) into `user`. */
  async #stream(user: string, base: string | null): Promise<void> {
    try {
      await this.machine.qmp.runJob('block-stream', {
        device: user,
        ...(base !== null ? { 'base-node': base } : {}),
        'auto-dismiss': false,
      });
    } catch (error) {
      if (isQmpJobError(error))
        throw new SnapshotQemuError(
          { strategy: this.kind, operation: 'delete', command: 'block-stream', desc: error.desc },
          { cause: error },
        );
      throw error;
    }
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(error()), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function translate(error: unknown, name: string, ctx: TaskContext, _timeout: number): unknown {
  if (isSnapshotAbortedError(error)) return error;
  if (ctx.signal.aborted)
    return new SnapshotAbortedError(name, ctx.currentPhase, { cause: ctx.signal.reason });
  return error;
}
