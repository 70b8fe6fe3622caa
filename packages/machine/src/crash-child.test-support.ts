/**
 * Run as a separate Node process by `lifecycle.qemu.test.ts`: launches the test guest with a
 * state file, prints one JSON line `{ stateFile, qemuPid }` and waits to be killed (the test
 * sends SIGKILL to this process, QEMU survives it). With `bitmap` (for `leftovers.qemu.test.ts`)
 * it plugs a qcow2 data disk `<dir>/data.qcow2` (node `data`) with a persistent dirty bitmap `b0`
 * instead of the NIC.
 *
 *   node --conditions=@qmpkit/source --import tsx crash-child.test-support.ts <dir> [bitmap]
 */

import { runQemuImg } from '@qmpkit/testguest';
import { launchQemu } from '@qmpkit/testguest/test-support';
import { launch } from './machine.js';
import { guestConfig } from './qemu.test-support.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: crash-child <dir>');
const config = await guestConfig(dir, { name: 'crash-child' });
const machine = await launch(config, {
  ...launchQemu(),
  consoles: ['ser0'],
  runDir: `${dir}/run`,
  logger: { warn: () => {} },
});
if (process.argv[3] === 'bitmap') {
  const data = `${dir}/data.qcow2`;
  await runQemuImg(['create', '-q', '-f', 'qcow2', data, '8M']);
  await machine.plug({
    blockdevs: [
      { driver: 'file', 'node-name': 'data-file', filename: data },
      { driver: 'qcow2', 'node-name': 'data', file: 'data-file' },
    ],
  });
  await machine.qmp.execute('block-dirty-bitmap-add', {
    node: 'data',
    name: 'b0',
    persistent: true,
  });
} else {
  await machine.plug({
    netdevs: [{ id: 'net1', type: 'user', restrict: true }],
    devices: [{ driver: 'virtio-net-pci', id: 'nic1', netdev: 'net1' }],
  });
}
process.stdout.write(`${JSON.stringify({ stateFile: machine.stateFile, qemuPid: machine.pid })}\n`);
setInterval(() => {}, 1000);
