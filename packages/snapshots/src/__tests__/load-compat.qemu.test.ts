/**
 * Loads on another binary than the save (issues #14 item 4, #15 item 4), on real binaries with
 * one guest for the whole file: the boot-sector guest plus an e1000e NIC, saved once with the
 * internal-jobs strategy on a private copy of the system's 7.2 executable, then loaded
 * - on a 7.2 whose firmware dir holds a bigger `efi-e1000e.rom` (a ROM-size mismatch, the
 *   stand-in the issues allow: no device of this board was found whose state 7.2 → 10.0 does
 *   not load), `force: true`: QEMU fails the load, and its stderr reason (`Size mismatch: …`)
 *   reaches the caller — the job error alone says only "Error -22 while loading VM state";
 *   the same through HMP `loadvm`, whose reply holds the reason;
 * - the same without `force`: the compatibility probe refuses before anything is touched
 *   (`incompatible-state`, QEMU's reason in the error);
 * - on 10.0: the static vmstate diff flags e1000e and hpet, the probe loads them — a warning
 *   naming them, and the load succeeds (the guest's RAM counter is the saved one);
 * - on 10.0 again after the saving copy was removed: no probe can run; the dump kept at save
 *   time is compared statically, and the warning says that no probe ran.
 * Names both binaries itself, so it runs once (`ONCE` in vitest.config.ts).
 */
import { createHash } from 'node:crypto';
import {
  chmod,
  copyFile,
  mkdir,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import type { VmConfig } from '@qmpkit/devices';
import {
  firmwareDirs,
  launch,
  type Machine,
  resolveBinary,
  resolveQemuBinary,
  unpackedRootLayout,
} from '@qmpkit/machine';
import {
  QEMU_10,
  QEMU_SYSTEM,
  qemuSkipReason,
  qemuSuite,
  REPO_CACHE_DIR,
} from '@qmpkit/testguest/test-support';
import { beforeAll, describe, expect, it } from 'vitest';
import { isSnapshotCannotLoadError, isSnapshotLoadFailedError } from '../errors.js';
import { openSnapshots, type Snapshots } from '../snapshots.js';
import { COUNTER, guestConfig, ramCounter } from './qemu.test-support.js';

const suite = qemuSuite({ prefix: 'qmpkit-snapshots-load-compat-' });
const skip = qemuSkipReason(QEMU_SYSTEM) ?? qemuSkipReason(QEMU_10);
const quiet = { warn: () => {} };

/** Every file under `dir` but the compatibility cache: size, mtime, SHA-256. */
async function listing(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    if (path.relative(dir, file).startsWith(`cache${path.sep}`)) continue;
    const info = await stat(file);
    const hash =
      info.size > 64 * 1024 * 1024
        ? ''
        : createHash('sha256')
            .update(await readFile(file))
            .digest('hex');
    out[path.relative(dir, file)] = `${info.size} ${info.mtimeMs} ${hash}`;
  }
  return out;
}

/**
 * An unpacked-root layout around the system's 7.2 executable (linked) whose data dir holds
 * `rom` padded to 300 000 bytes (QEMU rounds its RAM block up to 512 KiB, the real one takes
 * 256 KiB); every other firmware file is still found in the binary's own dirs, searched after
 * `-L`. The module dir is empty: 7.2 then looks in its built-in one.
 */
async function biggerRomRoot(system: string, rom: string): Promise<string> {
  const fake = unpackedRootLayout(path.join(suite.dir, 'root-big-rom'));
  await mkdir(path.dirname(fake.executable), { recursive: true });
  await mkdir(fake.moduleDir, { recursive: true });
  await mkdir(fake.dataDir, { recursive: true });
  await symlink(system, fake.executable);
  const real = await resolveQemuBinary(system);
  let original: Buffer | undefined;
  for (const dir of await firmwareDirs(real)) {
    original = await readFile(path.join(dir, rom)).catch(() => undefined);
    if (original !== undefined) break;
  }
  if (original === undefined) throw new Error(`no ${rom} in the firmware dirs of ${system}`);
  const padded = Buffer.alloc(300_000);
  original.copy(padded);
  await writeFile(path.join(fake.dataDir, rom), padded);
  return fake.executable;
}

