/** What the three strategies share: the store, lookups, the record → info projection. */
import type { Machine } from '@qmpkit/machine';
import { SnapshotNotFoundError, SnapshotUnsupportedError } from './errors.js';
import type { SnapshotStore } from './store.js';
import type {
  DeleteOptions,
  DeleteResult,
  LoadOptions,
  LoadResult,
  SaveOptions,
  SaveResult,
  SnapshotInfo,
  SnapshotRecord,
  SnapshotStrategy,
  SnapshotTask,
  StrategyKind,
} from './types.js';

export function toInfo(record: SnapshotRecord): SnapshotInfo {
  const {
    consoles: _consoles,
    config: _config,
    ...info
  } = record as SnapshotRecord & {
    devices?: unknown;
    vmstate?: unknown;
  };
  const {
    devices: _d,
    vmstate: _v,
    ...rest
  } = info as typeof info & {
    devices?: unknown;
    vmstate?: unknown;
  };
  return rest;
}

export abstract class BaseStrategy implements SnapshotStrategy {
  abstract readonly kind: StrategyKind;
  readonly machine: Machine;
  readonly store: SnapshotStore;

  constructor(machine: Machine, store: SnapshotStore) {
    this.machine = machine;
    this.store = store;
  }

  abstract save(name: string, options?: SaveOptions): SnapshotTask<SaveResult>;
  abstract load(name: string, options?: LoadOptions): SnapshotTask<LoadResult>;
  abstract delete(name: string, options?: DeleteOptions): Promise<DeleteResult>;

  async list(): Promise<SnapshotInfo[]> {
    return this.store.snapshots(this.kind).map(toInfo);
  }

  /** The record of `name`, which must be this strategy's. */
  protected record(name: string): SnapshotRecord {
    const record = this.store.find(name);
    if (record === undefined)
      throw new SnapshotNotFoundError(
        name,
        this.store.snapshots().map((s) => s.name),
      );
    if (record.strategy !== this.kind)
      throw new SnapshotUnsupportedError(this.kind, [
        `snapshot '${name}' was saved by the ${record.strategy} strategy; use that one`,
      ]);
    return record;
  }
}

/** Children of `id` get `id`'s parent; `current` moves up too. */
export function withoutSnapshot(
  snapshots: readonly SnapshotRecord[],
  id: string,
): SnapshotRecord[] {
  const gone = snapshots.find((s) => s.id === id);
  const parentName = gone?.parent ?? null;
  return snapshots
    .filter((s) => s.id !== id)
    .map((s) => (gone !== undefined && s.parent === gone.name ? { ...s, parent: parentName } : s));
}
