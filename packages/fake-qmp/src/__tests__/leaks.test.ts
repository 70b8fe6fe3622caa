/**
 * Failing commands leave no state behind (references, names, numbers): each case here is a
 * bug that was found by auditing the model's failure paths, and is also a contract scenario
 * ("failed commands leave nothing behind") compared with a real QEMU 7.2.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, type QmpClient } from '@qmpkit/transport';
import { afterEach, describe, expect, it } from 'vitest';
import { createFakeQmp, type FakeQmp } from '../server/fake.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function client(options: Parameters<typeof createFakeQmp>[0] = {}): Promise<{
  fake: FakeQmp;
  qmp: QmpClient;
}> {
  const fake = await createFakeQmp({ machine: 'none', storage: 'memory', ...options });
  cleanup.push(() => fake.close());
  const qmp = await connect(fake.pair());
  cleanup.push(async () => {
    await qmp.close();
  });
  return { fake, qmp };
}

const names = async (qmp: QmpClient) =>
  (await qmp.execute('query-named-block-nodes', { flat: true })).map((n) => n['node-name']);

describe('failure paths leak nothing', () => {
  it('a blockdev-add refused for a duplicate name drops its reference to the child', async () => {
    const { qmp } = await client();
    await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'n0' });
    await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'x' });
    await expect(
      qmp.execute('blockdev-add', { driver: 'raw', file: 'n0', 'node-name': 'x' }),
    ).rejects.toMatchObject({ desc: "Duplicate nodes with node-name='x'" });
    // Before the fix: "Block device n0 is in use".
    await expect(qmp.execute('blockdev-del', { 'node-name': 'n0' })).resolves.toEqual({});
    expect(await names(qmp)).toEqual(['x']);
  });

  it('a refused blockdev-snapshot-sync overlay leaves no nodes behind', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-leaks-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'ov.raw'), Buffer.alloc(1 << 20));
    const { qmp } = await client({ storage: 'host' });
    await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'n1' });
    await expect(
      qmp.execute('blockdev-snapshot-sync', {
        'node-name': 'n1',
        'snapshot-file': path.join(dir, 'ov.raw'),
        'snapshot-node-name': 'ov',
        format: 'raw',
        mode: 'existing',
      }),
    ).rejects.toMatchObject({ desc: 'The overlay does not support backing images' });
    // Before the fix: the overlay 'ov' and its file node stayed in the graph.
    expect(await names(qmp)).toEqual(['n1']);
    await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'ov' });
  });

  it('an anonymous device_add failing on its drive uses up its device[N] like QEMU', async () => {
    const { qmp } = await client({ machine: 'pc', paused: true });
    await qmp.execute('device_add', { driver: 'qemu-xhci', id: 'usb' });
    await expect(
      qmp.execute('device_add', { driver: 'usb-storage', drive: 'nosuch' }),
    ).rejects.toMatchObject({ desc: "Property 'usb-storage.drive' can't find value 'nosuch'" });
    // A bus error comes before QEMU creates the device: no number used.
    await expect(
      qmp.execute('device_add', { driver: 'usb-tablet', bus: 'nosuch.0' }),
    ).rejects.toMatchObject({ desc: "Bus 'nosuch.0' not found" });
    await qmp.execute('device_add', { driver: 'usb-tablet' });
    const anon = await qmp.execute('qom-list', { path: '/machine/peripheral-anon' });
    expect(anon.map((p) => p.name)).toEqual(['type', 'device[1]']);
  });
});
