/**
 * Picking the `qemu-storage-daemon` of a VM's QEMU (`storageDaemonFor`, `daemonForVm`) on
 * made-up executables: shell scripts that print what a daemon or a QEMU of a chosen version
 * would. `PATH` is always a directory of the test's own, so the system's daemon never answers.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, assert, describe, expect, it } from 'vitest';
import { unpackedRootLayout } from './binary.js';
import { isStorageDaemonError, isStorageDaemonVersionError } from './errors.js';
import type { RuntimeFacts } from './state.js';
import {
  compareVersions,
  daemonForVm,
  STORAGE_DAEMON,
  stateQemu,
  storageDaemonFor,
} from './storage-daemon-binary.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'qmpkit-qsd-pick-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let count = 0;
/** A fresh directory for one case. */
const dir = (name: string) => {
  const d = path.join(tmp, `${count++}-${name}`);
  mkdirSync(d, { recursive: true });
  return d;
};

function script(file: string, body: string, mode = 0o755): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, mode);
  return file;
}

/** A daemon printing `version`; with `moduleDir`, it answers only when run with that one. */
function daemon(file: string, version: string, moduleDir?: string): string {
  const check =
    moduleDir === undefined
      ? ''
      : `[ "$QEMU_MODULE_DIR" = "${moduleDir}" ] || { echo "wrong module dir: $QEMU_MODULE_DIR" >&2; exit 1; }\n`;
  return script(file, `${check}echo "qemu-storage-daemon version ${version} (test)"`);
}

function qemu(file: string, version: string): string {
  return script(file, `echo "QEMU emulator version ${version} (test)"`);
}

/** An environment whose `PATH` is `dirs` only (plus /bin for `sh`'s own needs: none here). */
const envWith = (...dirs: string[]) => ({ ...process.env, PATH: dirs.join(path.delimiter) });

describe('storageDaemonFor: the daemon of the VM QEMU release', () => {
  it('takes the daemon beside the binary, run with the binary module dir', async () => {
    const bin = dir('beside');
    const modules = dir('modules');
    const system = qemu(path.join(bin, 'qemu-system-x86_64'), '9.1.3');
    daemon(path.join(bin, STORAGE_DAEMON), '9.1.3', modules);
    const other = dir('path');
    daemon(path.join(other, STORAGE_DAEMON), '9.1.3');
    const picked = await storageDaemonFor(
      { path: system, version: '9.1.3', moduleDir: modules },
      { env: envWith(other), cacheDir: dir('cache') },
    );
    expect(picked.binary).toEqual({
      path: path.join(bin, STORAGE_DAEMON),
      version: '9.1.3',
      release: '9.1',
      moduleDir: modules,
      source: 'path',
    });
    expect(picked.candidates).toEqual([
      { path: path.join(bin, STORAGE_DAEMON), where: 'beside-binary', version: '9.1.3' },
    ]);
  });

  it("a fetched release's binary gets the qemu-utils daemon of the cache it lies in", async () => {
    const cache = dir('cache');
    const root = path.join(cache, 'qemu', '9.1', 'root');
    const layout = unpackedRootLayout(root);
    qemu(layout.executable, '9.1.3');
    mkdirSync(layout.moduleDir, { recursive: true });
    const tool = path.join(cache, 'qemu-utils', '9.1', 'root/usr/bin', STORAGE_DAEMON);
    daemon(tool, '9.1.3', layout.moduleDir);
    const elsewhere = dir('path');
    daemon(path.join(elsewhere, STORAGE_DAEMON), '7.2.22');
    const picked = await storageDaemonFor(
      { path: layout.executable, version: '9.1.3', moduleDir: layout.moduleDir },
      // Another default cache: the binary's own cache is found from its path.
      { env: envWith(elsewhere), cacheDir: dir('other-cache') },
    );
    expect(picked.binary).toMatchObject({
      path: tool,
      version: '9.1.3',
      moduleDir: layout.moduleDir,
      source: 'cache',
    });
  });

  it('falls back to PATH, and prefers the exact version over another of the same release', async () => {
    const bin = dir('bin');
    const system = qemu(path.join(bin, 'qemu-system-x86_64'), '7.2.22');
    daemon(path.join(bin, STORAGE_DAEMON), '7.2.9');
    const onPath = dir('path');
    daemon(path.join(onPath, STORAGE_DAEMON), '7.2.22');
    const exact = await storageDaemonFor(
      { path: system, version: '7.2.22' },
      { env: envWith(onPath), cacheDir: dir('cache') },
    );
    expect(exact.binary.path).toBe(path.join(onPath, STORAGE_DAEMON));
    expect(exact.candidates.map((c) => c.version)).toEqual(['7.2.9', '7.2.22']);
    // Only a daemon of the same release but another micro: taken (a stable update).
    const sameRelease = await storageDaemonFor(
      { path: system, version: '7.2.22' },
      { env: envWith(dir('empty')), cacheDir: dir('cache') },
    );
    expect(sameRelease.binary).toMatchObject({
      path: path.join(bin, STORAGE_DAEMON),
      version: '7.2.9',
    });
  });

  it('none of the release: StorageDaemonVersionError with each daemon found and its version', async () => {
    const bin = dir('bin');
    const system = qemu(path.join(bin, 'qemu-system-x86_64'), '9.1.3');
    daemon(path.join(bin, STORAGE_DAEMON), '8.2.0');
    const onPath = dir('path');
    // A QEMU where a daemon should be: not a daemon, listed with why.
    qemu(path.join(onPath, STORAGE_DAEMON), '9.1.3');
    const error = await storageDaemonFor(
      { path: system, version: '9.1.3' },
      { env: envWith(onPath), cacheDir: dir('cache') },
    ).catch((e: unknown) => e);
    assert(isStorageDaemonVersionError(error), String(error));
    expect(error.wanted).toBe('9.1.3');
    expect(error.qemu).toBe(system);
    expect(error.candidates).toEqual([
      { path: path.join(bin, STORAGE_DAEMON), where: 'beside-binary', version: '8.2.0' },
      expect.objectContaining({
        path: path.join(onPath, STORAGE_DAEMON),
        where: 'path',
        version: undefined,
        problem: expect.stringContaining('did not print "qemu-storage-daemon version X.Y.Z"'),
      }),
    ]);
    expect(error.message).toContain('no qemu-storage-daemon of QEMU 9.1');
    expect(error.message).toContain(
      `${path.join(bin, STORAGE_DAEMON)} (beside-binary): version 8.2.0`,
    );
    expect(error.message).toContain('--storage-daemon <path>');
    // No download is known for 9.1: no fetch hint.
    expect(error.message).not.toContain('qemu fetch');
  });

  it('a release the project can fetch says how to fetch its tools', async () => {
    const error = await storageDaemonFor(
      { version: '10.0.2' },
      { env: envWith(dir('empty')), cacheDir: dir('c') },
    ).catch((e: unknown) => e);
    assert(isStorageDaemonVersionError(error), String(error));
    expect(error.candidates).toEqual([]);
    expect(error.message).toContain('none was found');
    expect(error.message).toContain('`qmpkit qemu fetch 10.0`');
  });
});

