/**
 * `qmpkit block` against a real QEMU (the binary under test) and its qemu-storage-daemon: a
 * 3-layer qcow2 chain (base ← mid ← top, each with its own pattern written by `qemu-io` before
 * the VM starts). While a `qmpkit vm start` supervisor runs: an inner commit through it, a
 * refused unknown disk, and the stopped-VM path refused because the directory is locked.
 * After `vm stop`: a stream through qemu-storage-daemon, then a one-layer chain refused. The
 * state file follows the chain each time, the data stays what the patterns say
 * (`qemu-img compare`), and a restart from the state file opens the new chain
 * (the supervisor's `graph`: QEMU's own block graph). Then a mirror through the supervisor
 * and one through the daemon after `vm stop`: the disk moves onto each new image, the data
 * compares equal, and QEMU's graph is the stored model's. One VM for the file.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { MiB, toJSON } from '@qmpkit/devices';
import {
  chainJobOnStoppedVm,
  isRunDirLockedError,
  readState,
  runQemuImg as runImg,
} from '@qmpkit/machine';
import { REPO_CACHE_DIR } from '@qmpkit/testguest/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import {
  QEMU_BINARY,
  qemuSuite,
  SKIP_REASON,
  skipQemu,
  startVm,
  testVmConfig,
} from '../qemu.test-support.js';
import { ControlClient } from '../vm/client.js';
import { vmPaths } from '../vm/paths.js';
import type { BlockSummary } from '../vm/protocol.js';

const ENV = { PATH: process.env.PATH };
/** A qcow2 node's `backing` (absent on drivers without one). */
const backingOf = (node: object | undefined): unknown =>
  node !== undefined && 'backing' in node ? node.backing : undefined;
const KiB = 1024;
const SIZE = 2 * MiB;

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIo(ENV);
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

const suite = qemuSuite({ prefix: 'qmpkit-block-cli-' });
const runQemuImg = (args: readonly string[]) => runImg(args, { qemuImg: QEMU_BINARY.img });
/** The daemon matching the binary under test, as a path (a release lives in the repo's cache). */
const DAEMON = /^\d+\.\d+$/.test(QEMU_BINARY.storageDaemon)
  ? path.join(
      REPO_CACHE_DIR,
      'qemu-utils',
      QEMU_BINARY.storageDaemon,
      'root/usr/bin/qemu-storage-daemon',
    )
  : QEMU_BINARY.storageDaemon;

