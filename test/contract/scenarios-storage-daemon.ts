/**
 * Contract scenarios for the storage-daemon personality: the binary's `qemu-storage-daemon`
 * against `createFakeStorageDaemon` of its version (setup `program: 'storage-daemon'`).
 * Appended to `scenarios` in scenarios.ts.
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

/** qcow2 images `base` ← `mid` ← `top` in the peer's directory, made with the binary's qemu-img. */
function chain(dir: string, binary: QemuBinary): void {
  let backing: string | undefined;
  for (const name of ['base', 'mid', 'top']) {
    const file = path.join(dir, `${name}.qcow2`);
    execFileSync(binary.img, [
      'create',
      '-q',
      '-f',
      'qcow2',
      ...(backing ? ['-b', backing, '-F', 'qcow2'] : []),
      file,
      '1M',
    ]);
    backing = file;
  }
}

/** The chain as `--blockdev` values: protocol and format node per layer, backing by name. */
function chainNodes(dir: string): Record<string, unknown>[] {
  return [
    ['base', undefined],
    ['mid', 'base'],
    ['top', 'mid'],
  ].flatMap(([name, backing]) => [
    { driver: 'file', filename: path.join(dir, `${name}.qcow2`), 'node-name': `${name}-file` },
    {
      driver: 'qcow2',
      file: `${name}-file`,
      'node-name': name,
      ...(backing === undefined ? {} : { backing }),
    },
  ]);
}

const blockdevArgs = (nodes: Record<string, unknown>[]): string[] =>
  nodes.flatMap((n) => ['--blockdev', JSON.stringify(n)]);

export const storageDaemonScenarios: Scenario[] = [
  {
    name: 'storage daemon: greeting, negotiation, query-version and query-commands; system-emulator commands are not found',
    setup: { program: 'storage-daemon' },
    steps: [
      { send: exec('query-version') },
      NEGOTIATE,
      { send: exec('query-version', undefined, 1) },
      { send: exec('query-commands') },
      { send: exec('query-status') },
      { send: exec('stop') },
      { send: exec('device_add', { driver: 'virtio-blk-pci' }) },
      { send: exec('migrate', { uri: 'unix:/nowhere' }) },
      { send: exec('human-monitor-command', { 'command-line': 'info status' }) },
      { send: exec('query-block') },
      { send: exec('query-named-block-nodes') },
    ],
  },
  {
    name: 'storage daemon: a qcow2 chain from --blockdev, inner commit then stream with JOB_STATUS_CHANGE events',
    setup: {
      program: 'storage-daemon',
      prepare: chain,
      daemonArgs: (dir) => blockdevArgs(chainNodes(dir)),
    },
    normalize: [[/"actual-size": \d+/g, '"actual-size": N']],
    steps: [
      NEGOTIATE,
      {
        send: exec('blockdev-add', { driver: 'null-co', 'node-name': 'scratch', size: 1048576 }),
      },
      {
        send: exec('block-commit', {
          'job-id': 'c1',
          device: 'top',
          'top-node': 'mid',
          'base-node': 'base',
          'auto-dismiss': false,
        }),
        until: ['"concluded"'],
        unordered: true,
      },
      { send: exec('query-jobs') },
      { send: exec('job-dismiss', { id: 'c1' }), until: ['"null"'] },
      { send: exec('query-named-block-nodes', { flat: true }) },
      {
        send: exec('block-stream', { 'job-id': 's1', device: 'top' }),
        until: ['"null"'],
        unordered: true,
      },
      { send: exec('block-stream', { 'job-id': 's1', device: 'nope' }) },
      { send: exec('query-block-jobs') },
    ],
  },
  {
    name: 'storage daemon: a key=value --blockdev; dirty bitmaps add, disable, merge into another, remove; errors',
    setup: {
      program: 'storage-daemon',
      // What people type: key=value.
      daemonArgs: () => ['--blockdev', 'driver=null-co,node-name=n,size=1048576'],
    },
    steps: [
      NEGOTIATE,
      { send: exec('block-dirty-bitmap-add', { node: 'n', name: 'b0' }) },
      { send: exec('block-dirty-bitmap-add', { node: 'n', name: 'b1', disabled: true }) },
      { send: exec('block-dirty-bitmap-add', { node: 'n', name: 'b0' }) },
      { send: exec('block-dirty-bitmap-disable', { node: 'n', name: 'b0' }) },
      {
        send: exec('block-dirty-bitmap-merge', { node: 'n', target: 'b1', bitmaps: ['b0'] }),
      },
      {
        send: exec('block-dirty-bitmap-merge', { node: 'n', target: 'b1', bitmaps: ['nope'] }),
      },
      { send: exec('query-named-block-nodes') },
      { send: exec('block-dirty-bitmap-remove', { node: 'n', name: 'b0' }) },
      { send: exec('block-dirty-bitmap-remove', { node: 'n', name: 'b0' }) },
    ],
  },
  {
    name: 'storage daemon: NBD server and an export from the command line, block-export-add/del, BLOCK_EXPORT_DELETED; quit closes without SHUTDOWN',
    setup: {
      program: 'storage-daemon',
      daemonArgs: (dir) => [
        ...blockdevArgs([{ driver: 'null-co', 'node-name': 'n', size: 1048576 }]),
        '--blockdev',
        'driver=null-co,node-name=m,size=1048576,read-only=on',
        '--nbd-server',
        JSON.stringify({ addr: { type: 'unix', path: path.join(dir, 'nbd.sock') } }),
        '--export',
        'nbd,id=boot,node-name=m,name=m-export',
      ],
    },
    steps: [
      NEGOTIATE,
      {
        send: exec('nbd-server-start', {
          addr: { type: 'unix', data: { path: '$DIR/nbd2.sock' } },
        }),
      },
      { send: exec('query-block-exports') },
      { send: exec('block-export-add', { type: 'nbd', id: 'e0', 'node-name': 'n' }) },
      { send: exec('block-export-add', { type: 'nbd', id: 'e0', 'node-name': 'n' }) },
      {
        send: exec('block-export-add', {
          type: 'nbd',
          id: 'e1',
          'node-name': 'm',
          name: 'm-export',
        }),
      },
      {
        send: exec('block-export-add', { type: 'nbd', id: 'e1', 'node-name': 'm', writable: true }),
      },
      { send: exec('query-block-exports') },
      { send: exec('block-export-del', { id: 'e0' }), until: ['BLOCK_EXPORT_DELETED'] },
      { send: exec('block-export-del', { id: 'e0' }) },
      { send: exec('block-export-add', { type: 'nbd', id: 'e2', 'node-name': 'n' }) },
      { send: exec('query-block-exports') },
      // The command line's export and e2 are closed at exit (7.2 oldest first, 10.0 newest first).
      { send: exec('quit') },
      { expectClose: true },
    ],
  },
];