describe.skipIf(skip !== undefined)(
  `loads on another binary than the save${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let m: Machine;
    let snaps: Snapshots;
    let savedCopy: string;
    let bigRom: string;
    let counterAtSave: number;

    beforeAll(async () => {
      const system = (await resolveBinary(QEMU_SYSTEM.system)) ?? QEMU_SYSTEM.system;
      // A copy in a root of its own (QEMU finds modules and firmware relative to its
      // executable): the system's module and data dirs linked beside it.
      const realRoot = path.dirname(path.dirname(path.dirname(system)));
      const ownRoot = path.join(suite.dir, 'own-7.2');
      const own = unpackedRootLayout(ownRoot);
      await mkdir(path.dirname(own.executable), { recursive: true });
      await copyFile(system, own.executable);
      await chmod(own.executable, 0o755);
      const dirs = [
        unpackedRootLayout(realRoot).moduleDir,
        ...(await firmwareDirs(await resolveQemuBinary(system))),
      ];
      for (const dir of dirs) {
        const rel = path.relative(realRoot, dir);
        const link = path.join(ownRoot, rel);
        if (rel.startsWith('..') || (await stat(link).catch(() => undefined)) !== undefined)
          continue;
        await mkdir(path.dirname(link), { recursive: true });
        await symlink(dir, link);
      }
      savedCopy = own.executable;
      bigRom = await biggerRomRoot(system, 'efi-e1000e.rom');
      const base = await guestConfig(suite.dir, { name: 'g' });
      const config: VmConfig = {
        ...base,
        netdevs: [{ id: 'net0', type: 'user' }],
        devices: [
          ...(base.devices ?? []),
          { driver: 'e1000e', id: 'nic0', props: { netdev: 'net0', mac: '52:54:00:12:34:56' } },
        ],
      };
      m = suite.adopt(
        await launch(config, {
          qemu: savedCopy,
          consoles: ['ser0'],
          runDir: path.join(suite.dir, 'run'),
          logger: quiet,
        }),
      );
      await m.console('ser0').expect(COUNTER, { timeout: 30_000 });
      snaps = await openSnapshots(m, {
        dir: path.join(suite.dir, 'snaps'),
        strategy: 'internal-jobs',
      });
      await m.qmp.execute('stop');
      counterAtSave = await ramCounter(m);
      const saved = await snaps.save('a').result;
      expect(saved.snapshot.vmstateKey).toMatch(/^[0-9a-f]{64}$/);
      // The same state through HMP savevm (same family: both live in the image).
      const hmp = await snaps.strategy('internal-hmp').save('h').result;
      expect(hmp.snapshot.vmstateKey).toBe(saved.snapshot.vmstateKey);
    }, 120_000);

    it("QEMU fails the load (force: true, ROM-size mismatch): SnapshotLoadFailedError with QEMU's stderr reason", async () => {
      const error: unknown = await snaps
        .load('a', { qemu: bigRom, force: true, cacheDir: path.join(suite.dir, 'cache') })
        .result.then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(isSnapshotLoadFailedError(error), String(error)).toBe(true);
      if (!isSnapshotLoadFailedError(error)) throw error;
      expect(error.reason).toBe('qemu-refused');
      expect(error.desc).toMatch(/Error -22 while loading VM state/);
      expect(error.qemuStderr).toMatch(/Size mismatch: .*e1000e\.rom: 0x40000 != 0x80000/);
      expect(error.message).toMatch(/Size mismatch: .*e1000e\.rom/);
      expect(error.loading?.path).toBe(bigRom);
    }, 60_000);

    it('the same through HMP loadvm: the reason QEMU prints into the reply reaches the caller', async () => {
      const error: unknown = await snaps.load('h', { qemu: bigRom, force: true }).result.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isSnapshotLoadFailedError(error), String(error)).toBe(true);
      if (!isSnapshotLoadFailedError(error)) throw error;
      expect([error.reason, error.strategy, error.command]).toEqual([
        'qemu-refused',
        'internal-hmp',
        'loadvm',
      ]);
      expect(error.qemuStderr).toMatch(/Size mismatch: .*e1000e\.rom: 0x40000 != 0x80000/);
    }, 60_000);

    it("the probe refuses before anything is touched (incompatible-state), with QEMU's reason", async () => {
      const pid = m.pid;
      const before = await listing(suite.dir);
      const started = performance.now();
      const error: unknown = await snaps
        .load('a', { qemu: bigRom, cacheDir: path.join(suite.dir, 'cache') })
        .result.then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(isSnapshotCannotLoadError(error), String(error)).toBe(true);
      if (!isSnapshotCannotLoadError(error)) throw error;
      expect(error.reason).toBe('incompatible-state');
      expect(error.qemuStderr).toMatch(/Size mismatch: .*e1000e\.rom: 0x40000 != 0x80000/);
      expect(error.message).toMatch(/Size mismatch/);
      expect([error.saved?.path, error.loading?.path]).toEqual([savedCopy, bigRom]);
      expect(await listing(suite.dir)).toEqual(before);
      expect([m.status, m.pid]).toEqual(['running', pid]);
      console.log(`probe refusal: ${Math.round(performance.now() - started)} ms`);
    }, 120_000);

    it('7.2 → 10.0: the probe loads what the static check flags — a warning naming them, and the load succeeds', async () => {
      const warnings: string[] = [];
      const r = await snaps.load('a', {
        qemu: await resolveQemuBinary(QEMU_10.machineQemu, { cacheDir: REPO_CACHE_DIR }),
        cacheDir: path.join(suite.dir, 'cache'),
        resume: false,
        onWarning: (w) => warnings.push(w),
      }).result;
      expect(m.qemuVersion.major).toBe(10);
      expect(await ramCounter(m)).toBe(counterAtSave);
      expect(r.compat).toMatchObject({ check: 'probe', verdict: 'warn' });
      expect(r.compat?.flaggedSections).toEqual(['e1000e', 'hpet']);
      expect(r.compat?.flaggedButLoaded).toEqual(['e1000e', 'hpet']);
      expect(r.warnings).toEqual(warnings);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/flags e1000e, hpet; the compatibility probe loaded them/);
      console.log(
        `probe 7.2 → 10.0: ${r.compat?.flaggedSections.length} statically flagged sections, ${r.compat?.flaggedButLoaded.length} loaded fine (${r.compat?.probeMs} ms${r.compat?.cached ? ', cached' : ''})`,
      );
    }, 180_000);

    it('the saving binary gone: the static check of the dump kept at save time, a warning that no probe ran, the load succeeds', async () => {
      await rm(savedCopy);
      const r = await snaps.load('a', { resume: false }).result;
      expect(await ramCounter(m)).toBe(counterAtSave);
      expect(r.compat).toMatchObject({ check: 'static', verdict: 'warn' });
      expect(r.compat?.flaggedSections).toEqual(['e1000e', 'hpet']);
      expect(r.warnings).toHaveLength(1);
      expect(r.warnings[0]).toMatch(/is gone, so no probe ran; .* flags e1000e, hpet/);
    }, 120_000);
  },
);
