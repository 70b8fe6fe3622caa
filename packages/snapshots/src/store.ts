/**
 * The snapshot store of one VM: a directory with `manifest.json` (the snapshot tree), the
 * state files of external snapshots (`states/`) and the overlay images qmpkit created
 * (`layers/`). The manifest is replaced atomically (temp file, fsync, rename, directory
 * fsync; `@qmpkit/machine`'s `writeFileAtomic`), and it is the commit point of every
 * operation: a file the manifest does not reference (and the VM does not use) is debris
 * of an operation that did not finish, and `cleanDebris` removes it.
 */
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { BlockNode, VmConfig } from '@qmpkit/devices';
import { writeFileAtomic } from '@qmpkit/machine';
import { SnapshotStoreError } from './errors.js';
import type { SnapshotRecord, StrategyKind } from './types.js';

export const MANIFEST_FORMAT = 'qmpkit-snapshots/manifest';
export const MANIFEST_VERSION = 1;

/** A save that started but has not committed (crash evidence for the next open). */
export interface PendingSave {
  readonly id: string;
  readonly name: string;
  readonly strategy: StrategyKind;
  readonly startedAt: string;
  /** Internal: the tag QEMU may have written. */
  readonly tag?: string;
  /** Internal: the qcow2 files the tag may be in (for offline clean-up). */
  readonly images?: readonly string[];
}

export interface Manifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly version: typeof MANIFEST_VERSION;
  /** The snapshot the VM's state descends from (last saved or loaded), by id. */
  readonly current: string | null;
  readonly snapshots: readonly SnapshotRecord[];
  readonly pending: readonly PendingSave[];
}

const EMPTY: Manifest = {
  format: MANIFEST_FORMAT,
  version: MANIFEST_VERSION,
  current: null,
  snapshots: [],
  pending: [],
};

/** File names of every `file`-protocol node of a configuration. */
export function configFiles(config: VmConfig | undefined): string[] {
  const out: string[] = [];
  for (const node of config?.blockdevs ?? []) {
    const filename = (node as BlockNode & { filename?: unknown }).filename;
    if (node.driver === 'file' && typeof filename === 'string') out.push(path.resolve(filename));
  }
  return out;
}

/** Snapshot names (also in `vm.ts`'s `checkName`): they end up in HMP command lines and file names. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ID = /^[0-9a-f]{8}$/;
const TAG = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}~[0-9a-f]{8}$/;
const KINDS: readonly string[] = ['internal-hmp', 'internal-jobs', 'external'];

/**
 * What is wrong with the names of a manifest that parsed (`[]`: nothing). Names, ids and tags
 * end up in HMP command lines (`savevm <tag>`) and file names, so a manifest edited by hand
 * or by another program is checked again on every read, not trusted because we wrote it.
 */
export function manifestNameProblems(manifest: Manifest): string[] {
  const problems: string[] = [];
  const check = (ok: boolean, at: string, what: string, value: unknown) => {
    if (!ok) problems.push(`${at}: ${what}, got ${JSON.stringify(value)}`);
  };
  manifest.snapshots.forEach((s, i) => {
    const at = `$.snapshots[${i}]`;
    if (typeof s !== 'object' || s === null) {
      check(false, at, 'expected an object', s);
      return;
    }
    check(
      typeof s.name === 'string' && NAME.test(s.name),
      `${at}.name`,
      `expected a name matching ${NAME}`,
      s.name,
    );
    check(typeof s.id === 'string' && ID.test(s.id), `${at}.id`, 'expected 8 hex digits', s.id);
    check(
      KINDS.includes(s.strategy),
      `${at}.strategy`,
      `expected one of ${KINDS.join(', ')}`,
      s.strategy,
    );
    check(
      s.tag === undefined || (typeof s.tag === 'string' && TAG.test(s.tag)),
      `${at}.tag`,
      `expected <name>~<8 hex>`,
      s.tag,
    );
    check(
      s.parent === null || (typeof s.parent === 'string' && NAME.test(s.parent)),
      `${at}.parent`,
      'expected a snapshot name or null',
      s.parent,
    );
  });
  manifest.pending.forEach((p, i) => {
    const at = `$.pending[${i}]`;
    if (typeof p !== 'object' || p === null) {
      check(false, at, 'expected an object', p);
      return;
    }
    check(
      typeof p.name === 'string' && NAME.test(p.name),
      `${at}.name`,
      `expected a name matching ${NAME}`,
      p.name,
    );
    check(typeof p.id === 'string' && ID.test(p.id), `${at}.id`, 'expected 8 hex digits', p.id);
    check(
      p.tag === undefined || (typeof p.tag === 'string' && TAG.test(p.tag)),
      `${at}.tag`,
      `expected <name>~<8 hex>`,
      p.tag,
    );
  });
  return problems;
}

function isManifest(value: unknown): value is Manifest {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return (
    m.format === MANIFEST_FORMAT &&
    m.version === MANIFEST_VERSION &&
    Array.isArray(m.snapshots) &&
    Array.isArray(m.pending) &&
    (m.current === null || typeof m.current === 'string')
  );
}

