/**
 * Live migration with local disks (`disks: 'copy'`): the test guest boots from a qcow2 image
 * it rewrites on every iteration (LBA 1 holds its counter) and moves 7.2→7.2 and 7.2→10.0
 * (pinned machine type) over unix sockets and TCP on loopback, the disk mirrored over NBD.
 * "The disk equals the source's at the switch": at `pre-switchover` (source stopped, mirrors
 * ended) the target's image is read through its NBD export; after the source QEMU has ended
 * its image is read from the file; both as raw bytes, compared by SHA-256. The counter record
 * on that disk is the last counter the source printed or the first the target printed (the
 * guest writes the record before it prints).
 *
 * Failures (each a typed error; the source runs on with the block graph, jobs and exports it
 * had before) and kill trials (SIGKILL of the source QEMU, the target QEMU, and a child
 * process running `migrate`, at seeded random phases). CI runs `QMPKIT_KILL_TRIALS` (default
 * 2) trials per victim before the switch and one per victim after it (`confirming`,
 * `finishing`: the target is the VM); the full count: `QMPKIT_KILL_TRIALS=10 npx vitest run
 * --project qemu-7.2 packages/machine/src/live-migration-disks.qemu.test.ts -t kill`.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { readCounterFromDisk } from '@qmpkit/testguest';
import {
  pidfileQemus,
  qemuSkipReason,
  qemuSuite,
  spawnNodeChild,
} from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { qemuCacheDir, resolveQemuBinary } from './binary.js';
import { isLiveMigrationError, type LiveMigrationError } from './errors.js';
import { type MigrationProgress, type MigrationTarget, migrate } from './live-migration.js';
import { launch, Machine } from './machine.js';
import { processAlive } from './proc.js';
import { namedNodes, qcow2GuestConfig } from './qemu.test-support.js';
import { runQemuImg } from './qemu-img.js';
import { MIGRATION_PHASES, type MigrationPhase, readState } from './state.js';
import { makeTlsDirs } from './tls.test-support.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-live-disks-' });
const quiet = { warn: () => {} };
const COUNTER = /C=([0-9A-F]{8})\r\n/g;

const cacheDir = path.resolve(import.meta.dirname, '../../../.cache');
const have10 = existsSync(path.join(qemuCacheDir(cacheDir, '10.0'), 'manifest.json'));
const skip10 =
  qemuSkipReason() ??
  (!have10 && process.env.CI !== 'true'
    ? 'QEMU 10.0 not fetched; run `pnpm qemu:fetch 10.0` (CI does)'
    : undefined);

let n = 0;
const tgtDir = () => path.join(suite.dir, `tgt-${n}`);

async function source(
  sizeMiB = 4,
  options: { backing?: boolean } = {},
): Promise<{ m: Machine; image: string }> {
  n += 1;
  const made = await qcow2GuestConfig(suite.dir, {
    name: `g${n}`,
    sizeMiB,
    seed: n,
  });
  let { config, image } = made;
  if (options.backing === true) {
    // The guest's image becomes a read-only base under a fresh overlay that takes its writes.
    const overlay = path.join(suite.dir, `g${n}-top.qcow2`);
    await runQemuImg(['create', '-q', '-f', 'qcow2', '-b', image, '-F', 'qcow2', overlay]);
    config = {
      ...config,
      blockdevs: [
        { driver: 'file', 'node-name': 'base-file', filename: image, 'read-only': true },
        { driver: 'qcow2', 'node-name': 'base', file: 'base-file', 'read-only': true },
        { driver: 'file', 'node-name': 'boot-file', filename: overlay },
        { driver: 'qcow2', 'node-name': 'boot', file: 'boot-file', backing: 'base' },
      ],
    };
    image = overlay;
  }
  const m = suite.adopt(
    await launch(config, {
      consoles: ['ser0'],
      runDir: path.join(suite.dir, `src-${n}`),
      logger: quiet,
    }),
  );
  await m.console('ser0').expect(/C=[0-9A-F]{8}\r\n/, { timeout: 30_000 });
  return { m, image };
}

function counters(text: string): number[] {
  return [...text.matchAll(COUNTER)].map((x) => Number.parseInt(x[1] ?? '', 16));
}

/** What a roll-back must restore: QEMU's own lists of nodes, jobs and exports. */
async function blockState(m: Machine) {
  return {
    nodes: await namedNodes(m),
    jobs: (await m.qmp.execute('query-jobs')).map((j) => j.id),
    exports: (await m.qmp.execute('query-block-exports')).map((e) => e.id),
  };
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

async function failure(promise: Promise<unknown>): Promise<LiveMigrationError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isLiveMigrationError(error)) throw new Error(`expected a LiveMigrationError, got ${error}`);
  return error;
}

