/**
 * Internal snapshots: RAM and device state go into a qcow2 image, disks are snapshotted
 * inside their own qcow2 files. Two front ends of the same QEMU code:
 *
 * - `InternalHmpStrategy`: HMP `savevm`/`loadvm`/`delvm` through `human-monitor-command`.
 *   Errors come back as `{"return": "Error: …"}` and are turned into `SnapshotQemuError`;
 *   every writable non-qcow2 disk (e.g. a raw OVMF varstore) makes `savevm` impossible.
 * - `InternalJobsStrategy`: `snapshot-save`/`snapshot-load`/`snapshot-delete` jobs (QEMU ≥ 6.0)
 *   with an explicit `devices` list from the block graph model (writable qcow2 only), so a
 *   raw node no longer blocks; the job's error is read from `query-jobs` before dismissal.
 *
 * Both: QEMU's tags are `<name>~<id>` (unique per save), so an overwrite saves the new one
 * first, commits the manifest, and only then deletes the old tag; `savevm`'s silent
 * overwrite and `delvm`'s silent success on a missing tag never decide anything.
 */
import { blockGraph } from '@qmpkit/devices';
import { isQmpJobError, isQmpTimeoutError } from '@qmpkit/transport';
import { BaseStrategy, refuseMixing, toInfo, withoutSnapshot } from './base.js';
import { keepDump } from './compat.js';
import {
  isSnapshotAbortedError,
  isSnapshotQemuError,
  SnapshotAbortedError,
  SnapshotExistsError,
  SnapshotLoadFailedError,
  SnapshotNotFoundError,
  SnapshotQemuError,
  SnapshotTimeoutError,
  SnapshotUnsupportedError,
} from './errors.js';
import { preflightLoad } from './preflight.js';
import { startTask, type TaskContext } from './task.js';
import type {
  DeleteOptions,
  DeleteResult,
  LoadOptions,
  LoadResult,
  SaveOptions,
  SaveResult,
  SnapshotRecord,
  SnapshotTask,
  StrategyKind,
} from './types.js';
import {
  checkIdentity,
  checkName,
  defaultTimeout,
  ensureBlockActive,
  hmpChecked,
  imageTags,
  newId,
  pause,
  recordedBinary,
  resume,
  settleConsoles,
  vmIdentity,
} from './vm.js';

/** Node names that will hold the snapshot, as chosen for a save. */
interface Targets {
  readonly devices: readonly string[];
  readonly vmstate: string;
}

const TAG_SUFFIX = /~[0-9a-f]{8}$/;

/** Whether `tag` looks like one this package made (`<name>~<8 hex>`). */
export function isOurTag(tag: string): boolean {
  return TAG_SUFFIX.test(tag);
}

abstract class InternalStrategy extends BaseStrategy {
  /** Checks that a save can work and returns the nodes it covers. */
  protected abstract targets(options: SaveOptions): Promise<Targets>;
  protected abstract saveTag(
    tag: string,
    targets: Targets,
    timeout: number,
    ctx: TaskContext,
  ): Promise<void>;
  protected abstract loadTag(tag: string, record: SnapshotRecord, timeout: number): Promise<void>;
  /** Deletes a tag that is known to exist. */
  protected abstract deleteTag(
    tag: string,
    record: SnapshotRecord | undefined,
    timeout: number,
  ): Promise<void>;