describe('daemonForVm: an explicit daemon, and a VM that never ran', () => {
  const vm = { path: '/nonexistent/qemu-system-x86_64', version: '10.0.2' };

  it('an explicit daemon older than the VM QEMU is used with a warning; the same version without', async () => {
    const d = dir('explicit');
    const old = daemon(path.join(d, 'qsd-7.2'), '7.2.22');
    const same = daemon(path.join(d, 'qsd-10.0'), '10.0.2');
    const newer = daemon(path.join(d, 'qsd-11.0'), '11.0.0');
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m) };
    expect((await daemonForVm(vm, { explicit: old, logger })).version).toBe('7.2.22');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('7.2.22');
    expect(warnings[0]).toContain('older than QEMU 10.0.2');
    expect((await daemonForVm(vm, { explicit: same, logger })).path).toBe(same);
    expect((await daemonForVm(vm, { explicit: newer, logger })).path).toBe(newer);
    expect(warnings).toHaveLength(1);
  });

  it('an explicit non-executable file, a qemu-system binary, a missing file: typed StorageDaemonError', async () => {
    const d = dir('bad');
    const plain = script(
      path.join(d, 'not-executable'),
      'echo "qemu-storage-daemon version 10.0.2"',
      0o644,
    );
    const system = qemu(path.join(d, 'qemu-system-x86_64'), '10.0.2');
    const cases: [string, string, RegExp][] = [
      [plain, 'bad-binary', /not executable/],
      [system, 'bad-binary', /did not print "qemu-storage-daemon version X\.Y\.Z"/],
      [path.join(d, 'missing'), 'not-found', /does not exist/],
    ];
    for (const [explicit, reason, message] of cases) {
      const error = await daemonForVm(vm, { explicit }).catch((e: unknown) => e);
      assert(isStorageDaemonError(error), `${explicit}: ${String(error)}`);
      expect(error.reason, explicit).toBe(reason);
      expect(error.message).toMatch(message);
    }
  });

  it('a VM with no recorded QEMU gets the daemon on PATH', async () => {
    const onPath = dir('path');
    daemon(path.join(onPath, STORAGE_DAEMON), '7.2.22');
    const binary = await daemonForVm(undefined, { env: envWith(onPath) });
    expect(binary).toMatchObject({ path: STORAGE_DAEMON, version: '7.2.22' });
  });
});

describe('stateQemu', () => {
  const runtime: Pick<RuntimeFacts, 'qemuBinary' | 'qemuVersion'> = {
    qemuBinary: '/usr/bin/qemu-system-x86_64',
    qemuVersion: { major: 7, minor: 2, micro: 22, package: 'Debian' },
  };

  it('reads launch.binary, else the runtime version, else nothing', () => {
    const binary = {
      path: '/c/qemu/10.0/root/usr/bin/qemu-system-x86_64',
      version: '10.0.2',
      dataDir: null,
      moduleDir: '/c/qemu/10.0/root/usr/lib/x86_64-linux-gnu/qemu',
      size: 1,
      mtimeMs: 1,
    };
    expect(stateQemu({ launch: { binary }, runtime })).toEqual({
      path: binary.path,
      version: '10.0.2',
      moduleDir: binary.moduleDir,
    });
    expect(stateQemu({ launch: {}, runtime })).toEqual({
      path: '/usr/bin/qemu-system-x86_64',
      version: '7.2.22',
    });
    expect(stateQemu({ launch: {}, runtime: { qemuBinary: '', qemuVersion: null } })).toBe(
      undefined,
    );
  });

  it('compareVersions orders X.Y.Z numerically', () => {
    expect(compareVersions('7.2.22', '10.0.2')).toBe(-1);
    expect(compareVersions('10.0.2', '10.0.2')).toBe(0);
    expect(compareVersions('10.0.10', '10.0.9')).toBe(1);
  });
});
