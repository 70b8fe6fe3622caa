/**
 * The block-job runner against a real QEMU (the binary under test, test-support's `QEMU`):
 * commit (inner and active), stream and mirror
 * on a 3-layer qcow2 chain while data is written, the model's graph equal to QEMU's after each
 * job, cancel (in `pending` and in `ready`), pause/resume/set-speed, and job errors with
 * QEMU's own message.
 *
 * No guest runs: the known patterns are written into the disk of the running VM with HMP
 * `qemu-io -d disk0 "write -P …"` (through the device's own block backend, so it is exactly
 * what a guest write does to the graph), and the layers below are filled before launch with
 * the `qemu-io` tool. Content is checked by converting the device's image chain to raw with
 * `qemu-img` (`-U` while QEMU runs, after a flush) and comparing it byte for byte with the
 * pattern buffer the test wrote; nothing depends on timing (jobs that must still be running
 * when a command is sent are held in `pending` or `ready`, states they never leave alone).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { launchQemu, qemuSuite, TEST_ACCEL } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { type BlockJobUpdate, backup, commit, mirror, stream } from './block-jobs.js';
import { isBlockJobError } from './errors.js';
import { launch, type Machine } from './machine.js';
import { runQemuImg as runImg } from './qemu-img.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-blockjobs-test-' });
const run = promisify(execFile);
/** The qemu-img of the binary under test. */
const runQemuImg = (args: readonly string[]) => runImg(args, { qemuImg: suite.binary.img });
const SIZE = 4 * MiB;
const KiB = 1024;

/** The disk's expected content, written alongside every write the test makes. */
class Disk {
  readonly bytes = Buffer.alloc(SIZE);
  apply(pattern: number, offset: number, length: number): void {
    this.bytes.fill(pattern, offset, offset + length);
  }
}

async function qemuIo(image: string, command: string): Promise<void> {
  await run(suite.binary.io, ['-f', 'qcow2', image, '-c', command]);
}

