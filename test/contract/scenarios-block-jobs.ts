/**
 * Contract scenarios for block jobs (mirror, commit, stream, backup), dirty bitmaps and NBD
 * exports: appended to `scenarios` in scenarios.ts. Images are null-co nodes (no data) or
 * small qcow2 files made with the binary's qemu-img in the peer's directory.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { QemuBinary } from '@qmpkit/testguest/test-support';
import type { Scenario, Step } from './runner.js';

const NEGOTIATE: Step = { send: '{"execute":"qmp_capabilities"}' };

const exec = (command: string, args?: unknown, id?: unknown): string =>
  JSON.stringify({
    execute: command,
    ...(args === undefined ? {} : { arguments: args }),
    ...(id === undefined ? {} : { id }),
  });

const MIB = 1024 * 1024;
const nullNode = (name: string, size = MIB): string =>
  exec('blockdev-add', { driver: 'null-co', 'node-name': name, size });

/** qcow2 images: `base` ← `mid` ← `top` (backing files relative to the directory). */
function chain(...names: string[]) {
  return (dir: string, binary: QemuBinary) => {
    let backing: string | undefined;
    for (const name of names) {
      const file = path.join(dir, `${name}.qcow2`);
      execFileSync(binary.img, [
        'create',
        '-q',
        '-f',
        'qcow2',
        ...(backing ? ['-b', path.join(dir, backing), '-F', 'qcow2'] : []),
        file,
        '1M',
      ]);
      backing = `${name}.qcow2`;
    }
  };
}

const qcow2File = (name: string): string[] => [
  exec('blockdev-add', {
    driver: 'file',
    filename: `$DIR/${name}.qcow2`,
    'node-name': `${name}-file`,
  }),
];

