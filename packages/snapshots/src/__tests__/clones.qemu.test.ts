/**
 * Clones from one external snapshot (issue #16 §7), on the binary this run is about: the
 * tiny test guest with its RAM in a shared `memory-backend-file`, saved as a template
 * (`sharedRam`: RAM file + `x-ignore-shared`) and as a plain snapshot (RAM in the stream).
 * Clones map the template's RAM file privately: each continues the counter from the saved
 * value, dirties its RAM and writes its own disk, stops alone, and no file of the snapshot
 * (state file, RAM file, frozen layer) changes — size, mtime and SHA-256 compared.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { MiB, type VmConfig } from '@qmpkit/devices';
import type { Machine } from '@qmpkit/machine';
import { launchQemu, QEMU, qemuSuite } from '@qmpkit/testguest/test-support';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Clone, cloneSnapshot } from '../clones.js';
import { isSnapshotCloneError, isSnapshotNotFoundError } from '../errors.js';
import { openSnapshots, type Snapshots } from '../snapshots.js';
import { sha256File } from '../statefile.js';
import { guestConfig, nextCounter, ramCounter, startGuest } from './qemu.test-support.js';

const suite = qemuSuite({ kill: 'all', prefix: 'qmpkit-clones-' });
const MEM = 16 * MiB;

interface Fingerprint {
  readonly size: number;
  readonly mtimeMs: number;
  readonly sha256: string;
}
async function fingerprint(files: readonly string[]): Promise<Record<string, Fingerprint>> {
  const out: Record<string, Fingerprint> = {};
  for (const f of files) {
    const st = statSync(f);
    out[f] = { size: st.size, mtimeMs: st.mtimeMs, sha256: await sha256File(f) };
  }
  return out;
}

/** Whether the qcow2 image holds data of its own (not only its backing file's). */
async function ownData(image: string): Promise<boolean> {
  const { stdout } = await promisify(execFile)(QEMU.img, [
    'map',
    '-U',
    '--output=json',
    '-f',
    'qcow2',
    image,
  ]);
  const map = JSON.parse(stdout) as { depth: number; data: boolean }[];
  return map.some((e) => e.depth === 0 && e.data);
}

let store: string;
let template: Machine;
let templateSnaps: Snapshots;
let templateFiles: string[];
let before: Record<string, Fingerprint>;

beforeAll(async () => {
  const base = await guestConfig(suite.dir, { name: 'tpl' });
  const config: VmConfig = {
    ...base,
    memory: { size: MEM },
    machine: { ...base.machine, 'memory-backend': 'ram0' },
    objects: [
      {
        'qom-type': 'memory-backend-file',
        id: 'ram0',
        size: MEM,
        'mem-path': path.join(suite.dir, 'tpl.ram'),
        share: true,
      },
    ],
  };
  const m: Machine = suite.adopt(await startGuest(suite.dir, config));
  store = path.join(suite.dir, 'store');
  const snaps = await openSnapshots(m, { dir: store, strategy: 'external' });
  template = m;
  templateSnaps = snaps;
  await nextCounter(m);
  const tpl = await snaps.save('tpl', { sharedRam: true });
  expect(tpl.sharedRam?.used).toBe(true);
  await nextCounter(m);
  const plain = await snaps.save('plain', { portable: true });
  expect(plain.sharedRam).toBeUndefined();
  // The template's stream leaves the RAM block out (QEMU sends zero pages as flags only, so
  // the plain stream is small too, but it carries every page the guest touched).
  expect(tpl.bytesWritten).toBeLessThan(plain.bytesWritten);
  await m.stop();
  const records = snaps.store.snapshots();
  templateFiles = records.flatMap((r) =>
    [r.stateFile?.path, r.ramFile?.path, ...r.layers].filter((f): f is string => f !== undefined),
  );
  // Two state files, one RAM file, and the frozen layers.
  expect(templateFiles.length).toBeGreaterThanOrEqual(4);
  before = await fingerprint(templateFiles);
}, 120_000);

/** Resumes each paused clone; its counter continues exactly from the saved RAM value. */
async function continuesFromSnapshot(clones: readonly Clone[]): Promise<number> {
  const saved = await Promise.all(clones.map((c) => ramCounter(c.machine)));
  const n = saved[0] ?? Number.NaN;
  expect(n).toBeGreaterThan(0);
  expect(saved).toEqual(clones.map(() => n));
  for (const c of clones) await c.machine.qmp.execute('cont');
  for (const c of clones) {
    // The console's unread text at the save comes back first (as with a load); it ends with
    // the last line the template printed, n, then the clone's own output follows.
    let line = await nextCounter(c.machine);
    while (line < n) line = await nextCounter(c.machine);
    expect(line).toBe(n);
    expect(await nextCounter(c.machine)).toBe(n + 1);
    expect(await nextCounter(c.machine)).toBe(n + 2);
  }
  return n;
}