/** After a failure: the source runs and counts on, its block graph as before, target gone. */
async function expectSourceIntact(
  m: Machine,
  e: LiveMigrationError,
  before: Awaited<ReturnType<typeof blockState>>,
): Promise<void> {
  expect(e.sourceRunning).toBe(true);
  expect(m.status).toBe('running');
  expect((await m.qmp.execute('query-status')).status).toBe('running');
  expect(await blockState(m)).toEqual(before);
  m.console('ser0').read();
  await m.console('ser0').expect(/(C=[0-9A-F]{8}\r\n[\s\S]*){2}/, { timeout: 30_000 });
  expect(m.migration).toBeUndefined();
  expect((await readState(m.stateFile ?? '')).runtime.migration).toBeUndefined();
  expect(existsSync(tgtDir())).toBe(false);
}

/** Migrates with disk copy and checks counter, disk at the switch, progress and files. */
async function moveWithDisks(
  options: { qemu10?: boolean; tcp?: boolean; tls?: string; backing?: boolean } = {},
): Promise<{ copyMs: number; bytes: number }> {
  const { m, image } = await source(4, { backing: options.backing === true });
  // A counter line the source prints itself, so the continuity check spans both QEMUs.
  const last = await m.console('ser0').expect(/C=[0-9A-F]{8}\r\n/, { timeout: 30_000 });
  const before = last.before + last.match + m.console('ser0').read();
  const atSwitch = path.join(suite.dir, `switch-${n}.raw`);
  const samples: MigrationProgress[] = [];
  const target: MigrationTarget = {
    runDir: tgtDir(),
    ...(options.qemu10 === true ? { qemu: await resolveQemuBinary('10.0', { cacheDir }) } : {}),
  };
  const tcp = options.tcp === true;
  const tls = options.tls;
  const tlsSeen: string[] = [];
  const run = migrate(m, target, {
    logger: quiet,
    disks: 'copy',
    progressInterval: 50,
    ...(tcp ? { transport: { type: 'tcp' }, nbd: { type: 'tcp' } } : {}),
    // TLS: the stream over TCP (hostname 127.0.0.1), NBD over a unix socket (hostname localhost).
    ...(tls !== undefined ? { tls: { dir: tls }, transport: { type: 'tcp' } } : {}),
    onPhase: async (phase, { target: t }) => {
      if (phase !== 'transferring' || t === undefined) return;
      for (const side of [m, t])
        tlsSeen.push((await side.qmp.execute('query-migrate-parameters'))['tls-creds'] ?? '');
    },
    beforeSwitchover: async ({ source: s, disks, nbd }) => {
      expect((await s.qmp.execute('query-status')).running).toBe(false);
      expect((await s.qmp.execute('query-jobs')).map((j) => j.id)).toEqual([]);
      expect(disks.map((d) => d.node)).toEqual(['boot']);
      const uri = nbd?.uri('boot') ?? '';
      expect(uri).toMatch(
        tcp ? /^nbd:\/\/127\.0\.0\.1:\d+\/boot$/ : /^nbd\+unix:\/\/\/boot\?socket=/,
      );
      if (tls === undefined) {
        await runQemuImg(['convert', '-q', '-f', 'raw', '-O', 'raw', uri, atSwitch]);
        return;
      }
      // The export takes TLS clients only: a plain one is turned away…
      const plain = await runQemuImg(['info', '-f', 'raw', uri]).then(
        () => 'accepted',
        (e: unknown) => String(e),
      );
      expect(plain).toMatch(/TLS/);
      // …one with the client certificate reads it.
      const socket = nbd?.server.type === 'unix' ? nbd.server.path : '';
      await runQemuImg([
        'convert',
        '-q',
        '--object',
        `tls-creds-x509,id=tls0,dir=${tls},endpoint=client`,
        '--image-opts',
        `driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=${socket},file.export=boot,file.tls-creds=tls0,file.tls-hostname=localhost`,
        '-O',
        'raw',
        atSwitch,
      ]);
    },
  });
  const collecting = (async () => {
    for await (const p of run.progress) samples.push(p);
  })();
  const started = performance.now();
  const result = await run.result;
  await collecting;
  const t = suite.adopt(result.machine);
  if (tls !== undefined) expect(tlsSeen).toEqual(['qmpkit-migration-tls', 'qmpkit-migration-tls']);
  expect(m.status).toBe('stopped');
  expect((await t.qmp.execute('query-status')).status).toBe('running');
  // The counter continues across both sides without a gap or a repeat.
  const sourceText = before + m.console('ser0').read();
  const seen = await t.console('ser0').expect(/(C=[0-9A-F]{8}\r\n[\s\S]*){3}/, { timeout: 30_000 });
  const targetText = seen.before + seen.match + t.console('ser0').read();
  const all = counters(sourceText + targetText);
  expect(all.length).toBeGreaterThan(3);
  expect(all).toEqual(all.map((_, i) => (all[0] ?? 0) + i));
  // The target wrote its disk without an error (the guest prints D= when a write fails).
  expect(targetText).not.toMatch(/D=/);
  // The source's image (its QEMU has ended) equals what the target had at the switch.
  const sourceRaw = path.join(suite.dir, `source-${n}.raw`);
  await runQemuImg(['convert', '-q', '-f', 'qcow2', '-O', 'raw', image, sourceRaw]);
  expect(await sha256(atSwitch)).toBe(await sha256(sourceRaw));
  const record = readCounterFromDisk(readFileSync(atSwitch));
  // The guest may stop in the middle of a line ("C=8" on the source, "7\r\n" on the target):
  // the last counter is the last line that *began* on the source, the first the next one.
  const lines = [...(sourceText + targetText).matchAll(COUNTER)];
  const lastSource = lines.filter((x) => x.index < sourceText.length).at(-1);
  const firstTarget = lines.find((x) => x.index >= sourceText.length);
  expect(
    [lastSource, firstTarget].map((x) => (x === undefined ? -1 : Number.parseInt(x[1] ?? '', 16))),
  ).toContain(record);
  // The target's image lives in <runDir>/disks, as qcow2, and its configuration says so.
  const targetImage = path.join(tgtDir(), 'disks', path.basename(image));
  expect(t.config.blockdevs?.find((b) => b['node-name'] === 'boot-file')).toMatchObject({
    filename: targetImage,
  });
  const info = JSON.parse((await runQemuImg(['info', '-U', '--output=json', targetImage])).stdout);
  expect(info.format).toBe('qcow2');
  if (options.backing === true) {
    // Flattened: one image of the full virtual size, no backing file, no base nodes on the target.
    expect(info['backing-filename']).toBeUndefined();
    expect(info['virtual-size']).toBe(4 * 1024 * 1024);
    expect(t.config.blockdevs?.map((b) => b['node-name'])).toEqual(['boot-file', 'boot']);
    expect(t.config.blockdevs?.find((b) => b['node-name'] === 'boot')).toMatchObject({
      backing: null,
    });
    // qemu-img's own verdict: what the guest saw through the chain at the switch.
    await runQemuImg(['compare', '-U', '-q', '-f', 'raw', '-F', 'qcow2', atSwitch, image]);
  }
  // Progress: mirror samples first (phase mirroring), ending ready; RAM samples carry them too.
  const mirroring = samples.filter((s) => s.phase === 'mirroring');
  expect(mirroring.length).toBeGreaterThan(0);
  expect(mirroring.at(-1)?.disks).toEqual([expect.objectContaining({ node: 'boot', ready: true })]);
  const ram = samples.filter((s) => s.phase === 'transferring');
  if (ram.length > 0) expect(ram[0]?.disks?.[0]?.node).toBe('boot');
  // No NBD server, export or job left on the target.
  expect((await t.qmp.execute('query-block-exports')).length).toBe(0);
  expect((await t.qmp.execute('query-jobs')).length).toBe(0);
  await t.stop();
  const len = mirroring.at(-1)?.disks?.[0]?.len ?? 0;
  return { copyMs: performance.now() - started, bytes: len };
}