  #running(): void {
    if (this.machine.status !== 'running' || this.machine.status === undefined)
      throw new SnapshotUnsupportedError(this.kind, ['the machine is not running']);
  }

  save(name: string, options: SaveOptions = {}): SnapshotTask<SaveResult> {
    return startTask(name, options, async (ctx) => {
      checkName(this.kind, name);
      if (options.live === true)
        throw new SnapshotUnsupportedError(this.kind, [
          'live mode (background-snapshot) exists for the external strategy only',
        ]);
      if (options.diskOnly === true)
        throw new SnapshotUnsupportedError(this.kind, [
          'disk-only snapshots are external (qcow2 overlays); internal snapshots always hold the VM state',
        ]);
      this.#running();
      const existing = this.store.find(name);
      if (existing !== undefined && options.overwrite !== true)
        throw new SnapshotExistsError(name, 'store');
      refuseMixing(this.store, this.kind, existing?.id);
      const qmp = this.machine.qmp;
      const identity = await vmIdentity(this.machine);
      const timeout = options.timeout ?? defaultTimeout(identity.memoryBytes);
      const targets = await this.targets(options);
      const blocked = (await qmp.execute('query-migrate'))['blocked-reasons'] ?? [];
      if (blocked.length > 0) throw new SnapshotUnsupportedError(this.kind, blocked);
      await ensureBlockActive(qmp, timeout);
      const vmstateKey = await keepDump(this.machine, this.store.dir, identity.machineType);
      const id = newId();
      const tag = `${name}~${id}`;
      const images = this.#imageFiles(targets);
      ctx.checkAborted();
      await this.store.update((m) => ({
        ...m,
        pending: [
          ...m.pending,
          { id, name, strategy: this.kind, startedAt: new Date().toISOString(), tag, images },
        ],
      }));
      let stopMs: number | undefined;
      let wasRunning = false;
      let resumeMs: number | undefined;
      let vmStateBytes = 0;
      let consoles: ReturnType<typeof this.machine.consoleState> = [];
      try {
        ctx.checkAborted();
        ctx.phase('pause');
        const paused = await pause(qmp, timeout);
        wasRunning = paused.wasRunning;
        stopMs = paused.stopMs;
        await settleConsoles(this.machine);
        consoles = this.machine.consoleState();
        ctx.checkAborted();
        ctx.phase('save', identity.memoryBytes);
        await this.saveTag(tag, targets, timeout, ctx);
        const tags = await imageTags(qmp);
        const saved = tags.get(tag);
        if (saved === undefined)
          throw new SnapshotQemuError({
            strategy: this.kind,
            operation: 'save',
            command: 'query-block',
            desc: `the tag '${tag}' is not in the image after the save`,
          });
        vmStateBytes = saved.vmStateSize;
        if (ctx.signal.aborted) {
          // The abort below goes to the error path, which looks for the tag again and keeps the
          // pending entry if it stays.
          await this.deleteTag(tag, undefined, timeout).catch(() => {});
          ctx.checkAborted();
        }
        ctx.phase('resume');
        if (wasRunning) resumeMs = await resume(qmp, timeout);
      } catch (error) {
        const alive =
          this.machine.status === 'running' &&
          (await qmp.execute('query-status').then(
            () => true,
            () => false,
          ));
        if (alive) {
          // QEMU is still there: remove a tag the failed save may have left, then resume. The
          // pending entry goes only once the tag is known to be gone: a tag that stays (or an
          // image that cannot be read now) keeps its entry, so the next open removes it.
          const tagGone = await imageTags(qmp).then(
            (tags) =>
              !tags.has(tag) ||
              this.deleteTag(tag, undefined, timeout).then(
                () => true,
                () => false,
              ),
            () => false,
          );
          // The save's error is what the caller needs; a guest left paused shows in query-status.
          if (wasRunning && resumeMs === undefined) await resume(qmp, timeout).catch(() => {});
          if (tagGone)
            await this.store
              .update((m) => ({ ...m, pending: m.pending.filter((p) => p.id !== id) }))
              // A pending entry that stays is only cleaned up again by the next open.
              .catch(() => {});
        }
        // Otherwise the pending entry stays: the next open removes the tag offline.
        throw this.#translate(error, name, ctx, timeout);
      }
      ctx.phase('commit');
      const record: SnapshotRecord = {
        id,
        name,
        strategy: this.kind,
        parent: this.store.byId(this.store.manifest.current)?.name ?? null,
        createdAt: new Date().toISOString(),
        description: options.description,
        qemuVersion: identity.qemuVersion,
        machineType: identity.machineType,
        configHash: identity.configHash,
        ...recordedBinary(identity),
        ...(vmstateKey !== undefined ? { vmstateKey } : {}),
        memoryBytes: identity.memoryBytes,
        vmStateBytes,
        wasRunning,
        stateFile: undefined,
        layers: [],
        tag,
        live: false,
        consoles,
        config: null,
        ...(this.kind === 'internal-jobs'
          ? { devices: [...targets.devices], vmstate: targets.vmstate }
          : {}),
      };
      await this.store.update((m) => ({
        ...m,
        snapshots: [
          ...(existing ? withoutSnapshot(m.snapshots, existing.id) : m.snapshots),
          existing
            ? { ...record, parent: existing.parent === name ? null : record.parent }
            : record,
        ],
        pending: m.pending.filter((p) => p.id !== id),
        current: id,
      }));
      // The old tag goes only after the new snapshot is committed (a crash leaves debris
      // that the next open removes, never a name without a snapshot).
      if (existing?.tag !== undefined)
        // The new snapshot is committed; an old tag that stays is unreferenced and the next open
        // removes it.
        await this.deleteTag(existing.tag, existing, timeout).catch(() => {});
      ctx.phase('done');
      return {
        snapshot: toInfo(this.store.find(name) ?? record),
        strategy: this.kind,
        timings: {
          totalMs: performance.now() - ctx.startedAt,
          downtimeMs:
            stopMs !== undefined && resumeMs !== undefined ? resumeMs - stopMs : undefined,
          phases: ctx.phaseTimes(),
        },
        bytesWritten: vmStateBytes,
      };
    });
  }

  load(name: string, options: LoadOptions = {}): SnapshotTask<LoadResult> {
    return startTask(name, options, async (ctx) => {
      const record = this.record(name);
      const tag = record.tag ?? '';
      const restarts = this.machine.status !== 'running' || options.qemu !== undefined;
      const target = await preflightLoad(
        this.machine,
        record,
        await vmIdentity(this.machine),
        options,
        { restarts, config: this.machine.config, storeDir: this.store.dir },
      );
      if (restarts) {
        // After a crash of QEMU, or onto another binary: the same configuration, paused,
        // then the load into it (the images hold the snapshot).
        ctx.phase('restart');
        await this.machine.restart(this.machine.config, {
          paused: true,
          ...(target.qemu !== undefined ? { qemu: target.qemu } : {}),
        });
      }
      const qmp = this.machine.qmp;
      const identity = await vmIdentity(this.machine);
      checkIdentity(record, identity);
      const timeout = options.timeout ?? defaultTimeout(identity.memoryBytes);
      const tags = await imageTags(qmp);
      if (!tags.has(tag))
        throw new SnapshotNotFoundError(
          name,
          this.store.snapshots().map((s) => s.name),
          `the tag '${tag}' is missing from the disk image`,
        );
      ctx.checkAborted();
      await ensureBlockActive(qmp, timeout);
      ctx.phase('pause');
      const paused = await pause(qmp, timeout);
      await settleConsoles(this.machine);
      let resumeMs: number | undefined;
      const stderrBefore = this.machine.stderr();
      try {
        ctx.phase('load', record.vmStateBytes);
        try {
          await this.loadTag(tag, record, timeout);
        } catch (error) {
          throw this.#loadFailed(error, record, stderrBefore, target.loading);
        }
        this.machine.restoreConsoleState(record.consoles);
        ctx.phase('resume');
        if (options.resume ?? record.wasRunning) resumeMs = await resume(qmp, timeout);
      } catch (error) {
        if (paused.wasRunning && this.machine.status === 'running' && resumeMs === undefined)
          // The load's error is what the caller needs; a guest left paused shows in query-status.
          await resume(qmp, timeout).catch(() => {});
        throw this.#translate(error, name, ctx, timeout, 'load');
      }
      ctx.phase('commit');
      await this.store.update((m) => ({ ...m, current: record.id }));
      ctx.phase('done');
      return {
        snapshot: toInfo(record),
        strategy: this.kind,
        timings: {
          totalMs: performance.now() - ctx.startedAt,
          downtimeMs:
            paused.stopMs !== undefined && resumeMs !== undefined
              ? resumeMs - paused.stopMs
              : undefined,
          phases: ctx.phaseTimes(),
        },
        bytesRead: record.vmStateBytes,
        verified: undefined,
        ...(target.compat !== undefined ? { compat: target.compat } : {}),
        warnings: target.warnings,
      };
    });
  }

  async delete(name: string, _options: DeleteOptions = {}): Promise<DeleteResult> {
    const started = performance.now();
    const record = this.record(name);
    // Commit first: a crash afterwards leaves an orphaned tag, which the next open removes.
    await this.store.update((m) => ({
      ...m,
      snapshots: withoutSnapshot(m.snapshots, record.id),
      current:
        m.current === record.id ? (this.store.find(record.parent ?? '')?.id ?? null) : m.current,
    }));
    if (record.tag !== undefined && this.machine.status === 'running') {
      const timeout = defaultTimeout(record.memoryBytes);
      const tags = await imageTags(this.machine.qmp);
      if (tags.has(record.tag)) {
        await ensureBlockActive(this.machine.qmp, timeout);
        await this.deleteTag(record.tag, record, timeout);
      }
    }
    return {
      snapshot: toInfo(record),
      strategy: this.kind,
      merged: [],
      removed: [],
      totalMs: performance.now() - started,
    };
  }

  /** Removes tags of saves that never committed (crash debris) from the running VM. */
  async cleanTags(candidates: readonly string[]): Promise<string[]> {
    if (this.machine.status !== 'running') return [];
    const known = new Set(this.store.snapshots().map((s) => s.tag));
    const tags = await imageTags(this.machine.qmp);
    const removed: string[] = [];
    for (const tag of tags.keys()) {
      if (known.has(tag) || !(candidates.includes(tag) || isOurTag(tag))) continue;
      // Through the job (its device list leaves raw disks out, which HMP delvm cannot);
      // best effort: a tag that stays is only wasted space, never a wrong snapshot.
      const devices = blockGraph(this.machine.config).snapshottableNodes();
      const ok = await this.machine.qmp
        .runJob('snapshot-delete', { tag, devices }, { timeout: 60_000 })
        .then(
          () => true,
          () => false,
        );
      if (!ok) continue;
      removed.push(tag);
    }
    return removed;
  }

  #imageFiles(targets: Targets): string[] {
    const graph = blockGraph(this.machine.config);
    const files: string[] = [];
    for (const node of targets.devices) {
      for (const n of graph.subtree(node)) {
        const options = graph.node(n)?.options as
          | { driver: string; filename?: unknown }
          | undefined;
        if (options?.driver === 'file' && typeof options.filename === 'string') {
          files.push(options.filename);
          break;
        }
      }
    }
    return files;
  }

  /**
   * A load QEMU failed (job error, HMP `Error:`): `SnapshotLoadFailedError` with the lines
   * QEMU wrote to its stderr during the load (the job error alone says only "Error -22 while
   * loading VM state"; the reason, e.g. "Size mismatch: …", is on stderr).
   */
  #loadFailed(
    error: unknown,
    record: SnapshotRecord,
    stderrBefore: string,
    loading: { path: string | undefined; version: string | undefined },
  ): unknown {
    const qemu = isQmpJobError(error)
      ? { command: error.command, desc: error.desc, reply: '' }
      : isSnapshotQemuError(error)
        ? { command: error.command, desc: error.desc, reply: error.output ?? '' }
        : undefined;
    if (qemu === undefined) return error;
    // HMP prints the reason into its reply, before the `Error:` line; the job on stderr.
    const reply = qemu.reply
      .split('\n')
      .filter((l) => !/^Error: ?/.test(l.trim()))
      .join('\n');
    const lines = relevantStderr(`${reply}\n${stderrSince(stderrBefore, this.machine.stderr())}`);
    return new SnapshotLoadFailedError(
      {
        snapshot: record.name,
        strategy: this.kind,
        command: qemu.command,
        desc: qemu.desc,
        qemuStderr: lines,
        loading,
      },
      { cause: error },
    );
  }

  #translate(
    error: unknown,
    name: string,
    ctx: TaskContext,
    timeout: number,
    operation: 'save' | 'load' = 'save',
  ): unknown {
    if (isSnapshotAbortedError(error)) return error;
    if (ctx.signal.aborted)
      return new SnapshotAbortedError(name, ctx.currentPhase, { cause: ctx.signal.reason });
    if (isQmpJobError(error))
      return new SnapshotQemuError(
        { strategy: this.kind, operation, command: error.command, desc: error.desc },
        { cause: error },
      );
    if (isQmpTimeoutError(error)) return new SnapshotTimeoutError(name, ctx.currentPhase, timeout);
    return error;
  }
}