export class SnapshotStore {
  readonly dir: string;
  readonly manifestPath: string;
  readonly statesDir: string;
  readonly layersDir: string;
  #manifest: Manifest;
  #writes: Promise<void> = Promise.resolve();

  private constructor(dir: string, manifest: Manifest) {
    this.dir = dir;
    this.manifestPath = path.join(dir, 'manifest.json');
    this.statesDir = path.join(dir, 'states');
    this.layersDir = path.join(dir, 'layers');
    this.#manifest = manifest;
  }

  /**
   * Opens (or creates, 0700) the store in `dir`. Reads the manifest; an unreadable one is a
   * `SnapshotStoreError` naming the backup (`manifest.json.bak`, the previous version).
   * Nothing is deleted here: see `cleanDebris`.
   */
  static async open(dir: string): Promise<SnapshotStore> {
    const root = path.resolve(dir);
    for (const d of [root, path.join(root, 'states'), path.join(root, 'layers')])
      await mkdir(d, { recursive: true, mode: 0o700 });
    const file = path.join(root, 'manifest.json');
    let text: string | undefined;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new SnapshotStoreError(file, 'cannot be read', { cause: error });
    }
    if (text === undefined) return new SnapshotStore(root, EMPTY);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new SnapshotStoreError(
        file,
        `is not valid JSON (the previous version is ${file}.bak)`,
        { cause: error },
      );
    }
    if (!isManifest(value))
      throw new SnapshotStoreError(
        file,
        `is not a ${MANIFEST_FORMAT} v${MANIFEST_VERSION} document`,
      );
    const problems = manifestNameProblems(value);
    if (problems.length > 0)
      throw new SnapshotStoreError(file, `has invalid names:\n  - ${problems.join('\n  - ')}`);
    return new SnapshotStore(root, value);
  }

  get manifest(): Manifest {
    return this.#manifest;
  }

  snapshots(strategy?: StrategyKind): SnapshotRecord[] {
    return this.#manifest.snapshots.filter(
      (s) => strategy === undefined || s.strategy === strategy,
    );
  }

  find(name: string): SnapshotRecord | undefined {
    return this.#manifest.snapshots.find((s) => s.name === name);
  }

  byId(id: string | null): SnapshotRecord | undefined {
    return id === null ? undefined : this.#manifest.snapshots.find((s) => s.id === id);
  }

  statePath(id: string): string {
    return path.join(this.statesDir, `${id}.state`);
  }

  layerPath(id: string, index: number): string {
    return path.join(this.layersDir, `${id}-${index}.qcow2`);
  }

  /** Applies `change` to the manifest and writes it atomically (writes are serialised). */
  update(change: (manifest: Manifest) => Manifest): Promise<void> {
    const next = this.#writes
      // Only orders this write after the last one: that one's failure went to its own caller.
      .catch(() => {})
      .then(async () => {
        const updated = change(this.#manifest);
        await writeFileAtomic(this.manifestPath, `${JSON.stringify(updated, null, 2)}\n`).catch(
          (error: unknown) => {
            throw new SnapshotStoreError(this.manifestPath, 'could not be written', {
              cause: error,
            });
          },
        );
        this.#manifest = updated;
      });
    this.#writes = next;
    return next;
  }

  /** Every file a snapshot needs: state files, frozen layers and every file its chain uses. */
  referencedFiles(): Set<string> {
    const out = new Set<string>();
    for (const s of this.#manifest.snapshots) {
      if (s.stateFile) out.add(path.resolve(s.stateFile.path));
      if (s.ramFile) out.add(path.resolve(s.ramFile.path));
      for (const l of s.layers) out.add(path.resolve(l));
      const config = (s.config as { config?: VmConfig } | null)?.config;
      for (const f of configFiles(config)) out.add(f);
    }
    return out;
  }

  /**
   * Removes what no committed snapshot references and the VM does not use (`inUse`: the
   * files of the machine's configuration): partial and orphaned state files, overlays of
   * saves that did not finish, temp files of interrupted manifest writes. Returns the
   * pending saves found (the caller cleans up what QEMU may hold, e.g. internal tags) and
   * the removed files. Pending entries are dropped from the manifest.
   */
  async cleanDebris(
    inUse: ReadonlySet<string>,
  ): Promise<{ pending: readonly PendingSave[]; removed: string[] }> {
    const keep = this.referencedFiles();
    const removed: string[] = [];
    for (const dir of [this.statesDir, this.layersDir]) {
      for (const entry of await readdir(dir)) {
        const file = path.join(dir, entry);
        if (keep.has(file) || inUse.has(file)) continue;
        await rm(file, { force: true });
        removed.push(file);
      }
    }
    for (const entry of await readdir(this.dir)) {
      if (entry.startsWith('.manifest.json.') && entry.endsWith('.tmp')) {
        await rm(path.join(this.dir, entry), { force: true });
        removed.push(path.join(this.dir, entry));
      }
    }
    const pending = this.#manifest.pending;
    if (pending.length > 0) await this.update((m) => ({ ...m, pending: [] }));
    return { pending, removed };
  }
}