export const blockJobScenarios: Scenario[] = [
  {
    name: 'block jobs: mirror to ready, query-block-jobs, job-complete pivots, dismiss',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: nullNode('src') },
      { send: nullNode('tgt') },
      {
        send: exec('blockdev-mirror', {
          'job-id': 'm1',
          device: 'src',
          target: 'tgt',
          sync: 'full',
          'auto-dismiss': false,
        }),
        until: ['BLOCK_JOB_READY'],
      },
      { send: exec('query-block-jobs') },
      { send: exec('query-jobs') },
      { send: exec('job-complete', { id: 'm1' }), until: ['"concluded"'] },
      { send: exec('query-jobs') },
      { send: exec('job-dismiss', { id: 'm1' }), until: ['"null"'] },
      { send: exec('query-block-jobs') },
    ],
  },
  {
    name: 'block jobs: mirror cancelled while running and once ready, set-speed, verbs in wrong states',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: nullNode('src') },
      { send: nullNode('tgt') },
      { send: nullNode('t2') },
      {
        send: exec('blockdev-mirror', {
          'job-id': 'm1',
          device: 'src',
          target: 'tgt',
          sync: 'full',
          speed: 1,
          'auto-dismiss': false,
        }),
      },
      { send: exec('query-block-jobs') },
      { send: exec('job-complete', { id: 'm1' }) },
      { send: exec('block-job-set-speed', { device: 'm1', speed: -1 }) },
      { send: exec('block-job-set-speed', { device: 'nope', speed: 0 }) },
      {
        send: exec('blockdev-mirror', {
          'job-id': 'm2',
          device: 'src',
          target: 't2',
          sync: 'full',
        }),
      },
      { send: exec('blockdev-del', { 'node-name': 'tgt' }) },
      { send: exec('job-cancel', { id: 'm1' }), until: ['"concluded"'] },
      { send: exec('query-jobs') },
      { send: exec('job-dismiss', { id: 'm1' }), until: ['"null"'] },
      {
        send: exec('blockdev-mirror', {
          'job-id': 'm3',
          device: 'src',
          target: 't2',
          sync: 'full',
          'auto-dismiss': false,
        }),
        until: ['BLOCK_JOB_READY'],
      },
      { send: exec('block-job-cancel', { device: 'm3' }), until: ['"concluded"'] },
      { send: exec('query-jobs') },
      { send: exec('job-dismiss', { id: 'm3' }), until: ['"null"'] },
      {
        send: exec('blockdev-mirror', {
          'job-id': 'm4',
          device: 'src',
          target: 't2',
          sync: 'full',
        }),
        until: ['BLOCK_JOB_READY'],
      },
      { send: exec('job-cancel', { id: 'm4' }), until: ['"null"'] },
      { send: exec('query-named-block-nodes') },
      { send: exec('job-cancel', { id: 'm4' }) },
    ],
  },
  {
    name: 'block jobs: mirror argument errors (same node, sizes, unknown nodes, ids, sync modes, copy-mode)',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: nullNode('src') },
      { send: nullNode('small', 4096) },
      { send: nullNode('tgt') },
      {
        send: exec('blockdev-mirror', {
          'job-id': 'a',
          device: 'src',
          target: 'src',
          sync: 'full',
        }),
      },
      {
        send: exec('blockdev-mirror', {
          'job-id': 'a',
          device: 'src',
          target: 'small',
          sync: 'full',
        }),
        until: ['"null"'],
      },
      {
        send: exec('blockdev-mirror', {
          'job-id': 'a',
          device: 'nope',
          target: 'tgt',
          sync: 'full',
        }),
      },
      {
        send: exec('blockdev-mirror', {
          'job-id': 'a',
          device: 'src',
          target: 'nope',
          sync: 'full',
        }),
      },
      {
        send: exec('blockdev-mirror', {
          'job-id': '1a',
          device: 'src',
          target: 'tgt',
          sync: 'full',
        }),
      },
      { send: exec('blockdev-mirror', { device: 'src', target: 'tgt', sync: 'incremental' }) },
      {
        send: exec('blockdev-mirror', {
          device: 'src',
          target: 'tgt',
          sync: 'full',
          granularity: 1000,
        }),
      },
      { send: exec('blockdev-mirror', { device: 'src', target: 'tgt', sync: 'full' }) },
      {
        send: exec('blockdev-mirror', {
          'job-id': 'src',
          device: 'src',
          target: 'tgt',
          sync: 'full',
          'copy-mode': 'write-blocking',
          'auto-finalize': false,
        }),
        until: ['BLOCK_JOB_READY'],
      },
      { send: exec('query-block-jobs') },
      // BLOCK_JOB_PENDING comes a moment after the reply.
      { send: exec('job-complete', { id: 'src' }), until: ['BLOCK_JOB_PENDING'] },
      { send: exec('query-jobs') },
      { send: exec('job-finalize', { id: 'src' }), until: ['"null"'] },
      { send: exec('query-named-block-nodes') },
    ],
  },
  {
    name: 'block jobs: commit and stream argument errors; active commit to ready, job-complete pivots to the base',
    setup: { machine: 'none', prepare: chain('base', 'mid', 'top') },
    normalize: [[/"actual-size": \d+/g, '"actual-size": N']],
    steps: [
      NEGOTIATE,
      ...qcow2File('top').map((send) => ({ send })),
      { send: exec('blockdev-add', { driver: 'qcow2', file: 'top-file', 'node-name': 'top' }) },
      { send: exec('query-named-block-nodes', { flat: true }) },
      { send: exec('block-commit', { 'job-id': 'c1', device: 'top', top: 'nope' }) },
      {
        send: exec('block-commit', {
          'job-id': 'c1',
          device: 'top',
          'top-node': 'top',
          'base-node': 'top',
        }),
      },
      {
        send: exec('block-stream', { 'job-id': 's1', device: 'top', 'base-node': 'top' }),
      },
      {
        send: exec('block-commit', { 'job-id': 'c1', device: 'top' }),
        until: ['BLOCK_JOB_READY'],
        unordered: true,
      },
      { send: exec('query-block-jobs') },
      { send: exec('job-complete', { id: 'c1' }), until: ['"null"'] },
      { send: exec('query-named-block-nodes', { flat: true }) },
    ],
  },
  {
    name: 'block jobs: inner commit drops a layer, stream pulls the rest; the chain gets shorter',
    setup: { machine: 'none', prepare: chain('base', 'mid', 'top') },
    normalize: [[/"actual-size": \d+/g, '"actual-size": N']],
    steps: [
      NEGOTIATE,
      {
        send: exec('blockdev-add', {
          driver: 'file',
          filename: '$DIR/base.qcow2',
          'node-name': 'base-file',
        }),
      },
      {
        send: exec('blockdev-add', {
          driver: 'qcow2',
          file: 'base-file',
          'node-name': 'base',
        }),
      },
      {
        send: exec('blockdev-add', {
          driver: 'file',
          filename: '$DIR/mid.qcow2',
          'node-name': 'mid-file',
        }),
      },
      {
        send: exec('blockdev-add', {
          driver: 'qcow2',
          file: 'mid-file',
          'node-name': 'mid',
          backing: 'base',
        }),
      },
      ...qcow2File('top').map((send) => ({ send })),
      {
        send: exec('blockdev-add', {
          driver: 'qcow2',
          file: 'top-file',
          'node-name': 'top',
          backing: 'mid',
        }),
      },
      {
        send: exec('block-commit', {
          'job-id': 'c2',
          device: 'top',
          'top-node': 'mid',
          'base-node': 'base',
          'auto-dismiss': false,
        }),
        until: ['"concluded"'],
        unordered: true,
      },
      { send: exec('query-block-jobs') },
      { send: exec('job-dismiss', { id: 'c2' }), until: ['"null"'] },
      { send: exec('query-named-block-nodes') },
      { send: exec('blockdev-del', { 'node-name': 'mid' }) },
      {
        send: exec('block-stream', { 'job-id': 's1', device: 'top' }),
        until: ['"null"'],
        unordered: true,
      },
      { send: exec('query-named-block-nodes') },
      {
        send: exec('block-stream', { 'job-id': 's2', device: 'top' }),
        until: ['"null"'],
        unordered: true,
      },
    ],
  },
  {
    name: 'dirty bitmaps: add, enable/disable, merge, clear, remove, in a transaction; errors',
    setup: { machine: 'none', prepare: chain('disk') },
    normalize: [[/"actual-size": \d+/g, '"actual-size": N']],
    steps: [
      NEGOTIATE,
      { send: nullNode('n') },
      ...qcow2File('disk').map((send) => ({ send })),
      { send: exec('blockdev-add', { driver: 'qcow2', file: 'disk-file', 'node-name': 'disk' }) },
      { send: exec('block-dirty-bitmap-add', { node: 'n', name: 'b0' }) },
      { send: exec('block-dirty-bitmap-add', { node: 'n', name: 'b0' }) },
      { send: exec('block-dirty-bitmap-add', { node: 'n', name: 'p', persistent: true }) },
      { send: exec('block-dirty-bitmap-add', { node: 'n', name: 'g', granularity: 1000 }) },
      { send: exec('block-dirty-bitmap-add', { node: 'n', name: 'g', granularity: 256 }) },
      { send: exec('block-dirty-bitmap-add', { node: 'nope', name: 'x' }) },
      { send: exec('block-dirty-bitmap-add', { node: 'n', name: '' }) },
      {
        send: exec('block-dirty-bitmap-add', {
          node: 'disk',
          name: 'p1',
          persistent: true,
          disabled: true,
          granularity: 131072,
        }),
      },
      { send: exec('block-dirty-bitmap-add', { node: 'disk', name: 'b1' }) },
      { send: exec('query-named-block-nodes', { flat: true }) },
      { send: exec('block-dirty-bitmap-disable', { node: 'disk', name: 'b1' }) },
      { send: exec('block-dirty-bitmap-enable', { node: 'disk', name: 'p1' }) },
      { send: exec('block-dirty-bitmap-enable', { node: 'disk', name: 'nope' }) },
      {
        send: exec('block-dirty-bitmap-merge', {
          node: 'disk',
          target: 'b1',
          bitmaps: ['p1', { node: 'n', name: 'b0' }],
        }),
      },
      {
        send: exec('block-dirty-bitmap-merge', { node: 'disk', target: 'b1', bitmaps: ['nope'] }),
      },
      { send: exec('block-dirty-bitmap-clear', { node: 'disk', name: 'b1' }) },
      {
        send: exec('transaction', {
          actions: [
            { type: 'block-dirty-bitmap-add', data: { node: 'disk', name: 't1' } },
            { type: 'block-dirty-bitmap-disable', data: { node: 'disk', name: 'p1' } },
            { type: 'block-dirty-bitmap-add', data: { node: 'disk', name: 't1' } },
          ],
        }),
      },
      {
        send: exec('transaction', {
          actions: [
            { type: 'block-dirty-bitmap-add', data: { node: 'disk', name: 't1' } },
            { type: 'block-dirty-bitmap-disable', data: { node: 'disk', name: 'p1' } },
            { type: 'block-dirty-bitmap-clear', data: { node: 'disk', name: 'b1' } },
          ],
        }),
      },
      { send: exec('query-named-block-nodes', { flat: true }) },
      { send: exec('block-dirty-bitmap-remove', { node: 'disk', name: 'p1' }) },
      { send: exec('block-dirty-bitmap-remove', { node: 'disk', name: 'p1' }) },
      { send: exec('block-dirty-bitmap-remove', { node: 'n', name: 'b0' }) },
      { send: exec('query-named-block-nodes', { flat: true }) },
    ],
  },
  {
    name: 'backup: sync full/top/none/bitmap/incremental on null-co, bitmap modes, errors',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: nullNode('src') },
      { send: nullNode('tgt') },
      { send: exec('block-dirty-bitmap-add', { node: 'src', name: 'b' }) },
      {
        send: exec('blockdev-backup', {
          'job-id': 'k1',
          device: 'src',
          target: 'tgt',
          sync: 'full',
        }),
        until: ['"null"'],
      },
      {
        send: exec('blockdev-backup', {
          'job-id': 'k2',
          device: 'src',
          target: 'tgt',
          sync: 'top',
        }),
        until: ['"null"'],
      },
      {
        send: exec('blockdev-backup', {
          'job-id': 'k3',
          device: 'src',
          target: 'tgt',
          sync: 'bitmap',
        }),
      },
      {
        send: exec('blockdev-backup', {
          'job-id': 'k3',
          device: 'src',
          target: 'tgt',
          sync: 'incremental',
          bitmap: 'nope',
        }),
      },
      {
        send: exec('blockdev-backup', {
          'job-id': 'k3',
          device: 'src',
          target: 'tgt',
          sync: 'full',
          'bitmap-mode': 'always',
        }),
      },
      {
        send: exec('blockdev-backup', {
          'job-id': 'k3',
          device: 'src',
          target: 'tgt',
          sync: 'incremental',
          bitmap: 'b',
          'bitmap-mode': 'always',
        }),
      },
      {
        send: exec('blockdev-backup', {
          'job-id': 'k3',
          device: 'src',
          target: 'tgt',
          sync: 'incremental',
          bitmap: 'b',
          'auto-dismiss': false,
        }),
        until: ['"concluded"'],
      },
      { send: exec('query-jobs') },
      { send: exec('job-dismiss', { id: 'k3' }), until: ['"null"'] },
      {
        send: exec('blockdev-backup', {
          'job-id': 'k4',
          device: 'src',
          target: 'tgt',
          sync: 'none',
          'auto-finalize': false,
          'auto-dismiss': false,
        }),
      },
      { send: exec('query-block-jobs') },
      // Another job's start drains k4's nodes (paused/running events for each drain); not here.
      { send: exec('job-cancel', { id: 'k4' }), until: ['"concluded"'] },
      { send: exec('query-jobs') },
      { send: exec('job-dismiss', { id: 'k4' }), until: ['"null"'] },
      {
        send: exec('blockdev-backup', {
          'job-id': 'k6',
          device: 'src',
          target: 'tgt',
          sync: 'bitmap',
          bitmap: 'b',
          'bitmap-mode': 'never',
          speed: 1,
        }),
      },
      { send: exec('query-named-block-nodes') },
      { send: exec('block-dirty-bitmap-remove', { node: 'src', name: 'b' }) },
      { send: exec('block-dirty-bitmap-clear', { node: 'src', name: 'b' }) },
      { send: exec('block-job-cancel', { device: 'k6' }) },
      { send: exec('query-named-block-nodes') },
    ],
  },
  {
    name: 'NBD exports: nbd-server-start on a unix socket, block-export-add/del with a bitmap, query-block-exports, nbd-server-stop',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: nullNode('n') },
      { send: exec('block-dirty-bitmap-add', { node: 'n', name: 'b' }) },
      { send: exec('block-export-add', { type: 'nbd', id: 'e0', 'node-name': 'n' }) },
      { send: exec('nbd-server-stop') },
      {
        send: exec('nbd-server-start', { addr: { type: 'unix', data: { path: '$DIR/nbd.sock' } } }),
      },
      {
        send: exec('nbd-server-start', {
          addr: { type: 'unix', data: { path: '$DIR/nbd2.sock' } },
        }),
      },
      { send: exec('block-export-add', { type: 'nbd', id: 'e0', 'node-name': 'nope' }) },
      {
        send: exec('block-export-add', { type: 'nbd', id: 'e0', 'node-name': 'n', bitmaps: ['x'] }),
      },
      {
        send: exec('block-export-add', {
          type: 'nbd',
          id: 'e0',
          'node-name': 'n',
          name: 'disk',
          writable: true,
          bitmaps: ['b'],
        }),
      },
      { send: exec('block-export-add', { type: 'nbd', id: 'e0', 'node-name': 'n' }) },
      { send: exec('block-export-add', { type: 'nbd', id: 'e1', 'node-name': 'n', name: 'disk' }) },
      { send: exec('block-export-add', { type: 'nbd', id: 'e2', 'node-name': 'n' }) },
      { send: exec('query-block-exports') },
      { send: exec('query-named-block-nodes') },
      { send: exec('block-dirty-bitmap-remove', { node: 'n', name: 'b' }) },
      { send: exec('blockdev-del', { 'node-name': 'n' }) },
      { send: exec('block-export-del', { id: 'nope' }) },
      { send: exec('block-export-del', { id: 'e0' }), until: ['BLOCK_EXPORT_DELETED'] },
      { send: exec('block-export-del', { id: 'e0' }) },
      { send: exec('nbd-server-stop'), until: ['BLOCK_EXPORT_DELETED'] },
      { send: exec('query-block-exports') },
      { send: exec('nbd-server-stop') },
      {
        send: exec('nbd-server-start', {
          addr: { type: 'inet', data: { host: '127.0.0.1', port: '0' } },
        }),
      },
      { send: exec('nbd-server-stop') },
    ],
  },
  {
    name: 'NBD exports: quit closes the remaining exports (7.2 oldest first, 10.0 newest first), BLOCK_EXPORT_DELETED after SHUTDOWN and before the reply',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: nullNode('n') },
      { send: nullNode('m') },
      {
        send: exec('nbd-server-start', { addr: { type: 'unix', data: { path: '$DIR/nbd.sock' } } }),
      },
      { send: exec('block-export-add', { type: 'nbd', id: 'e0', 'node-name': 'n' }) },
      { send: exec('block-export-add', { type: 'nbd', id: 'e1', 'node-name': 'm' }) },
      { send: exec('quit') },
      { expectClose: true },
    ],
  },
  {
    name: 'block jobs: a mirror pivot moves a device onto the target; backup into a transaction with a bitmap',
    setup: { machine: 'pc', paused: true },
    steps: [
      NEGOTIATE,
      { send: nullNode('disk') },
      { send: nullNode('copy') },
      { send: nullNode('bk') },
      { send: exec('device_add', { driver: 'virtio-blk-pci', drive: 'disk', id: 'vda' }) },
      {
        send: exec('blockdev-mirror', {
          'job-id': 'm',
          device: 'disk',
          target: 'copy',
          sync: 'full',
        }),
        until: ['BLOCK_JOB_READY'],
      },
      { send: exec('blockdev-del', { 'node-name': 'copy' }) },
      { send: exec('job-complete', { id: 'm' }), until: ['"null"'] },
      { send: exec('query-block') },
      { send: exec('blockdev-del', { 'node-name': 'disk' }) },
      { send: exec('blockdev-del', { 'node-name': 'copy' }) },
      {
        send: exec('transaction', {
          actions: [
            {
              type: 'block-dirty-bitmap-add',
              data: { node: 'copy', name: 'c0', persistent: false },
            },
            {
              type: 'blockdev-backup',
              data: { 'job-id': 'b0', device: 'copy', target: 'bk', sync: 'full' },
            },
          ],
        }),
        until: ['"null"'],
      },
      { send: exec('query-block') },
    ],
  },
];
