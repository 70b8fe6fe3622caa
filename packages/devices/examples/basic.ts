/**
 * The README example: a VM described once, then its command line, a hot-plug, the block
 * graph and the stored form. Pure: prints, starts nothing.
 *
 *   node --conditions=@qmpkit/source --import tsx packages/devices/examples/basic.ts
 */
import {
  blockGraph,
  fromJSON,
  MiB,
  plug,
  toArgv,
  toJSON,
  unplug,
  type VmConfig,
  validate,
} from '@qmpkit/devices';

const config: VmConfig = {
  machine: { type: 'pc-i440fx-7.2', pflash0: 'fw-code', pflash1: 'fw-vars' },
  accel: ['kvm', 'tcg'],
  memory: { size: 512 * MiB },
  paused: true,
  qmp: { chardev: 'qmp0' },
  objects: [{ 'qom-type': 'iothread', id: 'io0' }],
  chardevs: [{ id: 'ser0', backend: { type: 'file', data: { out: '/var/log/vm,1/serial.log' } } }],
  netdevs: [{ id: 'net0', type: 'user', hostfwd: [{ str: 'tcp:127.0.0.1:2222-:22' }] }],
  blockdevs: [
    { driver: 'file', 'node-name': 'disk0-file', filename: '/images/disk0.qcow2' },
    { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' },
    {
      driver: 'file',
      'node-name': 'fw-code-file',
      filename: '/usr/share/OVMF/OVMF_CODE.fd',
      'read-only': true,
    },
    { driver: 'raw', 'node-name': 'fw-code', file: 'fw-code-file', 'read-only': true },
    { driver: 'file', 'node-name': 'fw-vars-file', filename: '/images/vars.fd' },
    { driver: 'raw', 'node-name': 'fw-vars', file: 'fw-vars-file' },
  ],
  devices: [
    { driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0', iothread: 'io0', bootindex: 1 },
    { driver: 'virtio-net-pci', id: 'nic0', netdev: 'net0' },
    { driver: 'isa-serial', id: 'serial0', chardev: 'ser0' },
  ],
};

// Every problem at once, each naming object and field (empty here).
console.log(validate(config));

// The argv for spawn('qemu-system-x86_64', argv): the launcher picks the QMP channel,
// here a listening socket it passes as fd 3.
const argv = toArgv(config, {
  qmp: {
    backend: {
      type: 'socket',
      data: { addr: { type: 'fd', data: { str: '3' } }, server: true, wait: false },
    },
  },
});
console.log(argv);

// Hot-plug: the new configuration (store it) and the QMP commands, in dependency order.
const added = plug(config, {
  blockdevs: [
    { driver: 'file', 'node-name': 'disk1-file', filename: '/images/disk1.qcow2' },
    { driver: 'qcow2', 'node-name': 'disk1', file: 'disk1-file' },
  ],
  devices: [{ driver: 'virtio-blk-pci', id: 'vd1', drive: 'disk1' }],
});
for (const step of added.steps) console.log(step.execute, JSON.stringify(step.arguments));

// Unplug: device_del first (wait for DEVICE_DELETED), then the nodes, top first.
const removed = unplug(added.config, { devices: ['vd1'] });
for (const step of removed.steps) {
  console.log(
    step.execute,
    JSON.stringify(step.arguments),
    'awaitEvent' in step ? step.awaitEvent : '',
  );
}

// The block graph: what snapshots have to deal with.
const graph = blockGraph(added.config);
console.log('snapshottable:', graph.snapshottableNodes()); // ['disk0', 'disk1']
console.log('blocks HMP savevm:', graph.savevmBlockers()); // ['fw-vars']
console.log('chain of vd0:', graph.chain(graph.topOf('vd0') ?? ''));

// The stored form round-trips.
const stored = toJSON(added.config);
console.log(JSON.stringify(fromJSON(stored)) === JSON.stringify(added.config));
