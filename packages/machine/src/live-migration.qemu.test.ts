/**
 * Live migration between two local QEMUs (`migrate()`), real QEMU 7.2 and, where the cache
 * holds it (CI does), 10.0. "Continues" means: the source's COM1 text and the target's, read
 * together, are one counter with no gap and no repeat. Cancels are made deterministic by
 * construction: at a phase boundary (`onPhase`), at `pre-switchover` (the source waits for us),
 * and during RAM copy with the target SIGSTOPped (the stream cannot finish while it sleeps).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { qemuSkipReason, qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { qemuCacheDir, resolveQemuBinary } from './binary.js';
import { isLiveMigrationError, type LiveMigrationError } from './errors.js';
import {
  type LiveMigrateOptions,
  type LiveMigrationResult,
  type MigrationProgress,
  type MigrationTarget,
  migrate,
} from './live-migration.js';
import { launch, Machine } from './machine.js';
import { guestConfig } from './qemu.test-support.js';
import { readState } from './state.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-live-migration-' });
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
/** What the last `moveAndCheck` source printed during its migration. */
let lastSourceText = '';
async function source(
  options: { qemu?: string; dirtyRam?: boolean; memoryMiB?: number } = {},
): Promise<Machine> {
  n += 1;
  const base = await guestConfig(suite.dir, {
    name: `g${n}`,
    ...(options.dirtyRam === true ? { dirtyRam: true, intervalMs: 0 } : {}),
    ...(options.memoryMiB !== undefined ? { memoryMiB: options.memoryMiB } : {}),
  });
  // On 10.0 the `pc` alias pins 10.0's own type (which 7.2 lacks).
  const config = options.qemu === '10.0' ? { ...base, machine: { type: 'pc' } } : base;
  const qemu = options.qemu === '10.0' ? await resolveQemuBinary('10.0', { cacheDir }) : undefined;
  const m = suite.adopt(
    await launch(config, {
      consoles: ['ser0'],
      runDir: path.join(suite.dir, `src-${n}`),
      logger: quiet,
      ...(qemu !== undefined ? { qemu } : {}),
    }),
  );
  await m.console('ser0').expect(/C=[0-9A-F]{8}\r\n/, { timeout: 30_000 });
  return m;
}

function counters(text: string): number[] {
  return [...text.matchAll(COUNTER)].map((m) => Number.parseInt(m[1] ?? '', 16));
}

function expectConsecutive(values: readonly number[]): void {
  expect(values.length).toBeGreaterThan(2);
  const first = values[0] ?? 0;
  expect(values).toEqual(values.map((_, i) => first + i));
}

/** Migrates, checks the target runs the guest and the counter continues across both sides. */
async function moveAndCheck(
  m: Machine,
  target: MigrationTarget,
  options: LiveMigrateOptions & { onResult?: (result: LiveMigrationResult) => void },
): Promise<Machine> {
  const sourceDir = m.runDir;
  const before = m.console('ser0').read();
  const run = migrate(
    m,
    { runDir: path.join(suite.dir, `tgt-${n}`), ...target },
    {
      logger: quiet,
      ...options,
    },
  );
  const result = await run.result;
  const t = suite.adopt(result.machine);
  options.onResult?.(result);
  expect(run.phase).toBe('done');
  expect(result.running).toBe(true);
  expect(m.status).toBe('stopped');
  expect((await t.qmp.execute('query-status')).status).toBe('running');
  // Everything the source printed up to its end, then the target's first lines.
  const sourceText = before + m.console('ser0').read();
  lastSourceText = sourceText.slice(before.length);
  const seen = await t.console('ser0').expect(/(C=[0-9A-F]{8}\r\n[\s\S]*){3}/, { timeout: 30_000 });
  const targetText = seen.before + seen.match + t.console('ser0').read();
  const all = counters(sourceText + targetText);
  expectConsecutive(all);
  expect(counters(targetText).length).toBeGreaterThan(0);
  expect(result.downtimeMs).not.toBeNull();
  expect(result.downtimeMs ?? -1).toBeGreaterThanOrEqual(0);
  expect(result.capabilities).toEqual(
    expect.arrayContaining([
      'events',
      'return-path',
      ...(result.postcopy ? ['postcopy-ram'] : ['pause-before-switchover']),
    ]),
  );
  // The source's state file says where the VM went; relaunching it is refused.
  const state = await readState(path.join(sourceDir, 'state.json'));
  expect(state.runtime.migration?.phase).toBe('done');
  expect(state.runtime.migration?.peer?.stateFile).toBe(t.stateFile);
  const again = await Machine.relaunch(path.join(sourceDir, 'state.json'), { logger: quiet }).catch(
    (e: unknown) => e,
  );
  expect(isLiveMigrationError(again) && again.reason).toBe('moved');
  // The target's state has no migration record: it is the VM.
  expect((await readState(t.stateFile ?? '')).runtime.migration).toBeUndefined();
  return t;
}

