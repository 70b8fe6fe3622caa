/**
 * `openSnapshots`: the store of one VM, cleaned of crash debris, with the chosen strategy
 * for saves and the right one for each stored snapshot's load and delete.
 */
import { type Machine, runQemuImg } from '@qmpkit/machine';
import { refuseMixing, toInfo } from './base.js';
import { type ChooseOptions, chooseStrategy, type StrategyChoice } from './choose.js';
import { SnapshotNotFoundError, SnapshotUnsupportedError } from './errors.js';
import { ExternalStrategy } from './external.js';
import { InternalHmpStrategy, InternalJobsStrategy } from './internal.js';
import { configFiles, SnapshotStore } from './store.js';
import { startTask } from './task.js';
import type {
  DeleteOptions,
  DeleteResult,
  LoadOptions,
  LoadResult,
  SaveOptions,
  SaveResult,
  SnapshotInfo,
  SnapshotStrategy,
  SnapshotTask,
  StrategyKind,
} from './types.js';

export interface OpenSnapshotsOptions extends ChooseOptions {
  /** The store directory of this VM (created 0700). */
  readonly dir: string;
  /** Strategy for saves: `auto` (default) asks `chooseStrategy`. */
  readonly strategy?: StrategyKind | 'auto';
  /** `qemu-img` binary for overlays and offline merges (default `qemu-img`). */
  readonly qemuImg?: string;
}

/** What `open` found and removed from an interrupted earlier run. */
export interface DebrisReport {
  readonly files: readonly string[];
  /** Internal snapshot tags of saves that never committed. */
  readonly tags: readonly string[];
  /** Saves that had started and not committed. */
  readonly pending: readonly string[];
}

/** Creates one strategy on a store (no debris clean-up, no probing). */
export function createStrategy(
  kind: StrategyKind,
  machine: Machine,
  store: SnapshotStore,
  options: { qemuImg?: string } = {},
): SnapshotStrategy {
  switch (kind) {
    case 'internal-hmp':
      return new InternalHmpStrategy(machine, store);
    case 'internal-jobs':
      return new InternalJobsStrategy(machine, store);
    case 'external':
      return new ExternalStrategy(
        machine,
        store,
        options.qemuImg ? { qemuImg: options.qemuImg } : {},
      );
  }
}

async function offlineDeleteTag(qemuImg: string, image: string, tag: string): Promise<boolean> {
  try {
    await runQemuImg(['snapshot', '-d', tag, image], { qemuImg });
    return true;
  } catch {
    // The tag of a save that never committed is usually not there at all (the save died
    // before QEMU wrote it), which qemu-img reports as a failure; a tag that is there and
    // stays only costs space and is reported again as debris by the next open.
    return false;
  }
}

/** All strategies over one store; saves go to the chosen one. */
export class Snapshots implements SnapshotStrategy {
  readonly store: SnapshotStore;
  readonly choice: StrategyChoice | undefined;
  readonly kind: StrategyKind;
  readonly debris: DebrisReport;
  readonly #strategies: Map<StrategyKind, SnapshotStrategy>;

  constructor(
    store: SnapshotStore,
    kind: StrategyKind,
    strategies: Map<StrategyKind, SnapshotStrategy>,
    choice: StrategyChoice | undefined,
    debris: DebrisReport,
  ) {
    this.store = store;
    this.kind = kind;
    this.#strategies = strategies;
    this.choice = choice;
    this.debris = debris;
  }

  /** One of the three strategies on this store. */
  strategy(kind: StrategyKind): SnapshotStrategy {
    const s = this.#strategies.get(kind);
    if (s === undefined)
      throw new SnapshotUnsupportedError(kind, [`'${String(kind)}' is not a snapshot strategy`]);
    return s;
  }

  #of(name: string): SnapshotStrategy {
    const record = this.store.find(name);
    if (record === undefined)
      throw new SnapshotNotFoundError(
        name,
        this.store.snapshots().map((s) => s.name),
      );
    return this.strategy(record.strategy);
  }

  save(name: string, options?: SaveOptions): SnapshotTask<SaveResult> {
    const existing = this.store.find(name);
    if (existing !== undefined && existing.strategy !== this.kind && options?.overwrite === true) {
      // Another strategy's snapshot of that name: it is deleted first (not atomic; an
      // overwrite within one strategy is). A save the other family's snapshots would make
      // unloadable is refused before anything is deleted.
      try {
        refuseMixing(this.store, this.kind, existing.id);
      } catch (error) {
        return startTask(name, options, () => Promise.reject(error));
      }
      const chosen = this.strategy(this.kind);
      const old = this.strategy(existing.strategy);
      return startTask(name, options, async () => {
        await old.delete(name);
        return chosen.save(name, options).result;
      });
    }
    return this.strategy(this.kind).save(name, options);
  }

  load(name: string, options?: LoadOptions): SnapshotTask<LoadResult> {
    let strategy: SnapshotStrategy;
    try {
      strategy = this.#of(name);
    } catch (error) {
      return startTask(name, options ?? {}, () => Promise.reject(error));
    }
    return strategy.load(name, options);
  }

  delete(name: string, options?: DeleteOptions): Promise<DeleteResult> {
    try {
      return this.#of(name).delete(name, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Every snapshot in the store, of all strategies, oldest first. */
  async list(): Promise<SnapshotInfo[]> {
    return this.store.snapshots().map(toInfo);
  }
}

/**
 * Opens the store in `dir` for `machine`: removes debris of saves that never committed
 * (files the manifest does not reference and the VM does not use, internal tags of
 * unfinished saves), then picks the strategy for saves (`chooseStrategy`, unless given).
 */
export async function openSnapshots(
  machine: Machine,
  options: OpenSnapshotsOptions,
): Promise<Snapshots> {
  const store = await SnapshotStore.open(options.dir);
  // A QEMU of this VM's run directory other than the machine's own (left by a manager killed
  // in the middle of a load) may hold files the clean-up below would delete: it goes first.
  await machine.endStrayQemus();
  const { pending, removed } = await store.cleanDebris(new Set(configFiles(machine.config)));
  const qemuImg = options.qemuImg ?? 'qemu-img';
  const strategies = new Map<StrategyKind, SnapshotStrategy>();
  for (const kind of ['external', 'internal-jobs', 'internal-hmp'] as const)
    strategies.set(kind, createStrategy(kind, machine, store, { qemuImg }));
  const pendingTags = pending.flatMap((p) => (p.tag !== undefined ? [p.tag] : []));
  let tags: string[] = [];
  if (machine.status === 'running') {
    tags = await (strategies.get('internal-hmp') as InternalHmpStrategy).cleanTags(pendingTags);
  } else {
    for (const p of pending)
      if (p.tag !== undefined)
        for (const image of p.images ?? []) await offlineDeleteTag(qemuImg, image, p.tag);
    tags = pendingTags;
  }
  let choice: StrategyChoice | undefined;
  let kind: StrategyKind;
  if (options.strategy === undefined || options.strategy === 'auto') {
    choice = await chooseStrategy(machine, options);
    kind = choice.kind;
  } else kind = options.strategy;
  return new Snapshots(store, kind, strategies, choice, {
    files: removed,
    tags,
    pending: pending.map((p) => p.name),
  });
}
