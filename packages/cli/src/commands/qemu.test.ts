/**
 * `qmpkit qemu fetch|which`: typed binary errors become exit code 2 with the reason; a release
 * in a cache is described with the dirs it runs with. (The real download runs in `.ci/run`
 * through `pnpm qemu:fetch 10.0`; machine's binary.qemu.test.ts runs the result.)
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { qemuCacheDir, unpackedRootLayout } from '@qmpkit/machine';
import { afterAll, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'qmpkit-cli-qemu-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

it('qemu fetch of a release nobody knows exits 2 and lists the known ones', async () => {
  const result = await run('qemu', 'fetch', '3.1', '--cache-dir', tmp);
  expect(result.code).toBe(2);
  expect(result.err).toContain('no download is known for QEMU 3.1 (known: 10.0)');
});

it('qemu which names a release not fetched yet and how to fetch it', async () => {
  const result = await run('qemu', 'which', '10.0', '--cache-dir', tmp);
  expect(result.code).toBe(2);
  expect(result.err).toContain('qmpkit qemu fetch 10.0');
});

it('qemu which describes a cached release with its data and module dirs', async () => {
  const root = path.join(qemuCacheDir(tmp, '10.0'), 'root');
  const layout = unpackedRootLayout(root);
  mkdirSync(path.dirname(layout.executable), { recursive: true });
  mkdirSync(layout.dataDir, { recursive: true });
  mkdirSync(layout.moduleDir, { recursive: true });
  writeFileSync(layout.executable, '#!/bin/sh\necho "QEMU emulator version 10.0.2"\n');
  chmodSync(layout.executable, 0o755);
  writeFileSync(path.join(qemuCacheDir(tmp, '10.0'), 'manifest.json'), '{}');
  const result = await run('qemu', 'which', '10.0', '--cache-dir', tmp, '--json');
  expect(result.code).toBe(0);
  expect(JSON.parse(result.out)).toEqual({
    path: layout.executable,
    version: '10.0.2',
    release: '10.0',
    dataDir: layout.dataDir,
    moduleDir: layout.moduleDir,
    source: 'cache',
  });
});
