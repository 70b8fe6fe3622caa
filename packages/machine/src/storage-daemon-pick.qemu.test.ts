/**
 * Which `qemu-storage-daemon` a job on a stopped VM runs, on the binary under test (7.2: the
 * system's daemon; 10.0: the one `qemu fetch 10.0` unpacks into the cache's qemu-utils tree).
 * A VM launched with the binary (paused, never booted) and stopped gets the daemon of that
 * binary's release without being told (the job's result names it, and the stream really ran);
 * an explicit daemon that is a `qemu-system-*` binary or not executable is a typed refusal; a
 * VM whose QEMU has no daemon anywhere (its binary reached through an unpacked root of
 * symlinks with no daemon beside it, an empty cache) is a `StorageDaemonVersionError` that
 * names the version and what was found. One launch per VM, two VMs per binary.
 */
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { launchQemu, qemuSuite, REPO_CACHE_DIR, TEST_ACCEL } from '@qmpkit/testguest/test-support';
import { assert, beforeAll, describe, expect, it } from 'vitest';
import { unpackedRootLayout } from './binary.js';
import { chainJobOnStoppedVm } from './chain-jobs.js';
import { isStorageDaemonError, isStorageDaemonVersionError } from './errors.js';
import { binaryFromSpec } from './launch-binary.js';
import { launch } from './machine.js';
import { runQemuImg as runImg } from './qemu-img.js';
import { readState } from './state.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-qsd-pick-' });
const runQemuImg = (args: readonly string[]) => runImg(args, { qemuImg: suite.binary.img });