describe('disk copy 7.2 → 7.2', () => {
  it('over unix sockets: counter continues, disk equal at the switch', async () => {
    const { bytes } = await moveWithDisks();
    expect(bytes).toBeGreaterThanOrEqual(4 * 1024 * 1024 - 1024);
  });

  it('over TCP on loopback (migration stream and NBD)', async () => {
    await moveWithDisks({ tcp: true });
  });
});

describe('disk copy of a qcow2 overlay with a backing file', () => {
  it("copied flat: the target image has the chain's content and no backing, the counter continues", async () => {
    await moveWithDisks({ backing: true });
  });
});

describe('disk copy over TLS (tls-creds-x509, certificates made by the test)', () => {
  it('the stream (TCP) and the NBD link (unix socket) both take TLS clients only', async () => {
    const { good } = await makeTlsDirs(path.join(suite.dir, 'pki'));
    await moveWithDisks({ tls: good });
  });
});

describe.skipIf(skip10)('disk copy 7.2 → 10.0 (pinned pc-i440fx-7.2)', () => {
  it('over unix sockets', async () => {
    await moveWithDisks({ qemu10: true });
  });

  it('over TCP on loopback', async () => {
    await moveWithDisks({ qemu10: true, tcp: true });
  });
});

describe('disk copy: failures leave the source as it was', () => {
  it('cancel while the mirror runs (twice: one roll-back; later: not-active)', async () => {
    const { m } = await source(8);
    const before = await blockState(m);
    // 256 KiB/s: the 8 MiB of data take 32 s to copy; the cancel comes at the first sample.
    const run = migrate(
      m,
      { runDir: tgtDir() },
      {
        logger: quiet,
        disks: 'copy',
        mirrorSpeed: 256 * 1024,
        progressInterval: 50,
      },
    );
    let first: Promise<void> | undefined;
    let second: Promise<void> | undefined;
    for await (const p of run.progress)
      if (p.phase === 'mirroring' && p.disks !== undefined) {
        expect(p.disks?.[0]?.ready).toBe(false);
        expect((await m.qmp.execute('query-jobs')).map((j) => j.id)).toEqual([
          'qmpkit-mig-mirror-boot',
        ]);
        first = run.cancel();
        second = run.cancel();
        break;
      }
    expect(second).toBe(first);
    await first;
    const e = await failure(run.result);
    expect(e.reason).toBe('aborted');
    expect(e.phase).toBe('mirroring');
    await expectSourceIntact(m, e, before);
    expect((await failure(run.cancel())).reason).toBe('not-active');
  });

  it('cancel at pre-switchover (mirrors already ended)', async () => {
    const { m } = await source(1);
    const before = await blockState(m);
    const run = migrate(
      m,
      { runDir: tgtDir() },
      {
        logger: quiet,
        disks: 'copy',
        beforeSwitchover: async () => {
          void run.cancel();
          await new Promise(() => {}); // never continues: the cancel decides
        },
      },
    );
    const e = await failure(run.result);
    expect(e.reason).toBe('aborted');
    expect(e.phase).toBe('switchover');
    await expectSourceIntact(m, e, before);
  });

  it('an NBD address nobody listens on: typed error at mirroring', async () => {
    const { m } = await source(1);
    const before = await blockState(m);
    const e = await failure(
      migrate(
        m,
        { runDir: tgtDir() },
        {
          logger: quiet,
          disks: 'copy',
          // The target's server goes away before the source connects: the socket is gone.
          onPhase: async (phase, { target }) => {
            if (phase === 'mirroring') await target?.qmp.execute('nbd-server-stop');
          },
        },
      ).result,
    );
    expect(e.reason).toBe('command-failed');
    expect(e.phase).toBe('mirroring');
    expect(e.message).toMatch(/connect/i);
    await expectSourceIntact(m, e, before);
  });

  it('a full disk on the target (ENOSPC from the image layer): disk-copy error', async () => {
    const { m } = await source(1);
    const before = await blockState(m);
    // The target's qcow2 sits on a blkdebug node that fails every write with errno 28
    // (ENOSPC), as a full file system under the image would: the NBD server passes the
    // error to the source, whose mirror fails with it.
    const targetImage = path.join(suite.dir, `full-${n}.qcow2`);
    const config = {
      ...m.config,
      blockdevs: [
        { driver: 'file' as const, 'node-name': 'boot-file', filename: targetImage },
        {
          driver: 'blkdebug' as const,
          'node-name': 'boot-full',
          image: 'boot-file',
          'inject-error': [{ event: 'pwritev' as const, errno: 28 }],
        },
        { driver: 'qcow2' as const, 'node-name': 'boot', file: 'boot-full' },
      ],
    };
    const e = await failure(
      migrate(m, { runDir: tgtDir(), config }, { logger: quiet, disks: 'copy' }).result,
    );
    expect(e.reason).toBe('disk-copy');
    expect(e.phase).toBe('mirroring');
    expect(e.desc).toMatch(/No space left on device/);
    await expectSourceIntact(m, e, before);
    expect(existsSync(targetImage)).toBe(false);
  });

  it('a target config that differs, or the same image as the source: refused, nothing made', async () => {
    const { m, image } = await source(1);
    const before = await blockState(m);
    const differs = await failure(
      migrate(
        m,
        { runDir: tgtDir(), config: { ...m.config, memory: { size: 64 * 1024 * 1024 } } },
        { logger: quiet, disks: 'copy' },
      ).result,
    );
    expect(differs.reason).toBe('config-mismatch');
    await expectSourceIntact(m, differs, before);
    const same = await failure(
      migrate(m, { runDir: tgtDir(), config: m.config }, { logger: quiet, disks: 'copy' }).result,
    );
    expect(same.reason).toBe('invalid-options');
    expect(same.desc).toContain(image);
    await expectSourceIntact(m, same, before);
  });

  it('a second migration while one copies: busy, the first completes', async () => {
    const { m } = await source(1);
    const first = migrate(m, { runDir: tgtDir() }, { logger: quiet, disks: 'copy' });
    const e = await failure(
      migrate(m, { runDir: `${tgtDir()}-b` }, { logger: quiet, disks: 'copy' }).result,
    );
    expect(e.reason).toBe('busy');
    expect(existsSync(`${tgtDir()}-b`)).toBe(false);
    const t = suite.adopt((await first.result).machine);
    expect((await t.qmp.execute('query-status')).status).toBe('running');
    await t.stop();
  });
});

