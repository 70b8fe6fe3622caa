/**
 * The post-copy recovery suites' harness (same-version and cross-version files): a guest that
 * rewrites its 8 MiB of RAM, a migration whose post-copy is slowed to 2 MiB/s, and a break made
 * deterministic by construction — post-copy's own bandwidth limit keeps seconds of RAM
 * outstanding after the switch, the target is SIGSTOPped at its RESUME (device state loaded:
 * the guest is the target's) so the stream cannot finish, and the harness cuts it with
 * `pausePostcopy()` (`migrate-pause`). "Continues" means: the source's COM1 text and the
 * target's, read together, are one counter with no gap and no repeat. Not published.
 */
import path from 'node:path';
import { launchQemu, QEMU, type QemuBinary, type QemuSuite } from '@qmpkit/testguest/test-support';
import { expect } from 'vitest';
import { isLiveMigrationError, type LiveMigrationError } from './errors.js';
import {
  type LiveMigrateOptions,
  type LiveMigration,
  type MigrationProgress,
  type MigrationTarget,
  migrate,
} from './live-migration.js';
import { launch, Machine } from './machine.js';
import { guestConfig } from './qemu.test-support.js';

/** What the harness needs of the file's `qemuSuite()`. */
export type PostcopySuite = Pick<QemuSuite, 'dir' | 'adopt'>;

export const quiet = { warn: () => {} };
const COUNTER = /C=([0-9A-F]{8})\r\n/g;
const MiB = 1024 * 1024;

let n = 0;
export async function source(suite: PostcopySuite, binary: QemuBinary = QEMU): Promise<Machine> {
  n += 1;
  const config = await guestConfig(suite.dir, {
    name: `g${n}`,
    dirtyRam: true,
    intervalMs: 0,
    memoryMiB: 8,
  });
  const m = suite.adopt(
    await launch(config, {
      ...launchQemu(binary),
      consoles: ['ser0'],
      runDir: path.join(suite.dir, `src-${n}`),
      logger: quiet,
    }),
  );
  await m.console('ser0').expect(/C=[0-9A-F]{8}\r\n/, { timeout: 30_000 });
  return m;
}

function counters(text: string): number[] {
  return [...text.matchAll(COUNTER)].map((m) => Number.parseInt(m[1] ?? '', 16));
}

export async function failure(promise: Promise<unknown>): Promise<LiveMigrationError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isLiveMigrationError(error)) throw new Error(`expected a LiveMigrationError, got ${error}`);
  return error;
}

// 2 MiB/s, also after the switch (post-copy has its own limit, unlimited by default): the guest
// rewrites all its RAM, so at the switch most of the 8 MiB is still to come, for seconds.
const slowPostcopy: LiveMigrateOptions = {
  maxBandwidth: 2 * MiB,
  parameters: { 'max-postcopy-bandwidth': 2 * MiB },
  progressInterval: 100,
  convergence: false,
  postcopy: 'immediate',
};

/**
 * Starts the migration; at the target's RESUME freezes the target and pauses the stream from
 * the source's side, then lets the target go on (it notices the broken link itself).
 */
export function migrateAndBreak(
  suite: PostcopySuite,
  m: Machine,
  options: LiveMigrateOptions,
  target: MigrationTarget = {},
) {
  const seen: {
    target?: Machine;
    paused?: Promise<void>;
    early?: Promise<LiveMigrationError>;
    phases: string[];
    relaunch: Promise<unknown>[];
  } = { phases: [], relaunch: [] };
  let cut: () => void = () => {};
  /** Settles once the stream was cut (the target is running again then). */
  const wasCut = new Promise<void>((resolve) => {
    cut = resolve;
  });
  const run: LiveMigration = migrate(
    m,
    { runDir: path.join(suite.dir, `tgt-${n}`), ...target },
    {
      logger: quiet,
      ...slowPostcopy,
      ...options,
      onPhase: async (phase, { target }) => {
        seen.phases.push(phase);
        if (phase === 'setup' && target !== undefined) {
          seen.target = suite.adopt(target);
          // No migration yet: refused, nothing changes.
          seen.early = failure(run.pausePostcopy());
          target.qmp.on('RESUME', () => {
            if (seen.paused !== undefined) return;
            process.kill(target.pid, 'SIGSTOP');
            seen.paused = run.pausePostcopy().finally(() => {
              process.kill(target.pid, 'SIGCONT');
              cut();
            });
          });
        }
        // A manager that restarts now must leave both QEMUs alone: relaunch refuses both.
        if (phase === 'postcopy-paused' && target !== undefined && seen.relaunch.length === 0)
          for (const file of [m.stateFile ?? '', target.stateFile ?? ''])
            seen.relaunch.push(Machine.relaunch(file, { logger: quiet }).catch((e: unknown) => e));
      },
    },
  );
  const samples: MigrationProgress[] = [];
  const collected = (async () => {
    for await (const p of run.progress) samples.push(p);
  })();
  return { run, seen, samples, collected, wasCut };
}

/** The guest counts on across the source's text and the target's. */
export async function expectContinues(sourceText: string, t: Machine): Promise<void> {
  const seen = await t.console('ser0').expect(/(C=[0-9A-F]{8}\r\n[\s\S]*){3}/, { timeout: 30_000 });
  const all = counters(sourceText + seen.before + seen.match + t.console('ser0').read());
  expect(all.length).toBeGreaterThan(3);
  const first = all[0] ?? 0;
  expect(all).toEqual(all.map((_, i) => first + i));
}

export async function expectRelaunchRefused(relaunch: readonly Promise<unknown>[]): Promise<void> {
  expect(relaunch).toHaveLength(2);
  for (const e of await Promise.all(relaunch))
    expect(isLiveMigrationError(e) && e.reason).toBe('postcopy-paused');
}