describe('clones of a sharedRam template', () => {
  it('map the RAM file privately, continue the counter, write their own disks, stop alone; the template is untouched', async () => {
    const into = path.join(suite.dir, 'farm');
    // Ten, as issue #16 asks of a test farm's fan-out (tiny guests: 10 TCG QEMUs fit CI).
    const set = await cloneSnapshot(store, 'tpl', {
      count: 10,
      into,
      ...launchQemu(),
      consoles: ['ser0'],
      resume: false,
    });
    for (const c of set.clones) suite.adopt(c.machine);
    expect(set.ram).toBe('private-map');
    expect(set.clones.map((c) => path.basename(c.dir))).toEqual(
      Array.from({ length: 10 }, (_, i) => `tpl-${i + 1}`),
    );
    expect(new Set(set.clones.map((c) => c.machine.pid)).size).toBe(10);
    for (const c of set.clones) {
      expect(existsSync(c.qmpSocket)).toBe(true);
      expect(c.stateFile).toBe(path.join(c.dir, 'state.json'));
    }
    const n = await continuesFromSnapshot(set.clones);

    // Independent: the first one stops, the others keep counting.
    const [first, ...rest] = set.clones;
    await first?.machine.stop();
    for (const c of rest) expect(await nextCounter(c.machine)).toBeGreaterThan(n + 2);
    for (const c of rest) await c.machine.stop();
    // Each wrote its own overlay (the guest writes its counter to the disk every tick).
    for (const c of set.clones)
      expect(await ownData(path.join(c.dir, 'disks', '0.qcow2'))).toBe(true);
    // The clones ran and dirtied RAM; no file of the snapshot changed.
    expect(await fingerprint(templateFiles)).toEqual(before);
  }, 240_000);

  it('ram: copy gives a clone its own copy of the RAM file; a plain snapshot loads RAM from the stream', async () => {
    const into = path.join(suite.dir, 'copies');
    const copied = await cloneSnapshot(store, 'tpl', {
      count: 1,
      into,
      prefix: 'copy',
      ram: 'copy',
      ...launchQemu(),
      consoles: ['ser0'],
      resume: false,
    });
    const streamed = await cloneSnapshot(store, 'plain', {
      count: 2,
      into,
      ...launchQemu(),
      consoles: ['ser0'],
      resume: false,
    });
    for (const c of [...copied.clones, ...streamed.clones]) suite.adopt(c.machine);
    expect(copied.ram).toBe('file-copy');
    expect(streamed.ram).toBe('stream');
    expect(statSync(path.join(copied.clones[0]?.dir ?? '', 'ram')).size).toBe(MEM);
    await continuesFromSnapshot(copied.clones);
    const fromPlain = await continuesFromSnapshot(streamed.clones);
    expect(fromPlain).toBeGreaterThan(0);
    for (const c of [...copied.clones, ...streamed.clones]) await c.machine.stop();
    expect(await fingerprint(templateFiles)).toEqual(before);
  }, 90_000);
});

it('a load of the template maps its RAM file privately too (the VM runs on, the file stays)', async () => {
  const record = templateSnaps.store.find('tpl');
  await templateSnaps.load('tpl', { resume: false });
  const n = await ramCounter(template);
  expect(n).toBeGreaterThan(0);
  expect(template.config.objects?.find((o) => o.id === 'ram0')).toMatchObject({
    'mem-path': record?.ramFile?.path,
    share: false,
  });
  await template.qmp.execute('cont');
  let line = await nextCounter(template);
  while (line < n) line = await nextCounter(template);
  expect(await nextCounter(template)).toBe(n + 1);
  await template.stop();
  const ramFile = record?.ramFile?.path ?? '';
  expect((await fingerprint([ramFile]))[ramFile]).toEqual(before[ramFile]);
}, 60_000);

describe('refusals leave nothing behind', () => {
  it('count, missing snapshot, missing store, existing clone dir, a QEMU that does not start: typed errors, no QEMU, no directory', async () => {
    const into = path.join(suite.dir, 'refused');
    const opts = { count: 2, into, ...launchQemu() };
    const reason = (e: unknown) => (isSnapshotCloneError(e) ? e.reason : e);

    for (const count of [0, -1, 1.5])
      expect(reason(await cloneSnapshot(store, 'tpl', { ...opts, count }).catch((e) => e))).toBe(
        'count',
      );
    const missing = await cloneSnapshot(store, 'nope', opts).catch((e: unknown) => e);
    expect(isSnapshotNotFoundError(missing)).toBe(true);
    expect(
      reason(
        await cloneSnapshot(path.join(suite.dir, 'no-vm', 'snapshots'), 'tpl', opts).catch(
          (e) => e,
        ),
      ),
    ).toBe('no-store');
    expect(existsSync(path.join(suite.dir, 'no-vm'))).toBe(false);
    expect(existsSync(into)).toBe(false);

    // An existing clone directory: refused before anything else is created.
    const farm = path.join(suite.dir, 'taken');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(path.join(farm, 'tpl-2'), { recursive: true });
    const taken = await cloneSnapshot(store, 'tpl', { ...opts, into: farm }).catch((e) => e);
    expect(reason(taken)).toBe('exists');
    expect(isSnapshotCloneError(taken) ? taken.dirs : []).toEqual([path.join(farm, 'tpl-2')]);
    expect(readdirSync(farm)).toEqual(['tpl-2']);

    // A QEMU that cannot start: the directories of the call are removed again.
    const broken = await cloneSnapshot(store, 'tpl', {
      ...opts,
      qemu: path.join(suite.dir, 'no-such-qemu'),
    }).catch((e) => e);
    expect(reason(broken)).toBe('start-failed');
    expect(existsSync(into)).toBe(false);
    expect(await fingerprint(templateFiles)).toEqual(before);
  }, 60_000);
});