/** A VM with a two-layer chain (base ← top), launched paused with `qemu` and stopped. */
async function stoppedVm(
  name: string,
  qemu: { qemu: string; cacheDir: string },
): Promise<{ stateFile: string; runDir: string }> {
  const base = path.join(suite.dir, `${name}-base.qcow2`);
  const top = path.join(suite.dir, `${name}-top.qcow2`);
  await runQemuImg(['create', '-q', '-f', 'qcow2', base, String(MiB)]);
  await runQemuImg(['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, top]);
  const config: VmConfig = {
    machine: { type: 'pc-i440fx-7.2' },
    accel: [...TEST_ACCEL],
    memory: { size: 16 * MiB },
    paused: true,
    blockdevs: [
      { driver: 'file', 'node-name': 'base-file', filename: base },
      { driver: 'qcow2', 'node-name': 'base', file: 'base-file' },
      { driver: 'file', 'node-name': 'top-file', filename: top },
      { driver: 'qcow2', 'node-name': 'top', file: 'top-file', backing: 'base' },
    ],
    devices: [{ driver: 'ide-hd', id: 'disk0', drive: 'top', bus: 'ide.0' }],
  };
  const runDir = path.join(suite.dir, `${name}-run`);
  const m = suite.adopt(await launch(config, { ...qemu, runDir }));
  await m.stop();
  return { stateFile: m.stateFile ?? '', runDir };
}

/** The binary under test as `launch` resolves it (a name on PATH becomes its path). */
const underTest = () => binaryFromSpec(launchQemu().qemu, process.env, (b) => [b], REPO_CACHE_DIR);

describe(`qemu-storage-daemon picked for a stopped VM on ${suite.binary.id}`, () => {
  let vm: { stateFile: string; runDir: string };
  let release: string;
  let systemPath: string;

  beforeAll(async () => {
    const qemu = await underTest();
    release = qemu.release;
    systemPath = qemu.path;
    vm = await stoppedVm('vm', launchQemu());
  });

  it('an explicit daemon that is a qemu-system binary, or not executable, is refused before anything opens', async () => {
    const notExecutable = path.join(suite.dir, 'qemu-storage-daemon.txt');
    await runQemuImg(['create', '-q', '-f', 'raw', notExecutable, '0']);
    chmodSync(notExecutable, 0o644);
    for (const [qemu, message] of [
      [systemPath, /did not print "qemu-storage-daemon version X\.Y\.Z"/],
      [notExecutable, /not executable/],
    ] as const) {
      const error = await chainJobOnStoppedVm({
        ...vm,
        request: { op: 'stream' },
        qemu,
        cacheDir: REPO_CACHE_DIR,
      }).catch((e: unknown) => e);
      assert(isStorageDaemonError(error), String(error));
      expect(error.reason).toBe('bad-binary');
      expect(error.message).toMatch(message);
    }
    // Nothing changed: the chain is still two layers.
    const state = await readState(vm.stateFile);
    expect(state.config.blockdevs?.find((b) => b['node-name'] === 'top')).toMatchObject({
      backing: 'base',
    });
  });

  it('a chain job that fails on a stopped VM quits the daemon: a persistent bitmap stays consistent', async () => {
    // A killed daemon leaves the bitmaps it loaded flagged in-use (inconsistent at the next
    // open); withStoppedVm quits it after a failure too.
    const bm = await stoppedVm('bm', launchQemu());
    const top = path.join(suite.dir, 'bm-top.qcow2');
    await runQemuImg(['bitmap', '--add', top, 'b0']);
    const error = await chainJobOnStoppedVm({
      ...bm,
      request: { op: 'stream' },
      cacheDir: REPO_CACHE_DIR,
      onJob: () => {
        throw new Error('stopped by the test');
      },
    }).catch((e: unknown) => e);
    expect(String(error)).toMatch(/stopped by the test/);
    const info = JSON.parse((await runQemuImg(['info', '--output=json', top])).stdout) as {
      'format-specific': { data: { bitmaps?: { name: string; flags: string[] }[] } };
    };
    expect(info['format-specific'].data.bitmaps).toEqual([
      { name: 'b0', flags: ['auto'], granularity: expect.any(Number) },
    ]);
  });

  it("without --storage-daemon the job runs on the daemon of the VM's QEMU release", async () => {
    const state = await readState(vm.stateFile);
    expect(state.launch.binary?.path).toBe(systemPath);
    const result = await chainJobOnStoppedVm({
      ...vm,
      request: { op: 'stream' },
      cacheDir: REPO_CACHE_DIR,
    });
    expect(result.after).toEqual(['top']);
    expect(result.daemon?.version.startsWith(`${release}.`)).toBe(true);
    if (suite.binary.id === 'system') expect(result.daemon?.path).not.toContain('qemu-utils');
    else
      expect(result.daemon?.path).toBe(
        path.join(REPO_CACHE_DIR, 'qemu-utils', release, 'root/usr/bin/qemu-storage-daemon'),
      );
  });

  it('a VM whose QEMU has no daemon beside it, in the cache or on PATH: StorageDaemonVersionError', async () => {
    // The binary under test reached through a symlink in a directory of its own: it runs (an
    // unpacked build through a root of symlinks to its real module and data dirs), but no
    // daemon lies beside it.
    const qemu = await underTest();
    let lonelyExe: string;
    if (qemu.moduleDir !== undefined && qemu.dataDir !== undefined) {
      const layout = unpackedRootLayout(path.join(suite.dir, 'lonely-root'));
      for (const p of [layout.executable, layout.moduleDir, layout.dataDir])
        mkdirSync(path.dirname(p), { recursive: true });
      symlinkSync(qemu.path, layout.executable);
      symlinkSync(qemu.moduleDir, layout.moduleDir);
      symlinkSync(qemu.dataDir, layout.dataDir);
      lonelyExe = layout.executable;
    } else {
      // The system's QEMU uses its built-in dirs: a plain directory, not an unpacked root.
      lonelyExe = path.join(suite.dir, 'lonely-bin', 'qemu-system-x86_64');
      mkdirSync(path.dirname(lonelyExe));
      symlinkSync(qemu.path, lonelyExe);
    }
    const lonely = await stoppedVm('lonely', {
      qemu: lonelyExe,
      cacheDir: REPO_CACHE_DIR,
    });
    // On 7.2 the daemon on PATH is the right one: hide PATH there; on 10.0 it stays and is
    // listed as found, with its (other) version.
    const env = {
      ...process.env,
      PATH:
        suite.binary.id === 'system'
          ? mkdtempSync(path.join(suite.dir, 'path-'))
          : process.env.PATH,
    };
    const error = await chainJobOnStoppedVm({
      ...lonely,
      request: { op: 'stream' },
      cacheDir: mkdtempSync(path.join(suite.dir, 'cache-')),
      env,
    }).catch((e: unknown) => e);
    assert(isStorageDaemonVersionError(error), String(error));
    expect(error.wanted).toBe(qemu.version);
    expect(error.message).toContain(`no qemu-storage-daemon of QEMU ${release}`);
    expect(error.message).toContain('--storage-daemon');
    if (suite.binary.id === 'system') expect(error.candidates).toEqual([]);
    else
      expect(error.candidates).toEqual([
        expect.objectContaining({ where: 'path', version: expect.stringMatching(/^7\.2\./) }),
      ]);
  });
});
