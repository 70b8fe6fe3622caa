/**
 * Refusals before anything is touched (issue #14, "Bad input"): each load that cannot work is
 * a `SnapshotCannotLoadError` with its `reason`, and the VM's QEMU keeps running (same pid) and
 * no file under the suite's dir changes (names, sizes, mtimes and SHA-256 compared before and
 * after). One guest for the whole file: the boot-sector guest on QEMU 10.0 (pinned
 * `pc-i440fx-10.0`, which 7.2 lacks) from a private copy of 10.0's executable (its data and
 * module dirs linked), so the last case can remove the binary the VM's state file names.
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
import { MiB, type VmConfig } from '@qmpkit/devices';
import { launch, type Machine, unpackedRootLayout } from '@qmpkit/machine';
import {
  QEMU_10,
  QEMU_SYSTEM,
  qemuSkipReason,
  qemuSuite,
  REPO_CACHE_DIR,
} from '@qmpkit/testguest/test-support';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type CannotLoadReason,
  isSnapshotCannotLoadError,
  type SnapshotCannotLoadError,
} from '../errors.js';
import { openSnapshots, type Snapshots } from '../snapshots.js';
import type { LoadOptions } from '../types.js';
import { COUNTER, guestConfig } from './qemu.test-support.js';

const suite = qemuSuite({ prefix: 'qmpkit-snapshots-cannot-load-' });
const skip = qemuSkipReason(QEMU_SYSTEM) ?? qemuSkipReason(QEMU_10);
const quiet = { warn: () => {} };

/** Every file under `dir`: size, mtime and content hash (symlinks by their target). */
async function listing(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const file = path.join(entry.parentPath, entry.name);
    if (entry.isSymbolicLink() || !entry.isFile()) continue;
    const info = await stat(file);
    // The copied 10.0 executable is big and never written; its size and mtime say enough.
    const hash =
      info.size > 64 * MiB
        ? ''
        : createHash('sha256')
            .update(await readFile(file))
            .digest('hex');
    out[path.relative(dir, file)] = `${info.size} ${info.mtimeMs} ${hash}`;
  }
  return out;
}