/** Seeded PRNG (mulberry32): the same trials every run for a given seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TRIALS = Number.parseInt(process.env.QMPKIT_KILL_TRIALS ?? '2', 10);
const SEED = Number.parseInt(process.env.QMPKIT_KILL_SEED ?? '16', 10);
const KILL_PHASES: readonly MigrationPhase[] = [
  'starting-target',
  'setup',
  'mirroring',
  'transferring',
  'switchover',
];

/** `count` phases drawn from `phases` (seeded), each phase at least once when count allows. */
function draw(phases: readonly MigrationPhase[], count: number, seed: number): MigrationPhase[] {
  const random = prng(seed);
  return Array.from({ length: count }, (_, i) =>
    i < phases.length && count >= phases.length
      ? (phases[i] as MigrationPhase)
      : (phases[Math.floor(random() * phases.length)] as MigrationPhase),
  );
}

const timings: Record<string, number[]> = {};
function timed(kind: string, ms: number): void {
  timings[kind] ??= [];
  timings[kind].push(ms);
  if (process.env.QMPKIT_KILL_TRIALS !== undefined)
    console.log(`kill trial ${kind}: ${Math.round(ms)} ms`);
}

describe('disk copy: kill trials', () => {
  const plan = (victim: string, phases: readonly MigrationPhase[], salt: number) =>
    draw(phases, TRIALS, SEED + salt).map((phase, i) => ({ victim, phase, i }));

  it.each(plan('target', KILL_PHASES.slice(1), 1))(
    'SIGKILL of the target QEMU at $phase (trial $i)',
    async ({ phase }) => {
      const started = performance.now();
      const { m } = await source(1);
      const before = await blockState(m);
      let targetPid = 0;
      const e = await failure(
        migrate(
          m,
          { runDir: tgtDir() },
          {
            logger: quiet,
            disks: 'copy',
            onPhase: (p, { target }) => {
              if (p !== phase || target === undefined) return;
              targetPid = target.pid;
              process.kill(target.pid, 'SIGKILL');
            },
          },
        ).result,
      );
      expect(targetPid).toBeGreaterThan(0);
      expect(processAlive(targetPid)).toBe(false);
      await expectSourceIntact(m, e, before);
      expect(pidfileQemus(suite.dir)).toEqual([m.pid]);
      await m.stop();
      timed('target', performance.now() - started);
    },
  );

  it.each(plan('source', KILL_PHASES, 2))(
    'SIGKILL of the source QEMU at $phase (trial $i)',
    async ({ phase }) => {
      const started = performance.now();
      const { m } = await source(1);
      let targetPid = 0;
      const e = await failure(
        migrate(
          m,
          { runDir: tgtDir() },
          {
            logger: quiet,
            disks: 'copy',
            onPhase: (p, { target }) => {
              if (p !== phase) return;
              targetPid = target?.pid ?? 0;
              process.kill(m.pid, 'SIGKILL');
            },
          },
        ).result,
      );
      expect(e.sourceRunning).toBe(false);
      if (targetPid !== 0) expect(processAlive(targetPid)).toBe(false);
      expect(existsSync(tgtDir())).toBe(false);
      expect(pidfileQemus(suite.dir)).toEqual([]);
      // The source is relaunchable: its record was cleared, the guest boots and counts.
      const again = suite.adopt(await Machine.relaunch(m.stateFile ?? '', { logger: quiet }));
      expect(again.migration).toBeUndefined();
      await again.console('ser0').expect(/C=[0-9A-F]{8}\r\n/, { timeout: 30_000 });
      expect(await namedNodes(again)).toEqual(['boot-file:file', 'boot:qcow2']);
      await again.stop();
      timed('source', performance.now() - started);
    },
  );

  it.each(plan('ours', KILL_PHASES, 3))(
    'SIGKILL of the process running migrate at $phase (trial $i)',
    async ({ phase }) => {
      const started = performance.now();
      n += 1;
      const dir = path.join(suite.dir, `child-${n}`);
      mkdirSync(dir, { mode: 0o700 });
      const child = spawnNodeChild(
        path.join(import.meta.dirname, 'migrate-child.test-support.ts'),
        [dir, phase],
      );
      child.stderr.pipe(process.stderr);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
      });
      await exited;
      const got = JSON.parse(line) as {
        stateFile: string;
        sourcePid: number;
        targetPid: number | null;
        phase: string;
      };
      expect(got.phase).toBe(phase);
      // Both QEMUs outlive the manager; the state file says what to undo.
      expect(processAlive(got.sourcePid)).toBe(true);
      const state = await readState(got.stateFile);
      expect(state.runtime.migration).toMatchObject({ role: 'source', phase });
      const files = state.runtime.migration?.peer?.files ?? [];
      if (phase !== 'starting-target') expect(files.length).toBeGreaterThan(0);
      const again = suite.adopt(await Machine.relaunch(got.stateFile, { logger: quiet }));
      expect(processAlive(got.sourcePid)).toBe(false);
      if (got.targetPid !== null) expect(processAlive(got.targetPid)).toBe(false);
      expect(existsSync(path.join(dir, 'tgt'))).toBe(false);
      for (const f of files) expect(existsSync(f)).toBe(false);
      expect(pidfileQemus(suite.dir)).toEqual([again.pid]);
      expect(again.migration).toBeUndefined();
      expect(await namedNodes(again)).toEqual(['boot-file:file', 'boot:qcow2']);
      await again.console('ser0').expect(/C=[0-9A-F]{8}\r\n/, { timeout: 30_000 });
      await again.stop();
      timed('ours', performance.now() - started);
    },
  );
});

