/**
 * The crash child (see `crash.test-support.ts`, which starts it): launches the machine of a
 * scenario with a state file in `<dir>/run`, runs the scenario, prints one JSON line
 * `{ stateFile, qemuPid }` when the scenario is ready and waits to be killed (the test sends
 * SIGKILL to this process, QEMU survives it).
 *
 *   node --conditions=@qmpkit/source --import tsx crash-child.test-support.ts <dir> <scenario> [<module>]
 *
 * Without `<module>` the scenarios are this file's: `nic` (for `lifecycle.qemu.test.ts`) plugs a
 * NIC into the test guest; `bitmap` (for `leftovers.qemu.test.ts`) plugs a qcow2 data disk
 * `<dir>/data.qcow2` (node `data`) with a persistent dirty bitmap `b0` instead. With
 * `<module>`, the scenario is taken from that module's `crashScenarios`.
 */
import path from 'node:path';
import { runQemuImg } from '@qmpkit/testguest';
import { launchQemu } from '@qmpkit/testguest/test-support';
import type { CrashScenario } from './crash.test-support.js';
import { launch } from './machine.js';
import { guestConfig } from './qemu.test-support.js';

const guest = (dir: string) => guestConfig(dir, { name: 'crash-child' });

const crashScenarios: Record<string, CrashScenario> = {
  nic: {
    config: guest,
    consoles: ['ser0'],
    async run(machine, _dir, ready) {
      await machine.plug({
        netdevs: [{ id: 'net1', type: 'user', restrict: true }],
        devices: [{ driver: 'virtio-net-pci', id: 'nic1', netdev: 'net1' }],
      });
      ready();
    },
  },
  bitmap: {
    config: guest,
    consoles: ['ser0'],
    async run(machine, dir, ready) {
      const data = path.join(dir, 'data.qcow2');
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
      ready();
    },
  },
};

const [dir, name, module] = process.argv.slice(2);
if (dir === undefined || name === undefined)
  throw new Error('usage: crash-child <dir> <scenario> [<module>]');
const scenarios: Record<string, CrashScenario | undefined> =
  module === undefined
    ? crashScenarios
    : ((await import(path.resolve(module))) as { crashScenarios: Record<string, CrashScenario> })
        .crashScenarios;
const scenario = scenarios[name];
if (scenario === undefined) throw new Error(`crash-child: no scenario ${name}`);
const machine = await launch(await scenario.config(dir), {
  ...launchQemu(),
  ...(scenario.consoles === undefined ? {} : { consoles: scenario.consoles }),
  runDir: path.join(dir, 'run'),
  logger: { warn: () => {} },
});
let held = false;
await scenario.run(machine, dir, () => {
  if (held) return;
  held = true;
  process.stdout.write(
    `${JSON.stringify({ stateFile: machine.stateFile, qemuPid: machine.pid })}\n`,
  );
  // Held here (an open handle keeps Node running) until the test kills this process.
  setInterval(() => {}, 1000);
});
if (!held) {
  process.stdout.write(`crash-child: scenario ${name} ended before it was ready\n`);
  process.exit(1);
}
