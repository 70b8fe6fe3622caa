/**
 * Run as a separate Node process by `lifecycle.qemu.test.ts`: launches the test guest with a
 * state file, prints one JSON line `{ stateFile, qemuPid }` and waits to be killed (the test
 * sends SIGKILL to this process, QEMU survives it).
 *
 *   node --conditions=@qmpkit/source --import tsx crash-child.test-support.ts <dir>
 */

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
await machine.plug({
  netdevs: [{ id: 'net1', type: 'user', restrict: true }],
  devices: [{ driver: 'virtio-net-pci', id: 'nic1', netdev: 'net1' }],
});
process.stdout.write(`${JSON.stringify({ stateFile: machine.stateFile, qemuPid: machine.pid })}\n`);
setInterval(() => {}, 1000);