/** base ← mid ← top, each holding its own pattern, and a VM whose IDE disk uses top. */
async function chainVm(name: string): Promise<{ m: Machine; disk: Disk; files: string[] }> {
  const dir = path.join(suite.dir);
  const files = ['base', 'mid', 'top'].map((l) => path.join(dir, `${name}-${l}.qcow2`));
  const [base, mid, top] = files as [string, string, string];
  const disk = new Disk();
  await runQemuImg(['create', '-q', '-f', 'qcow2', base, String(SIZE)]);
  await runQemuImg(['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, mid]);
  await runQemuImg(['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', mid, top]);
  await qemuIo(base, 'write -P 0x11 0 512k');
  disk.apply(0x11, 0, 512 * KiB);
  await qemuIo(mid, 'write -P 0x22 256k 512k');
  disk.apply(0x22, 256 * KiB, 512 * KiB);
  await qemuIo(top, 'write -P 0x33 640k 256k');
  disk.apply(0x33, 640 * KiB, 256 * KiB);
  const config: VmConfig = {
    machine: { type: 'pc-i440fx-7.2' },
    accel: [...TEST_ACCEL],
    memory: { size: 32 * MiB },
    blockdevs: [
      { driver: 'file', 'node-name': 'base-file', filename: base },
      { driver: 'qcow2', 'node-name': 'base', file: 'base-file' },
      { driver: 'file', 'node-name': 'mid-file', filename: mid },
      { driver: 'qcow2', 'node-name': 'mid', file: 'mid-file', backing: 'base' },
      { driver: 'file', 'node-name': 'top-file', filename: top },
      { driver: 'qcow2', 'node-name': 'top', file: 'top-file', backing: 'mid' },
    ],
    devices: [{ driver: 'ide-hd', id: 'disk0', drive: 'top', bus: 'ide.0' }],
  };
  const m = suite.adopt(
    await launch(config, { ...launchQemu(suite.binary), runDirParent: suite.dir }),
  );
  return { m, disk, files };
}

/** A guest-like write through the device's block backend (HMP `qemu-io`; test use only). */
async function write(m: Machine, disk: Disk, pattern: number, offset: number, length: number) {
  const out = await m.qmp.hmp(
    `qemu-io -d disk0 "write -P 0x${pattern.toString(16)} ${offset} ${length}"`,
  );
  // 7.2 prints qemu-io's own report on QEMU's stdout; a refused command comes back here.
  expect(out).toBe('');
  disk.apply(pattern, offset, length);
}

/** The content the device sees now, read from its image chain with `qemu-img -U`. */
let reads = 0;
/**
 * What the disk's device sees now: its node exported read-only over NBD (a unix socket in the
 * suite's dir) and read by `qemu-img convert` — QEMU's own view, with no dependence on
 * which layers it has flushed to their files yet.
 */
async function content(m: Machine): Promise<Buffer> {
  const node = (await m.qmp.execute('query-block')).find((b) => b.qdev === 'disk0')?.inserted?.[
    'node-name'
  ];
  const n = ++reads;
  const socket = path.join(suite.dir, `nbd-${n}.sock`);
  await m.qmp.execute('nbd-server-start', {
    addr: { type: 'unix', data: { path: socket } },
  });
  const id = `read-${n}`;
  await m.qmp.execute('block-export-add', { type: 'nbd', id, 'node-name': node ?? '' });
  const raw = path.join(suite.dir, `read-${n}.raw`);
  try {
    await runQemuImg([
      'convert',
      '-f',
      'raw',
      `nbd+unix:///${node}?socket=${socket}`,
      '-O',
      'raw',
      raw,
    ]);
  } finally {
    await m.qmp.executeAndWait(
      { event: 'BLOCK_EXPORT_DELETED', where: (e) => e.data.id === id, timeout: 10_000 },
      'block-export-del',
      { id },
    );
    await m.qmp.execute('nbd-server-stop');
  }
  return readFile(raw);
}

/** The first offset where the two differ, or 'same' (a readable failure for 4 MiB buffers). */
function firstDiff(a: Buffer, b: Buffer): string {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `at ${i}: ${a[i]} vs ${b[i]}`;
  return 'same';
}

/** The graph as QEMU reports it and as the model has it, in the same shape. */
async function graphs(m: Machine) {
  const named = await m.qmp.execute('query-named-block-nodes', { flat: true });
  const graph = await m.qmp.execute('x-debug-query-block-graph');
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const qemuBacking = graph.edges
    .filter((e) => e.name === 'backing')
    .map((e) => `${byId.get(e.parent)?.name}->${byId.get(e.child)?.name}`)
    .filter((e) => !e.startsWith('->'))
    .sort();
  const blocks = await m.qmp.execute('query-block');
  const qemu = {
    nodes: named.map((n) => n['node-name'] ?? '').sort(),
    backing: qemuBacking,
    devices: blocks.map((b) => `${b.qdev}:${b.inserted?.['node-name']}`).sort(),
  };
  const config = m.config;
  const model = {
    nodes: (config.blockdevs ?? []).map((b) => b['node-name']).sort(),
    backing: (config.blockdevs ?? [])
      .flatMap((b) => {
        const backing = (b as { backing?: unknown }).backing;
        return typeof backing === 'string' ? [`${b['node-name']}->${backing}`] : [];
      })
      .sort(),
    devices: (config.devices ?? []).map((d) => `${d.id}:${(d as { drive?: string }).drive}`).sort(),
  };
  return { qemu, model };
}

async function expectGraphInSync(m: Machine): Promise<void> {
  const { qemu, model } = await graphs(m);
  expect(model).toEqual(qemu);
}

async function noJobsLeft(m: Machine): Promise<void> {
  expect(await m.qmp.execute('query-jobs')).toEqual([]);
}

describe('block jobs', () => {
  it('inner commit then stream on a 3-layer chain, written to in between', async () => {
    const { m, disk } = await chainVm('cs');
    await write(m, disk, 0x44, 1 * MiB, 64 * KiB);
    await expectGraphInSync(m);

    // Inner commit: mid's data goes into base, top now builds on base.
    const job = await commit(m, { device: 'top', top: 'mid', base: 'base' });
    await write(m, disk, 0x55, 2 * MiB, 64 * KiB);
    const done = await job.wait({ removeDetached: true });
    expect(done).toMatchObject({ outcome: 'completed', type: 'commit', graphChanged: true });
    expect([...done.detached].sort()).toEqual(['mid', 'mid-file']);
    expect(done.removed).toBe(true);
    expect(done.statuses.at(-1)).toBe('concluded');
    expect(done.statuses).toContain('running');
    const afterCommit = await graphs(m);
    expect(afterCommit.qemu.backing).toContain('top->base');
    expect(afterCommit.qemu.backing).not.toContain('top->mid');
    await expectGraphInSync(m);
    expect(firstDiff(await content(m), disk.bytes)).toBe('same');

    // Stream everything into top: it stands alone afterwards.
    const updates: BlockJobUpdate[] = [];
    const s = await stream(m, { node: 'top' });
    for await (const u of s.progress({ intervalMs: 50 })) updates.push(u);
    expect(updates.filter((u) => u.kind === 'status').map((u) => u.status)).toEqual(s.statuses);
    expect(s.statuses.at(-1)).toBe('concluded');
    expect(await s.wait()).toMatchObject({ outcome: 'completed', len: SIZE, offset: SIZE });
    await write(m, disk, 0x66, 3 * MiB, 64 * KiB);
    const afterStream = await graphs(m);
    expect(afterStream.qemu.backing.filter((e) => e.startsWith('top->'))).toEqual([]);
    await expectGraphInSync(m);
    expect(firstDiff(await content(m), disk.bytes)).toBe('same');
    await noJobsLeft(m);
  });

  it('active commit and a write-blocking mirror pivot the disk; pause, resume, set-speed', async () => {
    const { m, disk } = await chainVm('am');
    await write(m, disk, 0x44, 1 * MiB, 64 * KiB);

    // Active commit: top into mid; ready, written to while ready, then completed (pivot).
    const c = await commit(m, { device: 'top', base: 'mid' });
    await c.ready();
    await write(m, disk, 0x55, 1 * MiB + 32 * KiB, 64 * KiB);
    await c.complete();
    const committed = await c.wait({ removeDetached: true });
    expect(committed).toMatchObject({ outcome: 'completed', graphChanged: true, removed: true });
    expect([...committed.detached].sort()).toEqual(['top', 'top-file']);
    expect(c.statuses).toEqual(
      expect.arrayContaining(['created', 'running', 'ready', 'waiting', 'pending', 'concluded']),
    );
    expect(m.config.devices?.[0]).toMatchObject({ id: 'disk0', drive: 'mid' });
    await expectGraphInSync(m);
    expect(firstDiff(await content(m), disk.bytes)).toBe('same');

    // Mirror mid (with its backing) to a fresh standalone image, write-blocking.
    const copy = path.join(suite.dir, 'am-copy.qcow2');
    await runQemuImg(['create', '-q', '-f', 'qcow2', copy, String(SIZE)]);
    await m.plug({
      blockdevs: [
        { driver: 'file', 'node-name': 'copy-file', filename: copy },
        { driver: 'qcow2', 'node-name': 'copy', file: 'copy-file' },
      ],
    });
    const j = await mirror(m, { node: 'mid', target: 'copy', copyMode: 'write-blocking' });
    const seen: BlockJobUpdate[] = [];
    const iterating = (async () => {
      for await (const u of j.progress({ intervalMs: 20 })) seen.push(u);
    })();
    await j.ready();
    await j.setSpeed(8 * MiB);
    expect((await m.qmp.execute('query-block-jobs'))[0]).toMatchObject({
      device: j.id,
      speed: 8 * MiB,
      ready: true,
    });
    await j.pause();
    await j.until('standby');
    await j.resume();
    await write(m, disk, 0x77, 3 * MiB, 128 * KiB);
    // Write-blocking: the write above is on the target by the time it returned.
    const ready = (await m.qmp.execute('query-block-jobs'))[0];
    expect(ready?.offset).toBe(ready?.len);
    await j.complete();
    const outcome = await j.wait();
    await iterating;
    expect(outcome).toMatchObject({ outcome: 'completed', type: 'mirror', graphChanged: true });
    const statuses = seen.filter((u) => u.kind === 'status').map((u) => u.status);
    expect(statuses).toEqual(j.statuses);
    expect(statuses).toEqual(
      expect.arrayContaining(['ready', 'standby', 'waiting', 'pending', 'concluded']),
    );
    expect(seen.some((u) => u.kind === 'progress' && u.len > 0)).toBe(true);
    expect(m.config.devices?.[0]).toMatchObject({ id: 'disk0', drive: 'copy' });
    await expectGraphInSync(m);
    expect(firstDiff(await content(m), disk.bytes)).toBe('same');
    await noJobsLeft(m);
  });

  it('cancel: a commit held in pending leaves the chain as it was; a ready mirror does not pivot', async () => {
    const { m, disk } = await chainVm('cancel');
    const before = await graphs(m);
    const c = await commit(m, { device: 'top', top: 'mid', base: 'base', autoFinalize: false });
    await c.until('pending');
    await c.cancel();
    const cancelled = await c.wait();
    expect(cancelled).toMatchObject({ outcome: 'cancelled', graphChanged: false });
    expect(cancelled.statuses).toContain('aborting');
    expect(await graphs(m)).toEqual(before);
    expect(firstDiff(await content(m), disk.bytes)).toBe('same');

    const copy = path.join(suite.dir, 'cancel-copy.qcow2');
    await runQemuImg(['create', '-q', '-f', 'qcow2', copy, String(SIZE)]);
    await m.plug({
      blockdevs: [
        { driver: 'file', 'node-name': 'copy-file', filename: copy },
        { driver: 'qcow2', 'node-name': 'copy', file: 'copy-file' },
      ],
    });
    const j = await mirror(m, { node: 'top', target: 'copy' });
    await j.ready();
    await j.cancel();
    expect(await j.wait()).toMatchObject({ outcome: 'cancelled', graphChanged: false });
    expect(m.config.devices?.[0]).toMatchObject({ drive: 'top' });
    await expectGraphInSync(m);
    await noJobsLeft(m);
  });

  it("surfaces a job's error with QEMU's message, and a refused start", async () => {
    const { m } = await chainVm('err');
    const target = path.join(suite.dir, 'err-target.qcow2');
    await runQemuImg(['create', '-q', '-f', 'qcow2', target, String(SIZE)]);
    await m.plug({
      blockdevs: [
        { driver: 'file', 'node-name': 't-file', filename: target },
        // Every write below the qcow2 target fails with EIO.
        {
          driver: 'blkdebug',
          'node-name': 't-dbg',
          image: 't-file',
          'inject-error': [{ event: 'pwritev', errno: 5 }],
        },
        { driver: 'qcow2', 'node-name': 't', file: 't-dbg' },
      ],
    });
    const job = await backup(m, { node: 'top', target: 't', sync: 'full' });
    const error = await job.wait().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBlockJobError(error)).toBe(true);
    expect(error).toMatchObject({ phase: 'run', type: 'backup', desc: 'Input/output error' });
    await noJobsLeft(m);

    const refused = await stream(m, { node: 'top', base: 'no-such-node' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({
      name: 'BlockJobError',
      phase: 'start',
      desc: "Cannot find device='' nor node-name='no-such-node'",
    });
    await noJobsLeft(m);
  });
});