/** What QEMU wrote to stderr between two readings of its (bounded) stderr ring. */
export function stderrSince(before: string, after: string): string {
  if (after.startsWith(before)) return after.slice(before.length);
  // Another process (a restart) or a ring that dropped its front: its last lines.
  return after.split('\n').slice(-20).join('\n');
}

/** QEMU's stderr lines that say something (module-load noise and blank lines dropped). */
export function relevantStderr(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '' && !/failed to open module/i.test(l))
    .join('\n');
}

/** HMP `savevm` / `loadvm` / `delvm` through `human-monitor-command`. */
export class InternalHmpStrategy extends InternalStrategy {
  readonly kind: StrategyKind = 'internal-hmp';

  protected async targets(): Promise<Targets> {
    const graph = blockGraph(this.machine.config);
    const blockers = graph.savevmBlockers();
    if (blockers.length > 0)
      throw new SnapshotUnsupportedError(
        this.kind,
        blockers.map(
          (n) =>
            `block node '${n}' (${graph.node(n)?.driver}) is writable but cannot hold internal snapshots, and HMP savevm has no device list to leave it out (use internal-jobs or external)`,
        ),
      );
    const devices = graph.snapshottableNodes();
    if (devices.length === 0)
      throw new SnapshotUnsupportedError(this.kind, [
        'no writable qcow2 disk to hold the VM state',
      ]);
    return { devices, vmstate: devices[0] ?? '' };
  }

