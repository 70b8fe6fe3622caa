/**
 * `qemu-storage-daemon` (the one matching the binary under test: the system's for 7.2, the
 * cache's qemu-utils for 10.0) with the block-job runner on the images of a VM that is not
 * running: commit (inner and active), stream, mirror and backup of a 3-layer qcow2 chain.
 * Each layer holds its own pattern (written with `qemu-io` before the daemon opens the chain);
 * after each job the result is checked with `qemu-img compare` against a raw file holding the
 * expected bytes, and the daemon's graph (`query-named-block-nodes`) has the expected chain.
 * Also: the typed start errors (missing binary, a refused `--blockdev`), a refused job that
 * leaves the images intact, and a `quit` that leaves no process.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { pidRunning, qemuSuite, REPO_CACHE_DIR } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { type BlockJobHost, backup, commit, mirror, stream } from './block-jobs.js';
import { isBlockJobError, isStorageDaemonError } from './errors.js';
import { runQemuImg as runImg } from './qemu-img.js';
import { launchStorageDaemon, type StorageDaemon } from './storage-daemon.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-qsd-test-' });
const run = promisify(execFile);
const runQemuImg = (args: readonly string[]) => runImg(args, { qemuImg: suite.binary.img });
const KiB = 1024;
const SIZE = 2 * 1024 * KiB;

interface Chain {
  readonly files: { base: string; mid: string; top: string };
  /** The bytes the top of the chain reads as. */
  readonly expected: Buffer;
}

