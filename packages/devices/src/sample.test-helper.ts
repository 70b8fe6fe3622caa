/** A configuration that uses every part of the model, shared by the unit tests. */
import { MiB, type VmConfig } from './model.js';

export function sampleConfig(): VmConfig {
  return {
    machine: { type: 'pc-i440fx-7.2', pflash0: 'fw-code', pflash1: 'fw-vars' },
    accel: ['kvm', { type: 'tcg', props: { thread: 'single' } }],
    cpu: 'qemu64',
    memory: { size: 256 * MiB },
    smp: { cpus: 2, sockets: 1, cores: 2, threads: 1 },
    boot: { menu: false, strict: true },
    paused: true,
    incoming: 'defer',
    qmp: { chardev: 'qmp0' },
    objects: [
      { 'qom-type': 'iothread', id: 'io0' },
      { 'qom-type': 'throttle-group', id: 'tg0', limits: { 'iops-total': 1000 } },
    ],
    chardevs: [
      { id: 'ser0', backend: { type: 'file', data: { out: '/var/log/vm,1/serial=0.log' } } },
      { id: 'con0', backend: { type: 'ringbuf', data: { size: 65536 } } },
    ],
    netdevs: [{ id: 'net0', type: 'user', hostfwd: [{ str: 'tcp:127.0.0.1:2222-:22' }] }],
    blockdevs: [
      // Declared top-first on purpose: the argv must still create children first.
      { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file', backing: 'base' },
      { driver: 'file', 'node-name': 'disk0-file', filename: '/images/disk0.qcow2' },
      { driver: 'qcow2', 'node-name': 'base', file: 'base-file', backing: null, 'read-only': true },
      {
        driver: 'file',
        'node-name': 'base-file',
        filename: '/images/base.qcow2',
        'read-only': true,
      },
      { driver: 'throttle', 'node-name': 'data-throttle', file: 'data', 'throttle-group': 'tg0' },
      { driver: 'qcow2', 'node-name': 'data', file: 'data-file' },
      { driver: 'file', 'node-name': 'data-file', filename: '/images/data.qcow2' },
      { driver: 'raw', 'node-name': 'scratch', file: 'scratch-file' },
      { driver: 'file', 'node-name': 'scratch-file', filename: '/images/scratch.raw' },
      { driver: 'file', 'node-name': 'fw-code-file', filename: '/fw/code.fd', 'read-only': true },
      { driver: 'raw', 'node-name': 'fw-code', file: 'fw-code-file', 'read-only': true },
      { driver: 'file', 'node-name': 'fw-vars-file', filename: '/fw/vars.fd' },
      { driver: 'raw', 'node-name': 'fw-vars', file: 'fw-vars-file' },
    ],
    devices: [
      { driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0', iothread: 'io0', bootindex: 1 },
      // On a controller declared after it: the argv must put the controller first.
      { driver: 'scsi-hd', id: 'sd0', drive: 'data-throttle', bus: 'scsi0.0', 'scsi-id': 0 },
      { driver: 'virtio-scsi-pci', id: 'scsi0', iothread: 'io0' },
      { driver: 'ide-hd', id: 'ide0', drive: 'scratch', bus: 'ide.0', unit: 0 },
      { driver: 'virtio-net-pci', id: 'nic0', netdev: 'net0', mac: '52:54:00:12:34:56' },
      { driver: 'isa-serial', id: 'serial0', chardev: 'ser0' },
      { driver: 'virtio-serial-pci', id: 'vser0' },
      { driver: 'virtconsole', id: 'vcon0', chardev: 'con0', bus: 'vser0.0' },
      { driver: 'pvpanic', id: 'panic0', props: { ioport: 1285 } },
    ],
    staticArgs: ['-name', 'guest=sample,debug-threads=on'],
  };
}