describe.skipIf(skip !== undefined)(
  `loads that cannot work are refused before anything is touched${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let m: Machine;
    let snaps: Snapshots;
    let config: VmConfig;
    let ownBinary: string;
    let noModules: string;
    let script: string;

    beforeAll(async () => {
      // A private 10.0 root: the executable copied, data and module dirs linked.
      const src = unpackedRootLayout(path.join(REPO_CACHE_DIR, 'qemu', '10.0', 'root'));
      const own = unpackedRootLayout(path.join(suite.dir, 'own-10.0'));
      await mkdir(path.dirname(own.executable), { recursive: true });
      await mkdir(path.dirname(own.dataDir), { recursive: true });
      await mkdir(path.dirname(own.moduleDir), { recursive: true });
      await copyFile(src.executable, own.executable);
      await chmod(own.executable, 0o755);
      await symlink(src.dataDir, own.dataDir);
      await symlink(src.moduleDir, own.moduleDir);
      ownBinary = own.executable;
      // The 10.0 tree without its module dir.
      const bare = unpackedRootLayout(path.join(suite.dir, 'no-modules'));
      await mkdir(path.dirname(bare.executable), { recursive: true });
      await mkdir(path.dirname(bare.dataDir), { recursive: true });
      await symlink(src.executable, bare.executable);
      await symlink(src.dataDir, bare.dataDir);
      noModules = bare.executable;
      script = path.join(suite.dir, 'fake-qemu.sh');
      await writeFile(script, '#!/bin/sh\necho "QEMU? no"\n', { mode: 0o755 });

      config = await guestConfig(suite.dir, { name: 'g', machineType: 'pc-i440fx-10.0' });
      m = suite.adopt(
        await launch(config, {
          qemu: ownBinary,
          consoles: ['ser0'],
          runDir: path.join(suite.dir, 'run'),
          logger: quiet,
        }),
      );
      await m.console('ser0').expect(COUNTER, { timeout: 30_000 });
      snaps = await openSnapshots(m, { dir: path.join(suite.dir, 'snaps'), strategy: 'external' });
      await snaps.save('a').result;
      // Paused from here on: the guest's own disk writes would change the listing.
      await m.qmp.execute('stop');
    }, 120_000);

    /** Loads `a` with `options`, expects `reason`, and checks that nothing changed. */
    async function refused(
      options: LoadOptions,
      reason: CannotLoadReason,
    ): Promise<SnapshotCannotLoadError> {
      const pid = m.pid;
      const status = (await m.qmp.execute('query-status')).status;
      const before = await listing(suite.dir);
      const error: unknown = await snaps.load('a', options).result.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isSnapshotCannotLoadError(error), String(error)).toBe(true);
      if (!isSnapshotCannotLoadError(error)) throw error;
      expect(error.reason).toBe(reason);
      expect(error.snapshot).toBe('a');
      expect(await listing(suite.dir)).toEqual(before);
      expect([m.status, m.pid]).toEqual(['running', pid]);
      expect((await m.qmp.execute('query-status')).status).toBe(status);
      return error;
    }

    it('a binary path that is not QEMU: /bin/true and a script (not-qemu)', async () => {
      const e = await refused({ qemu: '/bin/true' }, 'not-qemu');
      expect(e.loading?.path).toBe('/bin/true');
      expect(e.message).toContain('QEMU emulator version');
      await refused({ qemu: script }, 'not-qemu');
    });

    it('a 10.0 root without its module dir (module-dir-missing)', async () => {
      const e = await refused({ qemu: noModules }, 'module-dir-missing');
      expect(e.message).toMatch(/module dir/);
    });

    it('a binary that does not exist (binary-missing)', async () => {
      await refused(
        { qemu: path.join(suite.dir, 'nowhere', 'qemu-system-x86_64') },
        'binary-missing',
      );
    });

    it('the pinned machine type missing on the other binary: pc-i440fx-10.0 onto 7.2 (machine-type-missing)', async () => {
      const e = await refused({ qemu: QEMU_SYSTEM.machineQemu }, 'machine-type-missing');
      expect([e.expected, e.saved?.version, e.loading?.version]).toEqual([
        'machine type pc-i440fx-10.0',
        m.qemuBinary?.version,
        QEMU_SYSTEM.version
          ? `${QEMU_SYSTEM.version.major}.${QEMU_SYSTEM.version.minor}.${QEMU_SYSTEM.version.micro}`
          : undefined,
      ]);
    });

    it('RAM size, CPU count and device set that differ from the snapshot (ram-, cpus-, device-set-differs)', async () => {
      // The VM's configuration now (on the overlays the save made), changed one way each.
      const current = m.config;
      const variants: [VmConfig, CannotLoadReason, string, string][] = [
        [
          { ...current, memory: { size: 32 * MiB } },
          'ram-differs',
          `${16 * MiB} bytes`,
          `${32 * MiB} bytes`,
        ],
        [{ ...current, smp: { cpus: 2 } }, 'cpus-differs', '1 CPUs', '2 CPUs'],
        [
          {
            ...current,
            chardevs: [
              ...(current.chardevs ?? []),
              { id: 'ser1', backend: { type: 'null', data: {} } },
            ],
            devices: [
              ...(current.devices ?? []),
              { driver: 'isa-serial', id: 'com2', chardev: 'ser1' },
            ],
          },
          'device-set-differs',
          'devices nothing else',
          'devices isa-serial#com2',
        ],
      ];
      for (const [variant, reason, expected, actual] of variants) {
        await m.restart(variant, { paused: true });
        const e = await refused({}, reason);
        expect([e.expected, e.actual]).toEqual([expected, actual]);
      }
      await m.restart(current, { paused: true });
    });

    it('the binary the VM state file names no longer exists (binary-missing), and the load works once given another', async () => {
      await rm(ownBinary);
      const e = await refused({}, 'binary-missing');
      expect(e.message).toContain(ownBinary);
      const loaded = await snaps.load('a', { qemu: QEMU_10.machineQemu, cacheDir: REPO_CACHE_DIR })
        .result;
      expect(loaded.snapshot.name).toBe('a');
      expect(m.qemuBinary?.path).not.toBe(ownBinary);
      expect(m.qemuVersion.major).toBe(10);
    });
  },
);