/** base ← mid ← top, each with its own pattern over part of the disk. */
async function makeChain(name: string): Promise<Chain> {
  const [base, mid, top] = ['base', 'mid', 'top'].map((l) =>
    path.join(suite.dir, `${name}-${l}.qcow2`),
  ) as [string, string, string];
  await runQemuImg(['create', '-q', '-f', 'qcow2', base, String(SIZE)]);
  await runQemuImg(['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, mid]);
  await runQemuImg(['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', mid, top]);
  const expected = Buffer.alloc(SIZE);
  const write = async (image: string, pattern: number, offset: number, length: number) => {
    await run(suite.binary.io, [
      '-f',
      'qcow2',
      image,
      '-c',
      `write -P ${pattern} ${offset} ${length}`,
    ]);
    expected.fill(pattern, offset, offset + length);
  };
  await write(base, 0x11, 0, 512 * KiB);
  await write(mid, 0x22, 256 * KiB, 512 * KiB);
  await write(top, 0x33, 640 * KiB, 256 * KiB);
  return { files: { base, mid, top }, expected };
}

/** `qemu-img compare` of `image` (its chain) with the expected bytes: exit 0 when identical. */
async function assertContent(image: string, expected: Buffer, name: string): Promise<void> {
  const ref = path.join(suite.dir, `${name}-expected.raw`);
  await writeFile(ref, expected);
  await expect(runQemuImg(['compare', '-q', '-f', 'raw', ref, image])).resolves.toBeDefined();
}

async function daemonOn(chain: Chain, extra: { target?: string } = {}): Promise<StorageDaemon> {
  const { base, mid, top } = chain.files;
  const target =
    extra.target === undefined
      ? []
      : [
          { driver: 'file' as const, 'node-name': 'target-file', filename: extra.target },
          { driver: 'qcow2' as const, 'node-name': 'target', file: 'target-file' },
        ];
  return suite.adopt(
    await launchStorageDaemon({
      qemu: suite.binary.storageDaemon,
      cacheDir: REPO_CACHE_DIR,
      runDirParent: suite.dir,
      blockdevs: [
        { driver: 'file', 'node-name': 'base-file', filename: base },
        { driver: 'qcow2', 'node-name': 'base', file: 'base-file' },
        { driver: 'file', 'node-name': 'mid-file', filename: mid },
        { driver: 'qcow2', 'node-name': 'mid', file: 'mid-file', backing: 'base' },
        { driver: 'file', 'node-name': 'top-file', filename: top },
        { driver: 'qcow2', 'node-name': 'top', file: 'top-file', backing: 'mid' },
        ...target,
      ],
    }),
  );
}

/** The qcow2 chain below `node` as the daemon reports it (node names, top first). */
async function chainOf(daemon: StorageDaemon, node: string): Promise<string[]> {
  const nodes = await daemon.qmp.execute('query-named-block-nodes', { flat: true });
  const byName = new Map(nodes.map((n) => [n['node-name'], n]));
  const out: string[] = [];
  for (let n = byName.get(node); n !== undefined; ) {
    out.push(n['node-name'] ?? '(unnamed)');
    const backing = n.backing_file;
    n =
      backing === undefined
        ? undefined
        : nodes.find((c) => c.drv === 'qcow2' && c.file === backing);
  }
  return out;
}

describe(`qemu-storage-daemon on ${suite.binary.id}: block jobs on the images of a stopped VM`, () => {
  it('inner commit, then stream: chain shortened, data intact, no process left after quit', async () => {
    const chain = await makeChain('inner');
    const daemon = await daemonOn(chain);
    const host: BlockJobHost = daemon;
    expect(await chainOf(daemon, 'top')).toEqual(['top', 'mid', 'base']);
    const job = await commit(host, { device: 'top', top: 'mid', base: 'base' });
    const outcome = await job.wait();
    expect(outcome.outcome).toBe('completed');
    expect(outcome.statuses.at(-1)).toBe('concluded');
    expect(await chainOf(daemon, 'top')).toEqual(['top', 'base']);
    const s = await stream(host, { node: 'top' });
    await s.wait();
    expect(await chainOf(daemon, 'top')).toEqual(['top']);
    expect(await daemon.qmp.execute('query-jobs')).toEqual([]);
    const exit = await daemon.quit();
    expect(exit.code).toBe(0);
    expect(pidRunning(daemon.pid)).toBe(false);
    expect(existsSync(daemon.runDir)).toBe(false);
    await assertContent(chain.files.top, chain.expected, 'inner');
    // The stream pulled everything into top: its image names no backing file any more.
    const info = JSON.parse((await runQemuImg(['info', '--output=json', chain.files.top])).stdout);
    expect(info['backing-filename']).toBeUndefined();
  });

  it('active commit pivots onto the base; mirror and backup copy the chain to a target', async () => {
    const chain = await makeChain('active');
    const target = path.join(suite.dir, 'active-target.qcow2');
    const copy = path.join(suite.dir, 'active-copy.qcow2');
    await runQemuImg(['create', '-q', '-f', 'qcow2', target, String(SIZE)]);
    await runQemuImg(['create', '-q', '-f', 'qcow2', copy, String(SIZE)]);
    const daemon = await daemonOn(chain, { target });
    await daemon.qmp.execute('blockdev-add', {
      driver: 'qcow2',
      'node-name': 'copy',
      file: { driver: 'file', filename: copy },
    });
    // backup: a point-in-time copy of the whole chain into `copy`.
    await (await backup(daemon, { node: 'top', target: 'copy', sync: 'full' })).wait();
    // mirror: copies, becomes ready, pivots on complete.
    const m = await mirror(daemon, { node: 'top', target: 'target', sync: 'full' });
    await m.ready();
    await m.complete();
    expect((await m.wait()).outcome).toBe('completed');
    // active commit of the whole chain into base.
    const c = await commit(daemon, { device: 'top' });
    await c.ready();
    await c.complete();
    await c.wait();
    await daemon.qmp.execute('blockdev-del', { 'node-name': 'copy' });
    await daemon.quit();
    await assertContent(copy, chain.expected, 'active-backup');
    await assertContent(target, chain.expected, 'active-mirror');
    await assertContent(chain.files.base, chain.expected, 'active-commit');
  });

  it('a refused job is a typed error and leaves the images as they were', async () => {
    const chain = await makeChain('refused');
    const daemon = await daemonOn(chain);
    // base has no backing: nothing to commit.
    const error = await commit(daemon, { device: 'base', top: 'base' }).catch((e: unknown) => e);
    expect(isBlockJobError(error)).toBe(true);
    expect(error).toMatchObject({ phase: 'start', type: 'commit' });
    expect(await daemon.qmp.execute('query-jobs')).toEqual([]);
    await daemon.quit();
    await assertContent(chain.files.top, chain.expected, 'refused');
    expect(await chainOfFiles(chain.files.top)).toBe(3);
  });

  it('start errors: a missing binary, a refused --blockdev (with its stderr); nothing left running', async () => {
    const missing = await launchStorageDaemon({
      qemu: path.join(suite.dir, 'no-such-qemu-storage-daemon'),
      runDirParent: suite.dir,
    }).catch((e: unknown) => e);
    expect(isStorageDaemonError(missing)).toBe(true);
    expect(missing).toMatchObject({ reason: 'not-found' });
    const absent = path.join(suite.dir, 'absent.qcow2');
    const refused = await launchStorageDaemon({
      qemu: suite.binary.storageDaemon,
      cacheDir: REPO_CACHE_DIR,
      runDirParent: suite.dir,
      blockdevs: [{ driver: 'file', 'node-name': 'f', filename: absent }],
    }).catch((e: unknown) => e);
    expect(isStorageDaemonError(refused)).toBe(true);
    expect(refused).toMatchObject({ reason: 'exited', exitCode: 1 });
    expect((refused as { stderr: string }).stderr).toContain(absent);
  });
});

/** How many images the chain of `image` has (qemu-img's backing chain). */
async function chainOfFiles(image: string): Promise<number> {
  const out = await runQemuImg(['info', '--backing-chain', '--output=json', image]);
  return (JSON.parse(out.stdout) as unknown[]).length;
}