  protected async saveTag(tag: string, _t: Targets, timeout: number): Promise<void> {
    await hmpChecked(
      this.machine.qmp,
      `savevm ${tag}`,
      { strategy: this.kind, operation: 'save' },
      timeout,
    );
  }

  protected async loadTag(tag: string, _r: SnapshotRecord, timeout: number): Promise<void> {
    await hmpChecked(
      this.machine.qmp,
      `loadvm ${tag}`,
      { strategy: this.kind, operation: 'load' },
      timeout,
    );
  }

  protected async deleteTag(
    tag: string,
    _r: SnapshotRecord | undefined,
    timeout: number,
  ): Promise<void> {
    await hmpChecked(
      this.machine.qmp,
      `delvm ${tag}`,
      { strategy: this.kind, operation: 'delete' },
      timeout,
    );
  }
}

/** `snapshot-save` / `snapshot-load` / `snapshot-delete` jobs (QEMU ≥ 6.0). */
export class InternalJobsStrategy extends InternalStrategy {
  readonly kind: StrategyKind = 'internal-jobs';

  protected async targets(options: SaveOptions): Promise<Targets> {
    if (!(await this.machine.qmp.has('snapshot-save')))
      throw new SnapshotUnsupportedError(this.kind, [
        'this QEMU has no snapshot-save (QEMU ≥ 6.0)',
      ]);
    const graph = blockGraph(this.machine.config);
    const devices = [...(options.devices ?? graph.snapshottableNodes())];
    const problems: string[] = [];
    for (const d of devices) {
      const node = graph.node(d);
      if (node === undefined) {
        problems.push(`no block node '${d}' in the VM's configuration`);
        continue;
      }
      const c = graph.classify(d);
      if (c.class !== 'snapshottable')
        problems.push(
          `block node '${d}' (${node.driver}) is ${c.class === 'read-only' ? 'read-only' : 'writable but cannot hold internal snapshots'}; leave it out of devices`,
        );
    }
    if (devices.length === 0) problems.push('no writable qcow2 disk to snapshot');
    const vmstate = options.vmstate ?? devices[0] ?? '';
    if (devices.length > 0 && !devices.includes(vmstate))
      problems.push(`the vmstate node '${vmstate}' must be one of devices (${devices.join(', ')})`);
    if (problems.length > 0) throw new SnapshotUnsupportedError(this.kind, problems);
    return { devices, vmstate };
  }

  protected async saveTag(tag: string, t: Targets, timeout: number): Promise<void> {
    await this.machine.qmp.runJob(
      'snapshot-save',
      { tag, vmstate: t.vmstate, devices: [...t.devices] },
      { timeout },
    );
  }

  protected async loadTag(tag: string, r: SnapshotRecord, timeout: number): Promise<void> {
    const devices = [...(r.devices ?? [])];
    await this.machine.qmp.runJob(
      'snapshot-load',
      { tag, vmstate: r.vmstate ?? devices[0] ?? '', devices },
      { timeout },
    );
  }

  protected async deleteTag(
    tag: string,
    r: SnapshotRecord | undefined,
    timeout: number,
  ): Promise<void> {
    const devices = [...(r?.devices ?? blockGraph(this.machine.config).snapshottableNodes())];
    try {
      await this.machine.qmp.runJob('snapshot-delete', { tag, devices }, { timeout });
    } catch (error) {
      if (isQmpJobError(error))
        throw new SnapshotQemuError(
          { strategy: this.kind, operation: 'delete', command: error.command, desc: error.desc },
          { cause: error },
        );
      throw error;
    }
  }
}