async function failure(promise: Promise<unknown>): Promise<LiveMigrationError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isLiveMigrationError(error)) throw new Error(`expected a LiveMigrationError, got ${error}`);
  return error;
}

/** The source after a failed migration: running, counting on, no migration recorded. */
async function expectSourceIntact(m: Machine, e: LiveMigrationError): Promise<void> {
  expect(e.sourceRunning).toBe(true);
  expect(m.status).toBe('running');
  expect((await m.qmp.execute('query-status')).status).toBe('running');
  m.console('ser0').read();
  await m.console('ser0').expect(/(C=[0-9A-F]{8}\r\n[\s\S]*){2}/, { timeout: 30_000 });
  expect(m.migration).toBeUndefined();
  expect((await readState(m.stateFile ?? '')).runtime.migration).toBeUndefined();
  expect(existsSync(path.join(suite.dir, `tgt-${n}`))).toBe(false);
}

describe('live migration 7.2 → 7.2', () => {
  it('over a unix socket: the counter continues, the target is the VM, and moves on again', async () => {
    const m = await source();
    const t = await moveAndCheck(m, {}, {});
    // The target is a machine like any other: it migrates again (its own record was cleared).
    n += 1;
    const t2 = await moveAndCheck(t, {}, {});
    expect(t.status).toBe('stopped');
    await t2.stop();
  });

  it('over TCP on loopback', async () => {
    const m = await source();
    const t = await moveAndCheck(m, {}, { transport: { type: 'tcp' } });
    await t.stop();
  });
});

describe.skipIf(skip10)('live migration 7.2 → 10.0', () => {
  it('with the pinned machine type, over a unix socket', async () => {
    const m = await source();
    expect(m.machineType).toBe('pc-i440fx-7.2');
    const t = await moveAndCheck(m, { qemu: await resolveQemuBinary('10.0', { cacheDir }) }, {});
    expect(t.qemuVersion.major).toBe(10);
    const type = await t.qmp.executeUnchecked('qom-get', { path: '/machine', property: 'type' });
    expect(type).toBe('pc-i440fx-7.2-machine');
    await t.stop();
  });

  it('a target QEMU without the source machine type: refused before anything starts', async () => {
    // 10.0's own type (pc → pc-i440fx-10.0) does not exist in 7.2.
    const m = await source({ qemu: '10.0' });
    expect(m.machineType).toBe('pc-i440fx-10.0');
    const e = await failure(
      migrate(
        m,
        { qemu: 'qemu-system-x86_64', runDir: path.join(suite.dir, `tgt-${n}`) },
        { logger: quiet },
      ).result,
    );
    expect(e.reason).toBe('machine-type');
    expect(e.phase).toBe('starting-target');
    await expectSourceIntact(m, e);
  });
});

describe('live migration: a paused source', () => {
  it('arrives paused with the same RAM counter', async () => {
    const m = await source();
    await m.qmp.execute('stop');
    const ram = await m.qmp.hmp('xp /1wx 0x500');
    const result = await migrate(m, { runDir: path.join(suite.dir, `tgt-${n}`) }, { logger: quiet })
      .result;
    const t = suite.adopt(result.machine);
    expect(result.running).toBe(false);
    expect((await t.qmp.execute('query-status')).status).toBe('paused');
    expect((await t.qmp.hmp('xp /1wx 0x500')).trim()).toBe(ram.trim());
    await t.stop();
  });
});

