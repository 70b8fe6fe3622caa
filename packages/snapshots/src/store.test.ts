import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isSnapshotStoreError } from './errors.js';
import { MANIFEST_FORMAT, SnapshotStore } from './store.js';
import type { SnapshotRecord } from './types.js';

const root = mkdtempSync(path.join(tmpdir(), 'qmpkit-store-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function record(store: SnapshotStore, id: string, name: string): SnapshotRecord {
  return {
    id,
    name,
    strategy: 'external',
    parent: null,
    createdAt: new Date(0).toISOString(),
    description: undefined,
    qemuVersion: '7.2.22',
    machineType: 'pc-i440fx-7.2',
    configHash: 'h',
    memoryBytes: 1,
    vmStateBytes: 1,
    wasRunning: true,
    stateFile: { path: store.statePath(id), bytes: 1, sha256: 'x' },
    layers: [store.layerPath(id, 0)],
    tag: undefined,
    live: false,
    consoles: [],
    config: null,
  };
}

describe('SnapshotStore', () => {
  it('creates a private store, writes the manifest atomically and reads it back', async () => {
    const dir = path.join(root, 'a');
    const store = await SnapshotStore.open(dir);
    expect(store.snapshots()).toEqual([]);
    await store.update((m) => ({
      ...m,
      snapshots: [record(store, '00000001', 's1')],
      current: '00000001',
    }));
    const again = await SnapshotStore.open(dir);
    expect(again.find('s1')?.id).toBe('00000001');
    expect(again.manifest.current).toBe('00000001');
    const text = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as {
      format: string;
    };
    expect(text.format).toBe(MANIFEST_FORMAT);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('cleans debris: unreferenced state files, partial files, layers not in use, temp manifests, pending saves', async () => {
    const dir = path.join(root, 'b');
    const store = await SnapshotStore.open(dir);
    const kept = record(store, '00000001', 's1');
    await store.update((m) => ({
      ...m,
      snapshots: [kept],
      pending: [{ id: '00000002', name: 's2', strategy: 'external', startedAt: '' }],
    }));
    for (const f of [
      kept.stateFile?.path ?? '',
      kept.layers[0] ?? '',
      store.statePath('00000002'),
      `${store.statePath('00000003')}.partial`,
      store.layerPath('00000002', 0),
      store.layerPath('00000004', 0),
      path.join(dir, '.manifest.json.1.abcd.tmp'),
    ])
      await writeFile(f, 'x');
    const inUse = new Set([store.layerPath('00000004', 0)]);
    const reopened = await SnapshotStore.open(dir);
    const { pending, removed } = await reopened.cleanDebris(inUse);
    expect(pending.map((p) => p.name)).toEqual(['s2']);
    expect(removed.map((f) => path.basename(f)).sort()).toEqual(
      [
        '.manifest.json.1.abcd.tmp',
        '00000002-0.qcow2',
        '00000002.state',
        '00000003.state.partial',
      ].sort(),
    );
    expect((await readdir(path.join(dir, 'layers'))).sort()).toEqual([
      '00000001-0.qcow2',
      '00000004-0.qcow2',
    ]);
    expect((await SnapshotStore.open(dir)).manifest.pending).toEqual([]);
  });

  it('refuses a corrupt manifest and names the backup', async () => {
    const dir = path.join(root, 'c');
    await SnapshotStore.open(dir);
    await writeFile(path.join(dir, 'manifest.json'), '{"format":');
    const error = await SnapshotStore.open(dir).catch((e: unknown) => e);
    expect(isSnapshotStoreError(error) && error.problem).toMatch(/manifest\.json\.bak/);
  });

  it('re-validates names, ids and tags when the manifest is read (they reach HMP command lines)', async () => {
    const dir = path.join(root, 'names');
    const store = await SnapshotStore.open(dir);
    await store.update((m) => ({
      ...m,
      snapshots: [record(store, '00000001', 'good')],
    }));
    const file = path.join(dir, 'manifest.json');
    const doc = JSON.parse(await readFile(file, 'utf8')) as {
      snapshots: Record<string, unknown>[];
      pending: Record<string, unknown>[];
    };
    const first = doc.snapshots[0] ?? {};
    first.name = 'x; quit';
    first.tag = 'x; quit~00000001';
    doc.pending.push({ id: '../../etc', name: 'p', strategy: 'external', startedAt: 'now' });
    await writeFile(file, JSON.stringify(doc));
    const error = await SnapshotStore.open(dir).catch((e: unknown) => e);
    expect(isSnapshotStoreError(error)).toBe(true);
    expect(String((error as Error).message)).toContain('$.snapshots[0].name');
    expect(String((error as Error).message)).toContain('$.snapshots[0].tag');
    expect(String((error as Error).message)).toContain('$.pending[0].id');
  });
});
