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

function family(kind: StrategyKind): 'internal' | 'external' {
  return kind === 'external' ? 'external' : 'internal';
}

/**
 * Internal and external snapshots of one VM cannot live side by side, so a save of the other
 * family is refused (`SnapshotUnsupportedError`) instead of making a snapshot that can never
 * load. QEMU looks for an internal snapshot's tag in the images the VM runs on *now*:
 * - internal after external: the tag goes into the current top overlay; loading an external
 *   snapshot puts the VM on a fresh overlay without it, and deleting an external layer merges
 *   or removes the file that holds it;
 * - external after internal: the images holding the tags become frozen backing layers under
 *   new overlays, where `loadvm`/`snapshot-load` no longer look.
 * `except`: the id of a snapshot the save replaces (an overwrite across strategies).
 */
export function refuseMixing(store: SnapshotStore, kind: StrategyKind, except?: string): void {
  const others = store
    .snapshots()
    .filter((s) => s.id !== except && family(s.strategy) !== family(kind));
  if (others.length === 0) return;
  const names = others.map((s) => `'${s.name}'`).join(', ');
  throw new SnapshotUnsupportedError(kind, [
    family(kind) === 'internal'
      ? `the store holds external snapshots (${names}): an internal snapshot would be written into the current overlay, which a load of an external snapshot replaces and a delete of one merges away, so it could never be loaded; save with the external strategy, or delete the external snapshots first`
      : `the store holds internal snapshots (${names}): an external snapshot freezes the images that hold them under new overlays, where QEMU no longer finds them, so they could never be loaded again; save with an internal strategy, or delete the internal snapshots first`,
  ]);
}