describe('live migration: cancel and failure leave the source as it was', () => {
  it('cancel at set-up (the target runs, nothing sent yet)', async () => {
    const m = await source();
    const controller = new AbortController();
    const phases: string[] = [];
    const run = migrate(
      m,
      { runDir: path.join(suite.dir, `tgt-${n}`) },
      {
        logger: quiet,
        signal: controller.signal,
        onPhase: (phase) => {
          phases.push(phase);
          if (phase === 'setup') controller.abort(new Error('changed my mind'));
        },
      },
    );
    const e = await failure(run.result);
    expect(e.reason).toBe('aborted');
    expect(e.phase).toBe('setup');
    expect(phases).toEqual(['starting-target', 'setup']);
    await expectSourceIntact(m, e);
  });

  it('cancel during the RAM copy (the target is stopped, so the copy cannot end)', async () => {
    const m = await source();
    const run = migrate(
      m,
      { runDir: path.join(suite.dir, `tgt-${n}`) },
      {
        logger: quiet,
        progressInterval: 50,
        onPhase: (phase, { target }) => {
          // A stopped target reads nothing: the stream stays in `active` until cancelled.
          if (phase === 'transferring' && target !== undefined) process.kill(target.pid, 'SIGSTOP');
        },
      },
    );
    let cancelled: Promise<void> | undefined;
    let second: Promise<void> | undefined;
    for await (const p of run.progress) {
      if (p.status === 'active' && p.transferred > 0) {
        cancelled = run.cancel();
        second = run.cancel();
        expect(p.phase).toBe('transferring');
        expect(p.total).toBeGreaterThanOrEqual(32 * 1024 * 1024);
        break;
      }
    }
    expect(second).toBe(cancelled);
    await cancelled;
    const e = await failure(run.result);
    expect(e.reason).toBe('aborted');
    expect(e.phase).toBe('transferring');
    await expectSourceIntact(m, e);
    // A third cancel, after the end: a typed error, the source untouched.
    const late = await failure(run.cancel());
    expect(late.reason).toBe('not-active');
    expect(m.status).toBe('running');
  });

  it('a phase past its deadline: a warning first, then a timeout and a roll-back', async () => {
    const m = await source();
    const warnings: string[] = [];
    const run = migrate(
      m,
      { runDir: path.join(suite.dir, `tgt-${n}`) },
      {
        logger: { warn: (message) => warnings.push(message) },
        progressInterval: 50,
        deadlines: { transfer: { warnAfter: 300, failAfter: 1500 } },
        onPhase: (phase, { target }) => {
          if (phase === 'transferring' && target !== undefined) process.kill(target.pid, 'SIGSTOP');
        },
      },
    );
    const e = await failure(run.result);
    expect(e.reason).toBe('timeout');
    expect(e.phase).toBe('transferring');
    expect(warnings.filter((w) => /phase transferring has taken/.test(w))).toHaveLength(1);
    await expectSourceIntact(m, e);
  });

  it('relaunch after a crash in the middle: the source is the VM, the target dir goes', async () => {
    const m = await source();
    const targetDir = path.join(suite.dir, `tgt-${n}`);
    let saved = '';
    const run = migrate(
      m,
      { runDir: targetDir },
      {
        logger: quiet,
        onPhase: (phase, { target }) => {
          if (phase !== 'transferring' || target === undefined) return;
          process.kill(target.pid, 'SIGSTOP');
          saved = readFileSync(m.stateFile ?? '', 'utf8');
        },
      },
    );
    for await (const p of run.progress) if (p.status === 'active') break;
    await run.cancel();
    await m.kill();
    // What a manager killed during the copy leaves: the record, and the target's run dir.
    expect(JSON.parse(saved).runtime.migration).toMatchObject({
      role: 'source',
      phase: 'transferring',
      peer: { runDir: targetDir, createdRunDir: true },
    });
    mkdirSync(targetDir, { mode: 0o700 });
    writeFileSync(path.join(targetDir, 'state.json'), '{}');
    writeFileSync(m.stateFile ?? '', saved);
    const again = suite.adopt(await Machine.relaunch(m.stateFile ?? '', { logger: quiet }));
    expect(existsSync(targetDir)).toBe(false);
    expect(again.migration).toBeUndefined();
    expect((await readState(again.stateFile ?? '')).runtime.migration).toBeUndefined();
    await again.console('ser0').expect(/C=[0-9A-F]{8}\r\n/, { timeout: 30_000 });
    await again.stop();
  });

  it('cancel at pre-switchover (the source is stopped and waits for us)', async () => {
    const m = await source();
    const run = migrate(
      m,
      { runDir: path.join(suite.dir, `tgt-${n}`) },
      {
        logger: quiet,
        beforeSwitchover: async ({ source: s, info }) => {
          expect(info.status).toBe('pre-switchover');
          expect((await s.qmp.execute('query-status')).running).toBe(false);
          void run.cancel();
          await new Promise(() => {}); // never continues: the cancel decides
        },
      },
    );
    const e = await failure(run.result);
    expect(e.reason).toBe('aborted');
    expect(e.phase).toBe('switchover');
    await expectSourceIntact(m, e);
  });

  it('a target configuration that differs: refused, nothing started', async () => {
    const m = await source();
    const e = await failure(
      migrate(
        m,
        {
          runDir: path.join(suite.dir, `tgt-${n}`),
          config: { ...m.config, memory: { size: 64 * 1024 * 1024 } },
        },
        { logger: quiet },
      ).result,
    );
    expect(e.reason).toBe('config-mismatch');
    expect(e.differences).toEqual([
      expect.stringMatching(/^memory: source .*33554432.*target .*67108864/),
    ]);
    await expectSourceIntact(m, e);
  });

  it('a second migration while one runs: busy, the first one goes on', async () => {
    const m = await source();
    const first = migrate(m, { runDir: path.join(suite.dir, `tgt-${n}`) }, { logger: quiet });
    const e = await failure(
      migrate(m, { runDir: path.join(suite.dir, `tgt-${n}-b`) }, { logger: quiet }).result,
    );
    expect(e.reason).toBe('busy');
    expect(existsSync(path.join(suite.dir, `tgt-${n}-b`))).toBe(false);
    const t = suite.adopt((await first.result).machine);
    expect((await t.qmp.execute('query-status')).status).toBe('running');
    await t.stop();
  });

  it('a target that cannot listen (the TCP port is taken): typed error, source untouched', async () => {
    const m = await source();
    const { createServer } = await import('node:net');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const e = await failure(
        migrate(
          m,
          { runDir: path.join(suite.dir, `tgt-${n}`) },
          {
            logger: quiet,
            transport: { type: 'tcp', port },
          },
        ).result,
      );
      expect(e.reason).toBe('command-failed');
      expect(e.phase).toBe('setup');
      await expectSourceIntact(m, e);
    } finally {
      server.close();
    }
  });
});

