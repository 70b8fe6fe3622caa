/**
 * The mapped-ram state format of external snapshots (issue #14 item 6), across the two
 * binaries: on 10.0 (whose live schema has `mapped-ram`) a save writes a mapped-ram file with
 * multifd, and it loads there exactly — with direct I/O or without, with other multifd
 * channels than the save used; `portable: true` writes the stream instead, which loads on
 * 7.2 (as does a manifest entry without the `encoding` field, as manifests written before it
 * was recorded are); a mapped-ram snapshot onto 7.2 is refused before anything is started or
 * changed on disk — from 10.0 with `qemu`, and on 7.2 also while its QEMU is down (the
 * preflight asks the executable then). Names both binaries itself, so it runs once (`ONCE` in
 * vitest.config.ts).
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { launch, Machine } from '@qmpkit/machine';
import {
  deviceTopFile,
  diskCounterOf,
  launchQemu,
  QEMU_10,
  QEMU_SYSTEM,
  type QemuBinary,
  qemuSkipReason,
  qemuSuite,
} from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { isSnapshotMismatchError, isSnapshotStateFormatError } from '../errors.js';
import { probeDirectIo } from '../mapped-ram.js';
import { openSnapshots } from '../snapshots.js';
import { STREAM_MAGIC } from '../statefile.js';
import {
  COUNTER,
  guestConfig,
  nextCounter,
  pauseAndRead,
  ramCounter,
} from './qemu.test-support.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-snapshots-mapped-' });
const skip = qemuSkipReason(QEMU_SYSTEM) ?? qemuSkipReason(QEMU_10);
const quiet = { warn: () => {} };

const topFile = (m: Machine) => deviceTopFile(m.config);
const diskCounter = (m: Machine) => diskCounterOf(m.config);

/**
 * Every file below `dir` with its size and mtime (what "nothing changed on disk" compares);
 * of `live` files (the disk the running guest writes to) only the name.
 */
async function tree(dir: string, live: ReadonlySet<string>): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true })) {
    const file = path.join(dir, entry);
    const st = await stat(file);
    if (!st.isFile()) continue;
    out.push(live.has(file) ? entry : `${entry} ${st.size} ${st.mtimeMs}`);
  }
  return out.sort();
}

async function boot(binary: QemuBinary, name: string): Promise<Machine> {
  const config = await guestConfig(suite.dir, { name });
  const m = suite.adopt(
    await launch(config, {
      ...launchQemu(binary),
      consoles: ['ser0'],
      runDir: path.join(suite.dir, `run-${name}`),
      logger: quiet,
    }),
  );
  await m.console('ser0').expect(COUNTER, { timeout: 30_000 });
  return m;
}

/** Stops `m` and starts its VM again from its state file on `binary`. */
async function moveTo(m: Machine, binary: QemuBinary): Promise<Machine> {
  const stateFile = m.stateFile ?? '';
  await m.stop();
  const next = suite.adopt(
    await Machine.relaunch(stateFile, { ...launchQemu(binary), logger: quiet }),
  );
  expect(next.qemuVersion).toMatchObject({
    major: binary.version?.major,
    minor: binary.version?.minor,
  });
  return next;
}