describe.skipIf(skipQemu)(`qmpkit block (real QEMU, tcg)${SKIP_REASON}`, () => {
  const work = suite.dir;
  const dir = path.join(work, 'vm');
  const files = ['base', 'mid', 'top'].map((l) => path.join(work, `${l}.qcow2`)) as [
    string,
    string,
    string,
  ];
  const expected = Buffer.alloc(SIZE);
  let config: string;

  const start = async (...from: string[]) => {
    await startVm(suite, dir, ...from);
  };
  const storedTop = async () =>
    (await readState(vmPaths(dir).stateFile)).config.blockdevs?.find(
      (b) => b['node-name'] === 'top',
    );
  /** `shared`: the VM runs (it holds the image's write lock), so read with `-U`. */
  const assertData = async (shared = false, image = files[2]) => {
    const ref = path.join(work, 'expected.raw');
    writeFileSync(ref, expected);
    await runQemuImg(['compare', '-q', ...(shared ? ['-U'] : []), '-f', 'raw', ref, image]);
  };
  /** The state file's model of the block graph: node names and each format node's file. */
  const storedGraph = async () =>
    ((await readState(vmPaths(dir).stateFile)).config.blockdevs ?? [])
      .map((b) => `${b['node-name']}${'file' in b ? ` <- ${String(b.file)}` : ''}`)
      .sort();
  /** QEMU's block graph (the supervisor's `graph`) in the same shape. */
  const qemuGraph = async () => {
    const client = await ControlClient.connect(dir);
    try {
      const graph = await client.request('graph', {}).result;
      const byId = new Map(graph.nodes.map((n) => [n.id, n]));
      return graph.nodes
        .filter((n) => n.type === 'block-driver')
        .map((n) => {
          const file = graph.edges.find((e) => e.parent === n.id && e.name === 'file');
          const child = file === undefined ? undefined : byId.get(file.child);
          return `${n.name}${child === undefined ? '' : ` <- ${child.name}`}`;
        })
        .sort();
    } finally {
      client.close();
    }
  };

  beforeAll(async () => {
    const [base, mid, top] = files;
    await runQemuImg(['create', '-q', '-f', 'qcow2', base, String(SIZE)]);
    await runQemuImg(['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, mid]);
    await runQemuImg(['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', mid, top]);
    const patterns: [string, number, number, number][] = [
      [base, 0x11, 0, 512 * KiB],
      [mid, 0x22, 256 * KiB, 512 * KiB],
      [top, 0x33, 640 * KiB, 256 * KiB],
    ];
    for (const [image, p, offset, length] of patterns) {
      await promisify(execFile)(QEMU_BINARY.io, [
        '-f',
        'qcow2',
        image,
        '-c',
        `write -P ${p} ${offset} ${length}`,
      ]);
      expected.fill(p, offset, offset + length);
    }
    const vm = testVmConfig(
      { boot: null, memoryMiB: 16 },
      {
        blockdevs: [
          { driver: 'file', 'node-name': 'base-file', filename: base },
          { driver: 'qcow2', 'node-name': 'base', file: 'base-file' },
          { driver: 'file', 'node-name': 'mid-file', filename: mid },
          { driver: 'qcow2', 'node-name': 'mid', file: 'mid-file', backing: 'base' },
          { driver: 'file', 'node-name': 'top-file', filename: top },
          { driver: 'qcow2', 'node-name': 'top', file: 'top-file', backing: 'mid' },
        ],
        devices: [{ driver: 'ide-hd', id: 'disk0', drive: 'top', bus: 'ide.0' }],
      },
    );
    config = path.join(work, 'vm.json');
    writeFileSync(config, toJSON(vm));
    await start(config);
  });

  afterAll(async () => {
    await run('vm', 'stop', '--dir', dir);
  });

  it('running VM: inner commit through the supervisor; bad names and a locked dir are refused', async () => {
    const unknown = await run('block', 'stream', '--dir', dir, '--disk', 'nosuch');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/ChainJobError: no disk 'nosuch' \(disks: disk0\)/);
    const locked = await chainJobOnStoppedVm({
      stateFile: vmPaths(dir).stateFile,
      runDir: vmPaths(dir).runDir,
      request: { op: 'stream' },
      qemu: DAEMON,
    }).catch((e: unknown) => e);
    expect(isRunDirLockedError(locked)).toBe(true);

    const commit = await run('block', 'commit', '--dir', dir, '--top', 'mid', '--json');
    expect(commit.code).toBe(0);
    const summary = JSON.parse(commit.out) as BlockSummary;
    expect(summary).toMatchObject({
      op: 'commit',
      disk: 'disk0',
      before: ['base', 'mid', 'top'],
      after: ['base', 'top'],
    });
    expect(summary.removed).toContain('mid');
    expect(backingOf(await storedTop())).toBe('base');
  });

  it('stopped VM: stream through qemu-storage-daemon, state file follows, data intact, restart opens the new chain', async () => {
    expect((await run('vm', 'stop', '--dir', dir)).code).toBe(0);
    // A --storage-daemon that is no daemon (the VM's own QEMU) is refused: exit 2, nothing ran.
    const wrong = await run(
      'block',
      'stream',
      '--dir',
      dir,
      '--storage-daemon',
      QEMU_BINARY.system,
    );
    expect(wrong.code).toBe(2);
    expect(wrong.err).toMatch(/StorageDaemonError: .*did not print "qemu-storage-daemon version/);
    // No --storage-daemon: the daemon of the VM's QEMU release runs the job.
    const stream = await run('block', 'stream', '--dir', dir, '--json');
    expect(stream.err).not.toMatch(/qmpkit: block/);
    expect(stream.code).toBe(0);
    const streamed = JSON.parse(stream.out) as BlockSummary;
    expect(streamed).toMatchObject({ before: ['base', 'top'], after: ['top'] });
    const v = QEMU_BINARY.version;
    expect(streamed.daemon?.version).toMatch(new RegExp(`^${v?.major}\\.${v?.minor}\\.`));
    if (DAEMON.includes('/')) expect(streamed.daemon?.path).toBe(DAEMON);
    expect(backingOf(await storedTop()) ?? null).toBeNull();
    await assertData();
    const single = await run('block', 'commit', '--dir', dir, '--storage-daemon', DAEMON);
    expect(single.code).toBe(2);
    expect(single.err).toMatch(/chain of one layer \('top'\)/);
    await assertData();

    await start();
    const client = await ControlClient.connect(dir);
    try {
      const graph = await client.request('graph', {}).result;
      const drivers = graph.nodes.filter((n) => n.type === 'block-driver').map((n) => n.name);
      expect(drivers.sort()).toEqual(['top', 'top-file']);
      const top = graph.nodes.find((n) => n.name === 'top');
      expect(graph.edges.filter((e) => e.parent === top?.id).map((e) => e.name)).toEqual(['file']);
    } finally {
      client.close();
    }
    await assertData(true);
  });

  it('mirror: on the running VM through the supervisor, then on the stopped VM through qemu-storage-daemon; data and graph model follow', async () => {
    const running = path.join(work, 'mirror-running.qcow2');
    const onVm = await run('block', 'mirror', '--dir', dir, '--to', running, '--json');
    expect(onVm.err).not.toMatch(/qmpkit: block/);
    expect(onVm.code).toBe(0);
    const first = JSON.parse(onVm.out) as BlockSummary;
    expect(first).toMatchObject({ op: 'mirror', disk: 'disk0', before: ['top'] });
    const [mirrored] = first.after;
    expect(first.after).toEqual([expect.stringMatching(/^qmpkit-mirror-/)]);
    // The old image left the graph; QEMU's graph and the stored model agree.
    expect(first.removed).toEqual(expect.arrayContaining(['top', 'top-file']));
    expect(await storedGraph()).toEqual([`${mirrored} <- ${mirrored}-file`, `${mirrored}-file`]);
    expect(await qemuGraph()).toEqual(await storedGraph());
    await assertData(true, running);

    expect((await run('vm', 'stop', '--dir', dir)).code).toBe(0);
    const stopped = path.join(work, 'mirror-stopped.qcow2');
    const offline = await run(
      'block',
      'mirror',
      '--dir',
      dir,
      '--storage-daemon',
      DAEMON,
      '--to',
      stopped,
      '--json',
    );
    expect(offline.err).not.toMatch(/qmpkit: block/);
    expect(offline.code).toBe(0);
    const second = JSON.parse(offline.out) as BlockSummary;
    expect(second).toMatchObject({ op: 'mirror', before: [mirrored] });
    const [moved] = second.after;
    expect(moved).toMatch(/^qmpkit-mirror-/);
    expect(moved).not.toBe(mirrored);
    expect(await storedGraph()).toEqual([`${moved} <- ${moved}-file`, `${moved}-file`]);
    await assertData(false, stopped);
    // The VM starts on the new image: QEMU opens exactly the stored graph.
    await start();
    expect(await qemuGraph()).toEqual(await storedGraph());
    await assertData(true, stopped);
  });
});
