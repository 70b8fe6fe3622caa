/**
 * `resolveQemuBinary` on made-up executables (shell scripts that print what a QEMU would):
 * each bad input gets its typed problem before anything is started, and an unpacked root
 * is run with its own data and module dirs.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  defaultCacheDir,
  parseQemuVersion,
  qemuBinaryArgs,
  qemuBinaryEnv,
  qemuCacheDir,
  resolveQemuBinary,
  unpackedRootLayout,
} from './binary.js';
import { isQemuBinaryError } from './errors.js';
import { launch } from './machine.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'qmpkit-binary-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function script(file: string, body: string, mode = 0o755): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, mode);
  return file;
}

/** An unpacked root whose "QEMU" answers only when run with its own module dir. */
function fakeRoot(dir: string, version: string, parts: { modules?: boolean } = {}): string {
  const layout = unpackedRootLayout(dir);
  script(
    layout.executable,
    `[ "$QEMU_MODULE_DIR" = "${layout.moduleDir}" ] || { echo "wrong module dir: $QEMU_MODULE_DIR" >&2; exit 1; }\necho "QEMU emulator version ${version} (Debian test)"`,
  );
  mkdirSync(layout.dataDir, { recursive: true });
  if (parts.modules !== false) mkdirSync(layout.moduleDir, { recursive: true });
  return dir;
}

async function problem(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    return isQemuBinaryError(error) ? error.problem : `untyped: ${String(error)}`;
  }
}

describe('resolveQemuBinary', () => {
  it('runs a binary in an unpacked root with -L and QEMU_MODULE_DIR of that root', async () => {
    const root = fakeRoot(path.join(tmp, 'ok'), '10.0.2');
    const layout = unpackedRootLayout(root);
    const binary = await resolveQemuBinary(layout.executable);
    expect(binary).toEqual({
      path: layout.executable,
      version: '10.0.2',
      release: '10.0',
      dataDir: layout.dataDir,
      moduleDir: layout.moduleDir,
      source: 'path',
    });
    expect(qemuBinaryArgs(binary)).toEqual(['-L', layout.dataDir]);
    expect(qemuBinaryEnv(binary, { PATH: '/bin' })).toEqual({
      PATH: '/bin',
      QEMU_MODULE_DIR: layout.moduleDir,
    });
  });

  it('refuses a 10.0 root without its module dir (it would load the system QEMU modules)', async () => {
    const root = fakeRoot(path.join(tmp, 'no-modules'), '10.0.2', { modules: false });
    expect(await problem(resolveQemuBinary(unpackedRootLayout(root).executable))).toBe(
      'missing-module-dir',
    );
  });

  it('refuses a path that is not QEMU, a file it cannot run, and a missing binary', async () => {
    const notQemu = script(path.join(tmp, 'bin', 'not-qemu'), 'echo "hello from a shell script"');
    const failing = script(
      path.join(tmp, 'bin', 'failing'),
      'echo "QEMU emulator version 7.2.0"; exit 3',
    );
    const noExec = script(path.join(tmp, 'bin', 'no-exec'), 'echo hi', 0o644);
    expect([
      await problem(resolveQemuBinary(notQemu)),
      await problem(resolveQemuBinary(failing)),
      await problem(resolveQemuBinary(noExec)),
      await problem(resolveQemuBinary(tmp)),
      await problem(resolveQemuBinary(path.join(tmp, 'bin', 'none-such'))),
      await problem(resolveQemuBinary('qmpkit-no-such-qemu-on-path')),
    ]).toEqual(['not-qemu', 'not-qemu', 'not-qemu', 'not-qemu', 'not-found', 'not-found']);
  });

  it('resolves a release from the cache, names an unfetched one and a mismatched one', async () => {
    const cacheDir = path.join(tmp, 'cache');
    const dir = qemuCacheDir(cacheDir, '10.0');
    fakeRoot(path.join(dir, 'root'), '10.0.2');
    writeFileSync(path.join(dir, 'manifest.json'), '{}');
    const binary = await resolveQemuBinary('10.0', { cacheDir });
    expect([binary.source, binary.version, binary.path]).toEqual([
      'cache',
      '10.0.2',
      unpackedRootLayout(path.join(dir, 'root')).executable,
    ]);
    expect(await problem(resolveQemuBinary('9.2', { cacheDir }))).toBe('not-fetched');
    const wrong = qemuCacheDir(cacheDir, '9.1');
    fakeRoot(path.join(wrong, 'root'), '9.2.0');
    writeFileSync(path.join(wrong, 'manifest.json'), '{}');
    expect(await problem(resolveQemuBinary('9.1', { cacheDir }))).toBe('version-mismatch');
  });

  it('tells the user how to fetch a release that is not cached', async () => {
    await expect(resolveQemuBinary('10.0', { cacheDir: path.join(tmp, 'empty') })).rejects.toThrow(
      'qmpkit qemu fetch 10.0',
    );
  });
});

