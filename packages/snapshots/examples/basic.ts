// Save a running VM, let a "test" change it, roll back, and see the guest continue from the
// save point. Run from the repository root:
//   node --conditions=@qmpkit/source --import tsx packages/snapshots/examples/basic.ts
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { launch } from '@qmpkit/machine';
import { openSnapshots } from '@qmpkit/snapshots';
import { createQcow2Guest } from '@qmpkit/testguest';

const COUNTER = /C=([0-9A-F]{8})\r\n/;
const dir = await mkdtemp(join(tmpdir(), 'snapshots-example-')); // private (0700)
try {
  const image = await createQcow2Guest(join(dir, 'guest.qcow2'), { intervalMs: 20 });
  const config: VmConfig = {
    machine: { type: 'pc-i440fx-7.2' }, // a versioned machine type: streams load only into the same
    accel: ['tcg'],
    memory: { size: 32 * MiB },
    chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }],
    blockdevs: [
      { driver: 'file', 'node-name': 'disk0-file', filename: image },
      { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' },
    ],
    devices: [
      { driver: 'ide-hd', id: 'boot0', drive: 'disk0', bus: 'ide.0', bootindex: 0 },
      { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
    ],
  };
  const vm = await launch(config, { consoles: ['ser0'], runDirParent: dir });
  try {
    const serial = vm.console('ser0');
    const counter = async () => Number.parseInt((await serial.expect(COUNTER)).groups[0] ?? '', 16);

    // The store keeps the manifest, state files and overlays; debris of a crashed save is
    // removed here. The strategy is chosen from what this VM and QEMU allow.
    const snapshots = await openSnapshots(vm, { dir: join(dir, 'snapshots') });
    console.log(snapshots.choice?.explanation);

    const before = await counter();
    const task = snapshots.save('before-test', { description: 'clean state' });
    for await (const p of task) console.log(`  ${p.phase} ${p.percent ?? ''}`);
    const saved = await task;
    console.log(
      `saved at counter ${before}: ${saved.strategy}, ${(saved.bytesWritten / MiB).toFixed(1)} MiB, ` +
        `downtime ${saved.timings.downtimeMs?.toFixed(0)} ms, total ${saved.timings.totalMs.toFixed(0)} ms`,
    );

    // "Run a test": the guest counts on and writes its disk.
    for (let i = 0; i < 10; i++) await counter();

    const loaded = await snapshots.load('before-test');
    console.log(
      `loaded in ${loaded.timings.totalMs.toFixed(0)} ms; next counter ${await counter()}`,
    );
    console.log(snapshots.store.snapshots().map((s) => `${s.name} (${s.strategy})`));
    await snapshots.delete('before-test');
  } finally {
    await vm.stop();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