describe.skipIf(skip !== undefined)(
  `external snapshots in the mapped-ram format${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    it('10.0 saves mapped-ram with multifd and loads it exactly, with and without direct I/O and other channels', async () => {
      const m = await boot(QEMU_10, 'exact');
      const dir = path.join(suite.dir, 'snaps-exact');
      const snaps = await openSnapshots(m, { dir, strategy: 'external' });
      const consumed = await nextCounter(m);
      const n = await pauseAndRead(m);
      const diskAtSave = await diskCounter(m);
      const saved = await snaps.save('a');
      const state = saved.snapshot.stateFile;
      expect(state?.encoding).toEqual({
        format: 'mapped-ram',
        multifdChannels: 4,
        directIo: false,
      });
      // The recorded facts are the manifest's (what a later process reads).
      const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as {
        snapshots: { stateFile: { encoding: unknown } }[];
      };
      expect(manifest.snapshots[0]?.stateFile.encoding).toEqual(state?.encoding);
      const head = Buffer.alloc(8);
      const { open } = await import('node:fs/promises');
      const h = await open(state?.path ?? '', 'r');
      await h.read(head, 0, 8, 0);
      await h.close();
      expect(head.readUInt32BE(0)).toBe(STREAM_MAGIC);
      // The source's capabilities are back to the stream's: a later live migration or a
      // portable save finds mapped-ram off.
      const caps = (await m.qmp.executeUnchecked('query-migrate-capabilities')) as {
        capability: string;
        state: boolean;
      }[];
      expect(
        caps.filter((c) => c.capability === 'mapped-ram' || c.capability === 'multifd'),
      ).toEqual([
        { capability: 'multifd', state: false },
        { capability: 'mapped-ram', state: false },
      ]);

      // Default load: 4 channels, direct I/O where the store's file system takes O_DIRECT.
      await snaps.load('a', { resume: false });
      const direct = await probeDirectIo(path.dirname(state?.path ?? ''));
      const params = (await m.qmp.executeUnchecked('query-migrate-parameters')) as {
        'direct-io'?: boolean;
        'multifd-channels'?: number;
      };
      expect([params['direct-io'], params['multifd-channels']]).toEqual([direct, 4]);
      expect(await ramCounter(m)).toBe(n);
      expect(await diskCounter(m)).toBe(diskAtSave);
      await m.qmp.execute('cont');
      expect(await nextCounter(m)).toBe(consumed + 1);

      // Neither the channels nor direct I/O need to match the save: one thread, buffered.
      await snaps.load('a', { resume: false, mappedRam: { multifdChannels: 0, directIo: false } });
      expect(await ramCounter(m)).toBe(n);
      expect(await diskCounter(m)).toBe(diskAtSave);
      await m.qmp.execute('cont');
      expect(await nextCounter(m)).toBe(consumed + 1);
      await m.stop();
    });

    it('a portable save on 10.0 is a stream that loads on 7.2, also from a manifest without the encoding field', async () => {
      const m = await boot(QEMU_10, 'portable');
      const dir = path.join(suite.dir, 'snaps-portable');
      const snaps = await openSnapshots(m, { dir, strategy: 'external' });
      const consumed = await nextCounter(m);
      const n = await pauseAndRead(m);
      const diskAtSave = await diskCounter(m);
      const saved = await snaps.save('p', { portable: true });
      expect(saved.snapshot.stateFile?.encoding).toEqual({ format: 'stream' });
      // What the code before the field wrote: no `encoding` at all.
      const file = path.join(dir, 'manifest.json');
      const manifest = JSON.parse(await readFile(file, 'utf8')) as {
        snapshots: { stateFile: Record<string, unknown> }[];
      };
      for (const s of manifest.snapshots) delete s.stateFile.encoding;
      await writeFile(file, `${JSON.stringify(manifest, null, 2)}\n`);

      const m2 = await moveTo(m, QEMU_SYSTEM);
      const snaps2 = await openSnapshots(m2, { dir, strategy: 'external' });
      expect(snaps2.store.find('p')?.stateFile?.encoding).toBeUndefined();
      await snaps2.load('p');
      expect(await ramCounter(m2)).toBe(n);
      expect(await diskCounter(m2)).toBe(diskAtSave);
      await m2.qmp.execute('cont');
      expect(await nextCounter(m2)).toBe(consumed + 1);
      await m2.stop();
    });

    it('a mapped-ram snapshot onto 7.2 is refused before anything is started or changed on disk', async () => {
      const m = await boot(QEMU_10, 'refused');
      const dir = path.join(suite.dir, 'snaps-refused');
      const snaps = await openSnapshots(m, { dir, strategy: 'external' });
      await snaps.save('m');
      // (Onto 7.2 named by `qemu` from the running 10.0: the last case below.)
      const crashed = await moveTo(m, QEMU_SYSTEM);

      // Its QEMU gone (no live schema to ask, and none asked before in this process): the
      // preflight asks the executable itself, so no QEMU is started for the refusal.
      // (It started 7.2, then stopped it and refused.)
      const deadPid = crashed.pid;
      process.kill(deadPid, 'SIGKILL');
      await crashed.exited;
      const storeBefore = await tree(dir, new Set());
      const down = await openSnapshots(crashed, { dir, strategy: 'external' });
      const refusedDown = await down.load('m').result.catch((e: unknown) => e);
      expect(
        isSnapshotStateFormatError(refusedDown) && [refusedDown.reason, refusedDown.snapshot],
      ).toEqual(['mapped-ram-unsupported', 'm']);
      // No QEMU started (a restart gives the machine a new process and another status).
      expect([crashed.pid, crashed.status]).toEqual([deadPid, 'exited']);
      expect(await tree(dir, new Set())).toEqual(storeBefore);

      const m2 = suite.adopt(
        await Machine.relaunch(crashed.stateFile ?? '', {
          ...launchQemu(QEMU_SYSTEM),
          logger: quiet,
        }),
      );
      const snaps2 = await openSnapshots(m2, { dir, strategy: 'external' });
      await nextCounter(m2);
      const pid = m2.pid;
      const live = new Set([path.resolve(topFile(m2))]);
      const before = await tree(suite.dir, live);
      const error = await snaps2.load('m').result.catch((e: unknown) => e);
      expect(isSnapshotStateFormatError(error)).toBe(true);
      expect(isSnapshotMismatchError(error)).toBe(true);
      expect(
        isSnapshotStateFormatError(error) && [error.reason, error.field, error.snapshot],
      ).toEqual(['mapped-ram-unsupported', 'state-format', 'm']);
      expect(String((error as Error).message)).toMatch(
        /QEMU 7\.2\.\d+ without it; save the snapshot with portable: true/,
      );
      // Same process, still running; not one file below the suite's dir created or changed.
      expect(m2.pid).toBe(pid);
      expect((await m2.qmp.execute('query-status')).running).toBe(true);
      expect(await tree(suite.dir, live)).toEqual(before);
      await nextCounter(m2);
      await m2.stop();
    });

    it('a mapped-ram snapshot loaded with qemu: 7.2 on a VM running 10.0 asks 7.2 and is refused before anything is touched', async () => {
      // The VM runs 10.0, which has mapped-ram: asking the running QEMU would pass. The check
      // must ask the binary the load names (its own schema), before the VM is stopped.
      const m = await boot(QEMU_10, 'target');
      const dir = path.join(suite.dir, 'snaps-target');
      const snaps = await openSnapshots(m, { dir, strategy: 'external' });
      const saved = await snaps.save('t');
      expect(saved.snapshot.stateFile?.encoding).toMatchObject({ format: 'mapped-ram' });
      await nextCounter(m);
      const pid = m.pid;
      const live = new Set([path.resolve(topFile(m))]);
      const before = await tree(suite.dir, live);
      const warnings: string[] = [];
      const error = await snaps
        .load('t', { ...launchQemu(QEMU_SYSTEM), onWarning: (w) => warnings.push(w) })
        .result.catch((e: unknown) => e);
      expect(isSnapshotStateFormatError(error)).toBe(true);
      expect(
        isSnapshotStateFormatError(error) && [error.reason, error.field, error.snapshot],
      ).toEqual(['mapped-ram-unsupported', 'state-format', 't']);
      expect(String((error as Error).message)).toMatch(/QEMU 7\.2\.\d+ without it/);
      // The same 10.0 process, still running and counting; no file below the suite's dir
      // created or changed; the VM still runs 10.0.
      expect(m.pid).toBe(pid);
      expect((await m.qmp.execute('query-status')).running).toBe(true);
      expect(m.qemuVersion).toMatchObject({ major: 10, minor: 0 });
      expect(await tree(suite.dir, live)).toEqual(before);
      await nextCounter(m);
      // The same snapshot still loads on the binary it was saved with.
      await snaps.load('t');
      await m.qmp.execute('cont');
      await nextCounter(m);
      await m.stop();
    });
  },
);