describe('helpers', () => {
  it('a binary without its own module dir does not inherit one from the environment', () => {
    const system = {
      path: 'qemu-system-x86_64',
      version: '7.2.22',
      release: '7.2',
      dataDir: undefined,
      moduleDir: undefined,
      source: 'path',
    } as const;
    expect(qemuBinaryEnv(system, { PATH: '/bin', QEMU_MODULE_DIR: '/elsewhere' })).toEqual({
      PATH: '/bin',
    });
    expect(qemuBinaryArgs(system)).toEqual([]);
  });

  it('parses the version line of QEMU 7.2 and 10.0, nothing else', () => {
    expect(
      parseQemuVersion(
        'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022',
      ),
    ).toBe('7.2.22');
    expect(parseQemuVersion('QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)')).toBe('10.0.2');
    expect(parseQemuVersion('qemu-img version 7.2.22')).toBeUndefined();
  });

  it('defaultCacheDir: QMPKIT_CACHE_DIR, then XDG_CACHE_HOME/qmpkit, then ~/.cache/qmpkit', () => {
    expect(defaultCacheDir({ QMPKIT_CACHE_DIR: '/c', XDG_CACHE_HOME: '/x' })).toBe('/c');
    expect(defaultCacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/qmpkit');
    expect(defaultCacheDir({})).toMatch(/\.cache\/qmpkit$/);
  });
});

describe('launch by release name', () => {
  it('asks the resolved binary (with its module dir) for its accelerators, not the release name', async () => {
    // Regression: the probe ran before the release was resolved, so `launch({ qemu: '10.0' })`
    // asked a program named "10.0" and fell back to ['tcg'] even where KVM works.
    const cacheDir = path.join(tmp, 'accel-cache');
    const dir = qemuCacheDir(cacheDir, '9.9');
    const layout = unpackedRootLayout(path.join(dir, 'root'));
    const log = path.join(tmp, 'accel-calls.log');
    script(
      layout.executable,
      [
        `[ "$QEMU_MODULE_DIR" = "${layout.moduleDir}" ] || { echo "wrong module dir" >&2; exit 1; }`,
        `echo "$*" >> "${log}"`,
        'case "$1" in',
        '  --version) echo "QEMU emulator version 9.9.0 (Debian test)";;',
        '  -accel) printf "Accelerators supported in QEMU binary:\\ntcg\\n";;',
        '  *) echo "not a real QEMU" >&2; exit 1;;',
        'esac',
      ].join('\n'),
    );
    mkdirSync(layout.dataDir, { recursive: true });
    mkdirSync(layout.moduleDir, { recursive: true });
    writeFileSync(path.join(dir, 'manifest.json'), '{}');
    const error = await launch(
      { machine: { type: 'pc' }, memory: { size: 16 * 1024 * 1024 } },
      { qemu: '9.9', cacheDir, runDirParent: tmp, launchTimeout: 5_000 },
    ).catch((e: unknown) => e);
    expect((error as Error).name).toBe('QemuLaunchError');
    const calls = readFileSync(log, 'utf8').trim().split('\n');
    expect(calls.slice(0, 2)).toEqual(['--version', '-accel help']);
    // The launch itself then ran with what the probe found.
    expect(calls[2]).toContain('-accel tcg');
  });
});