/**
 * After the switch (`confirming`: the source reported `completed`, so with `return-path` the
 * target has loaded the whole state; `finishing`: the target runs the guest) the truth moves to
 * the target. A kill there leaves exactly one VM: the target, or — only when the target itself
 * died before it was confirmed running — the source, resumed on its own image.
 */
const AFTER_SWITCH: readonly MigrationPhase[] = ['confirming', 'finishing'];

/** The target is the VM: it counts on its own copy of the disk, nothing of the copy is left. */
async function expectTargetIsTheVm(t: Machine, targetImage: string): Promise<void> {
  expect(t.config.blockdevs?.find((b) => b['node-name'] === 'boot-file')).toMatchObject({
    filename: targetImage,
  });
  expect(t.migration).toBeUndefined();
  expect((await readState(t.stateFile ?? '')).runtime.migration).toBeUndefined();
  expect(await blockState(t)).toEqual({
    nodes: ['boot-file:file', 'boot:qcow2'],
    jobs: [],
    exports: [],
  });
  t.console('ser0').read();
  const seen = await t.console('ser0').expect(/(C=[0-9A-F]{8}\r\n[\s\S]*){2}/, { timeout: 30_000 });
  expect(seen.before + seen.match).not.toMatch(/D=/);
}

/**
 * The source's state file says the VM moved to `targetState` (a phase from `from` on: the
 * record of a source QEMU that died stays at a phase between the one it died in and `done`,
 * depending on whether the run's next writes came before the exit was noticed); a relaunch is
 * refused.
 */
