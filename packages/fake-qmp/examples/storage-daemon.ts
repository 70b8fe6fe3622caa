// A fake qemu-storage-daemon: the daemon's greeting, schema and command set over the fake's
// block model (nodes, jobs, bitmaps, NBD exports). The same fake runs as an executable
// (`qmpkit-fake-qemu-storage-daemon`) for code that spawns the daemon.
// Run: node --conditions=@qmpkit/source --import tsx packages/fake-qmp/examples/storage-daemon.ts
import { createFakeStorageDaemon } from '@qmpkit/fake-qmp';
import { type Commands, type Events, tables } from '@qmpkit/qapi/qsd-7.2';
import { connect, defineBindings, isQmpCommandError } from '@qmpkit/transport';

const fake = await createFakeStorageDaemon({
  qemuVersion: '7.2',
  storage: 'memory',
  // What `--blockdev`, `--nbd-server` and `--export` open at start.
  blockdev: [{ driver: 'null-co', 'node-name': 'disk0', size: 1 << 20 }],
  nbdServer: { addr: { type: 'unix', path: '/run/example/nbd.sock' } },
  exports: [{ type: 'nbd', id: 'export0', 'node-name': 'disk0' }],
});
// Typed with the daemon's own bindings (@qmpkit/qapi/qsd-<ver>).
const qmp = await connect(fake.pair(), { bindings: defineBindings<Commands, Events>(tables) });
console.log(qmp.greeting.version.qemu); // { micro: 22, minor: 2, major: 7 }

// The system emulator's commands are not the daemon's: CommandNotFound, as from the daemon.
await qmp.executeUnchecked('query-status').catch((e: unknown) => {
  if (isQmpCommandError(e)) console.log(e.errorClass); // CommandNotFound
});

// Block jobs, bitmaps and exports behave as in the system emulator's fake.
await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'copy', size: 1 << 20 });
await qmp.execute('block-dirty-bitmap-add', { node: 'disk0', name: 'b0' });
const done = qmp.expectEvent('JOB_STATUS_CHANGE', (e) => e.data.status === 'null');
await qmp.execute('blockdev-backup', {
  'job-id': 'backup0',
  device: 'disk0',
  target: 'copy',
  sync: 'full',
});
await done.wait({ timeout: 5000 });
console.log(await qmp.execute('query-block-exports')); // [{ type: 'nbd', id: 'export0', … }]

await qmp.execute('quit');
console.log('exit code', await fake.exited); // 0
await qmp.close();
await fake.close();