describe('convergence: a guest that rewrites all its RAM on every iteration', () => {
  // 8 MiB of RAM, ~7 MiB of it above 1 MiB rewritten without pause; the link is capped at
  // 16 MiB/s. Every pass over RAM therefore finds (nearly) all of it dirty again, and sending
  // that takes more than 400 ms — longer than a 300 ms downtime limit. Non-convergence is a
  // matter of these numbers, not of timing: only a higher limit (or throttling) can end it.
  const MiB = 1024 * 1024;
  const link = 16 * MiB;

  /**
   * Checks the construction: the guest finished a full rewrite of its RAM (an `F=` line) at
   * least once per pass QEMU made over it, so every pass found all of it dirty again.
   */
  function expectRedirtied(guestText: string, samples: readonly MigrationProgress[]): void {
    const passes = Math.max(...samples.map((s) => s.iterations));
    expect(passes).toBeGreaterThanOrEqual(3);
    const fills = [...guestText.matchAll(/F=([0-9A-F]{8})\r\n/g)].length;
    expect(fills).toBeGreaterThanOrEqual(passes);
  }

  it('without means left to the controller: does-not-converge, the source untouched', async () => {
    const m = await source({ dirtyRam: true, memoryMiB: 8 });
    m.console('ser0').read(); // from here on: what the guest printed during the migration
    const run = migrate(
      m,
      { runDir: path.join(suite.dir, `tgt-${n}`) },
      {
        logger: quiet,
        maxBandwidth: link,
        progressInterval: 100,
        convergence: {
          initialDowntimeLimit: 300,
          maxDowntimeLimit: 300,
          autoConverge: false,
          giveUpPasses: 3,
        },
      },
    );
    const samples: MigrationProgress[] = [];
    const collecting = (async () => {
      for await (const p of run.progress) samples.push(p);
    })();
    const e = await failure(run.result);
    await collecting;
    expect(e.reason).toBe('does-not-converge');
    expect(e.desc).toMatch(/remaining RAM stopped shrinking: \d+ bytes after pass \d+/);
    expectRedirtied(m.console('ser0').read(), samples);
    await expectSourceIntact(m, e);
  });

  it('with the controller raising the downtime limit: converges, the counter continues', async () => {
    const m = await source({ dirtyRam: true, memoryMiB: 8 });
    const samples: MigrationProgress[] = [];
    const t = await moveAndCheck(
      m,
      {},
      {
        maxBandwidth: link,
        progressInterval: 100,
        onSample: (s) => {
          samples.push(s);
        },
        convergence: { initialDowntimeLimit: 100, maxDowntimeLimit: 4000, autoConverge: false },
        onResult: (result) => {
          const raised = result.decisions.filter((d) => d.action === 'raise-downtime-limit');
          expect(raised.length).toBeGreaterThan(0);
          // The limit that let it finish is above what a pass leaves dirty at the link's rate.
          expect(raised.at(-1)?.downtimeLimit.to ?? 0).toBeGreaterThanOrEqual(400);
        },
      },
    );
    expectRedirtied(lastSourceText, samples);
    await t.stop();
  });

  const stuck = {
    maxBandwidth: link,
    progressInterval: 100,
    convergence: {
      initialDowntimeLimit: 300,
      maxDowntimeLimit: 300,
      autoConverge: false,
      giveUpPasses: 3,
    },
  } as const;

  it('with post-copy: the controller switches instead of giving up, the counter continues', async () => {
    const m = await source({ dirtyRam: true, memoryMiB: 8 });
    const phases: string[] = [];
    const t = await moveAndCheck(
      m,
      {},
      {
        ...stuck,
        postcopy: true,
        onPhase: (p) => {
          phases.push(p);
        },
        onResult: (result) => {
          expect(result.postcopy).toBe(true);
          expect(result.capabilities).toContain('postcopy-ram');
          const switched = result.decisions.filter((d) => d.action === 'start-postcopy');
          expect(switched).toHaveLength(1);
          expect(switched[0]?.reason).toMatch(/remaining RAM stopped shrinking.*post-copy/);
          expect(result.decisions.some((d) => d.action === 'give-up')).toBe(false);
        },
      },
    );
    // Post-copy's switch is the hand-over (switchover), the target then runs the guest.
    expect(phases).toEqual([
      'starting-target',
      'setup',
      'transferring',
      'switchover',
      'confirming',
      'finishing',
    ]);
    await t.stop();
  });

  it("post-copy on request ('immediate', no controller): switches at the first sample", async () => {
    const m = await source({ dirtyRam: true, memoryMiB: 8 });
    const t = await moveAndCheck(
      m,
      {},
      {
        maxBandwidth: link,
        progressInterval: 100,
        convergence: false,
        postcopy: 'immediate',
        onResult: (result) => {
          expect(result.postcopy).toBe(true);
          expect(result.decisions).toEqual([]);
        },
      },
    );
    await t.stop();
  });
});