async function expectSourceMoved(
  stateFile: string,
  targetState: string,
  from: MigrationPhase = 'done',
): Promise<void> {
  const state = await readState(stateFile);
  expect(state.runtime.migration).toMatchObject({
    role: 'source',
    peer: { stateFile: targetState },
  });
  expect(MIGRATION_PHASES.slice(MIGRATION_PHASES.indexOf(from))).toContain(
    state.runtime.migration?.phase,
  );
  const again = await Machine.relaunch(stateFile, { logger: quiet }).catch((e: unknown) => e);
  expect(isLiveMigrationError(again) && again.reason).toBe('moved');
  expect(isLiveMigrationError(again) && again.peerStateFile).toBe(targetState);
}

/**
 * By hand (`QMPKIT_KILL_TRIALS` set): that many trials per victim, drawn like the ones before
 * the switch. CI: one per victim, the phase fixed by the victim (the source's death in
 * `confirming` has its own deterministic test below), to keep the file's time small.
 */
const AFTER_TRIALS = process.env.QMPKIT_KILL_TRIALS !== undefined ? TRIALS : 1;

describe('disk copy: kill trials after the switch', () => {
  const plan = (victim: string, salt: number) =>
    (AFTER_TRIALS === 1
      ? [AFTER_SWITCH[salt % AFTER_SWITCH.length] as MigrationPhase]
      : draw(AFTER_SWITCH, AFTER_TRIALS, SEED + salt)
    ).map((phase, i) => ({ victim, phase, i }));

  it.each(plan('target', 4))(
    'SIGKILL of the target QEMU at $phase (trial $i)',
    async ({ phase }) => {
      const started = performance.now();
      const { m, image } = await source(1);
      const before = await blockState(m);
      let targetPid = 0;
      const run = migrate(
        m,
        { runDir: tgtDir() },
        {
          logger: quiet,
          disks: 'copy',
          // Awaits the exit: the run sees the target gone before its next look at the target.
          onPhase: async (p, { target }) => {
            if (p !== phase || target === undefined) return;
            targetPid = target.pid;
            process.kill(target.pid, 'SIGKILL');
            await target.exited;
          },
        },
      );
      if (phase === 'confirming') {
        // Not confirmed running: the source takes the guest back on its own image (the
        // target's copy, never in use by a running VM, goes with the target's dir).
        const e = await failure(run.result);
        expect(e.reason).toBe('target-exited');
        expect(processAlive(targetPid)).toBe(false);
        await expectSourceIntact(m, e, before);
        expect(m.config.blockdevs?.find((b) => b['node-name'] === 'boot-file')).toMatchObject({
          filename: image,
        });
        expect(pidfileQemus(suite.dir)).toEqual([m.pid]);
        await m.stop();
      } else {
        // The target ran the guest: its death afterwards is the VM's crash, not the
        // migration's. The source is not resumed (an older state beside the target's disk);
        // the target's dir relaunches as the VM on its copy, the source's image is kept.
        const result = await run.result;
        const t = suite.adopt(result.machine);
        expect(t.pid).toBe(targetPid);
        expect(t.status).toBe('exited');
        expect(m.status).toBe('stopped');
        expect(existsSync(image)).toBe(true);
        await expectSourceMoved(m.stateFile ?? '', t.stateFile ?? '');
        expect(pidfileQemus(suite.dir)).toEqual([]);
        const again = suite.adopt(await Machine.relaunch(t.stateFile ?? '', { logger: quiet }));
        await expectTargetIsTheVm(again, path.join(tgtDir(), 'disks', path.basename(image)));
        expect(pidfileQemus(suite.dir)).toEqual([again.pid]);
        await again.stop();
      }
      timed(`target@${phase}`, performance.now() - started);
    },
  );

  it.each(plan('source', 5))(
    'SIGKILL of the source QEMU at $phase (trial $i)',
    async ({ phase }) => {
      const started = performance.now();
      const { m, image } = await source(1);
      const run = migrate(
        m,
        { runDir: tgtDir() },
        {
          logger: quiet,
          disks: 'copy',
          // Awaits the exit: the run sees the source gone before the target's RESUME.
          onPhase: async (p) => {
            if (p !== phase) return;
            process.kill(m.pid, 'SIGKILL');
            await m.exited;
          },
        },
      );
      // The target has the whole state (return-path: `completed` waited for its load): it is
      // the VM, the source's death changes nothing but how the source ends.
      const result = await run.result;
      const t = suite.adopt(result.machine);
      expect(m.status).toBe('stopped');
      expect((await t.qmp.execute('query-status')).status).toBe('running');
      await expectTargetIsTheVm(t, path.join(tgtDir(), 'disks', path.basename(image)));
      expect(existsSync(image)).toBe(true);
      // A QEMU that exited leaves its state file as it was (the record of the phase it died in).
      await expectSourceMoved(m.stateFile ?? '', t.stateFile ?? '', phase);
      expect(pidfileQemus(suite.dir)).toEqual([t.pid]);
      await t.stop();
      timed(`source@${phase}`, performance.now() - started);
    },
  );

  it('the source dies in confirming before the target runs: the target still becomes the VM', async () => {
    // Regression: the run treated any source exit as a failure and its roll-back killed the
    // target, which held the only complete copy of the guest: no VM ran. The target is held
    // (`stop`) so the run sees the source's exit before the target runs; the run's warning
    // that it waits for the target lets it go (`cont`).
    const { m, image } = await source(1);
    let held: Machine | undefined;
    let resumed: Promise<unknown> | undefined;
    const warnings: string[] = [];
    const run = migrate(
      m,
      { runDir: tgtDir() },
      {
        disks: 'copy',
        logger: {
          warn: (message: unknown) => {
            warnings.push(String(message));
            if (String(message).includes('waiting for the target') && held !== undefined)
              resumed = held.qmp.execute('cont');
          },
        },
        onPhase: async (p, { target }) => {
          if (p !== 'confirming' || target === undefined) return;
          await target.qmp.execute('stop');
          held = target;
          process.kill(m.pid, 'SIGKILL');
          await m.exited;
        },
      },
    );
    const result = await run.result;
    await resumed;
    const t = suite.adopt(result.machine);
    expect(warnings.filter((w) => w.includes('the source QEMU exited (SIGKILL)'))).toHaveLength(1);
    expect((await t.qmp.execute('query-status')).status).toBe('running');
    await expectTargetIsTheVm(t, path.join(tgtDir(), 'disks', path.basename(image)));
    await expectSourceMoved(m.stateFile ?? '', t.stateFile ?? '', 'confirming');
    expect(pidfileQemus(suite.dir)).toEqual([t.pid]);
    await t.stop();
  });

  it.each(plan('ours', 6))(
    'SIGKILL of the process running migrate at $phase (trial $i)',
    async ({ phase }) => {
      const started = performance.now();
      n += 1;
      const dir = path.join(suite.dir, `child-${n}`);
      mkdirSync(dir, { mode: 0o700 });
      const child = spawnNodeChild(
        path.join(import.meta.dirname, 'migrate-child.test-support.ts'),
        [dir, phase],
      );
      child.stderr.pipe(process.stderr);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
      });
      await exited;
      const got = JSON.parse(line) as {
        stateFile: string;
        sourcePid: number;
        targetPid: number;
        targetStateFile: string;
        phase: string;
      };
      expect(got.phase).toBe(phase);
      // Both QEMUs outlive the manager; both state files name the phase and each other.
      expect(processAlive(got.sourcePid)).toBe(true);
      expect(processAlive(got.targetPid)).toBe(true);
      expect((await readState(got.stateFile)).runtime.migration).toMatchObject({
        role: 'source',
        phase,
        peer: { stateFile: got.targetStateFile },
      });
      expect((await readState(got.targetStateFile)).runtime.migration).toMatchObject({
        role: 'target',
        phase,
        peer: { stateFile: got.stateFile },
      });
      // Recovery, in either order of the two dirs: the source's relaunch is refused (the VM
      // moved); the target's relaunches the VM on its copy of the disk and ends the source's
      // QEMU (paused, its monitor gone with the manager), finishing the migration.
      const first = await Machine.relaunch(got.stateFile, { logger: quiet }).catch(
        (e: unknown) => e,
      );
      expect(isLiveMigrationError(first) && first.reason).toBe('moved');
      const again = suite.adopt(await Machine.relaunch(got.targetStateFile, { logger: quiet }));
      expect(processAlive(got.sourcePid)).toBe(false);
      expect(processAlive(got.targetPid)).toBe(false);
      await expectTargetIsTheVm(again, path.join(dir, 'tgt', 'disks', 'child.qcow2'));
      expect(existsSync(path.join(dir, 'child.qcow2'))).toBe(true);
      await expectSourceMoved(got.stateFile, got.targetStateFile, phase);
      expect(pidfileQemus(suite.dir)).toEqual([again.pid]);
      await again.stop();
      timed(`ours@${phase}`, performance.now() - started);
    },
  );
});
