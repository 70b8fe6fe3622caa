/**
 * Crash campaign (issue #12 §1): our Node process is SIGKILLed at seeded pseudo-random
 * moments of a launch, and of a save and a load with each strategy — 8 kills. After each
 * kill the machine is relaunched from its state file and the store reopened, and the test
 * asserts what must hold whatever the moment was:
 * - no stray QEMU: the only QEMU of the VM's directory is the relaunched one, and none is
 *   left after it stops (a kill before the state file exists leaves no QEMU at all);
 * - no lost snapshot: `previous`, committed before the kill, is listed and loads, and
 *   continues from its save point; a `victim` that made it into the manifest loads too.
 * The moment of each kill comes from the seed (`QMPKIT_CRASH_SEED`, default below), so a
 * failing run can be repeated; which phase a given delay hits depends on the host's speed,
 * and the assertions do not.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Machine, runDirProcesses } from '@qmpkit/machine';
import { describe, expect, it } from 'vitest';
import { openSnapshots } from '../snapshots.js';
import type { StrategyKind } from '../types.js';
import { COUNTER, nextCounter, qemuSuite } from './qemu.test-support.js';

const { tmp, started } = qemuSuite();

const SEED = Number(process.env.QMPKIT_CRASH_SEED ?? 20261207);

/** mulberry32: a small seeded PRNG (uniform in [0, 1)). */
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

type Op = 'launch' | 'save' | 'load';
/**
 * Milliseconds after `go` within which the kill falls: about the operation's length for the
 * 16 MiB test guest under TCG here (internal saves and loads of it take ~100–200 ms).
 */
function window(op: Op, kind: StrategyKind): number {
  if (op === 'launch') return 700;
  if (kind === 'external') return op === 'save' ? 700 : 1000;
  return op === 'save' ? 150 : 200;
}
const random = prng(SEED);
const TRIALS: { op: Op; kind: StrategyKind; delay: number }[] = (
  [
    ['launch', 'external'],
    ['launch', 'external'],
    ['save', 'external'],
    ['load', 'external'],
    ['save', 'internal-jobs'],
    ['load', 'internal-jobs'],
    ['save', 'internal-hmp'],
    ['load', 'internal-hmp'],
  ] as const
).map(([op, kind]) => ({ op, kind, delay: Math.floor(random() * window(op, kind)) }));

interface Ready {
  stateFile: string;
  at: number;
}

async function runAndKill(
  dir: string,
  kind: StrategyKind,
  op: Op,
  delay: number,
): Promise<{ ready: Ready | undefined; done: boolean; stderr: string }> {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@qmpkit/source',
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'campaign-child.test-support.ts'),
      dir,
      kind,
      op,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const ended = new Promise((resolve) => child.once('exit', resolve));
  let ready: Ready | undefined;
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  for await (const line of createInterface({ input: child.stdout })) {
    const msg = JSON.parse(line) as { ready?: Ready; go?: boolean; done?: boolean };
    if (msg.ready) ready = msg.ready;
    if (msg.go) timer = setTimeout(() => child.kill('SIGKILL'), delay);
    if (msg.done) {
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
    }
  }
  clearTimeout(timer);
  await ended;
  return { ready, done, stderr };
}

describe(`SIGKILL of the manager at seeded moments (seed ${SEED})`, () => {
  it.each(TRIALS)(
    '$op with $kind, killed $delay ms in',
    async ({ op, kind, delay }) => {
      const dir = path.join(tmp.dir, `${op}-${kind}-${delay}`);
      mkdirSync(dir, { mode: 0o700 });
      const { ready, done, stderr } = await runAndKill(dir, kind, op, delay);
      const stateFile = ready?.stateFile ?? path.join(dir, 'run', 'state.json');
      if (!existsSync(stateFile)) {
        // Killed before the state file was written: then no QEMU was spawned either.
        expect(op, stderr).toBe('launch');
        expect(await runDirProcesses(dir, { nested: true })).toEqual([]);
        return;
      }
      const warnings: string[] = [];
      const m = started.add(
        await Machine.relaunch(stateFile, {
          logger: { warn: (message) => warnings.push(message) },
        }),
      );
      const ended = warnings.filter((w) => w.startsWith('ended a leftover QEMU')).length;
      // For the record (the numbers in the closing note): what each kill hit.
      console.log(
        `crash campaign: ${op} ${kind} +${delay} ms: ${done ? 'operation had finished' : 'killed mid-operation'}, ${ended} leftover QEMU(s) ended by the relaunch`,
      );
      expect((await runDirProcesses(dir, { nested: true })).map((p) => p.pid)).toEqual([m.pid]);
      await m.console('ser0').expect(COUNTER, { timeout: 30_000 });
      if (op !== 'launch') {
        if (ready === undefined) throw new Error(`child not ready:\n${stderr}`);
        const snaps = await openSnapshots(m, { dir: path.join(dir, 'store'), strategy: kind });
        const names = (await snaps.list()).map((s) => s.name);
        expect(names[0]).toBe('previous');
        expect(names.length === 1 || names[1] === 'victim').toBe(true);
        expect(snaps.store.manifest.pending).toEqual([]);
        if (names.includes('victim')) {
          await snaps.load('victim');
          await nextCounter(m);
        }
        await snaps.load('previous');
        const next = await nextCounter(m);
        expect(next).toBeGreaterThan(ready.at);
        expect(next).toBeLessThanOrEqual(ready.at + 3);
        expect((await runDirProcesses(dir, { nested: true })).map((p) => p.pid)).toEqual([m.pid]);
      }
      await m.stop();
      expect(await runDirProcesses(dir, { nested: true })).toEqual([]);
    },
    120_000,
  );
});
