/**
 * `QemuBinary` with real binaries: the system's QEMU by name, and QEMU 10.0 fetched into the
 * repository's `.cache` by `pnpm qemu:fetch 10.0` (CI fetches it; elsewhere the 10.0 test
 * skips with that instruction). Each binary is started with its `-L`/`QEMU_MODULE_DIR` and
 * answers `query-version` over QMP on stdio.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import {
  QEMU_10,
  QEMU_SYSTEM,
  qemuSkipReason,
  REPO_CACHE_DIR,
} from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { type QemuBinary, qemuBinaryArgs, qemuBinaryEnv, resolveQemuBinary } from './binary.js';

const systemSkip = qemuSkipReason(QEMU_SYSTEM);
const cacheDir = REPO_CACHE_DIR;
const skip10 = systemSkip ?? qemuSkipReason(QEMU_10);

/** Starts the binary with `-machine none`, asks `query-version` and quits; returns version + stderr. */
async function queryVersion(binary: QemuBinary): Promise<{ version: string; stderr: string }> {
  const child = spawn(
    binary.path,
    [
      ...qemuBinaryArgs(binary),
      '-machine',
      'none',
      '-nodefaults',
      '-display',
      'none',
      '-qmp',
      'stdio',
    ],
    { env: qemuBinaryEnv(binary), stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  try {
    const lines = createInterface({ input: child.stdout });
    child.stdin.write('{"execute":"qmp_capabilities"}\n{"execute":"query-version"}\n');
    for await (const line of lines) {
      const message = JSON.parse(line) as {
        return?: { qemu?: { major: number; minor: number; micro: number } };
      };
      const q = message.return?.qemu;
      if (q) {
        child.stdin.write('{"execute":"quit"}\n');
        await exited;
        return { version: `${q.major}.${q.minor}.${q.micro}`, stderr };
      }
    }
    throw new Error(`QEMU closed QMP without answering query-version: ${stderr}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}

/** `-device help` loads every module QEMU finds: its stderr shows whether they fit. */
function deviceHelpStderr(binary: QemuBinary): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary.path, [...qemuBinaryArgs(binary), '-device', 'help'], {
      env: qemuBinaryEnv(binary),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('close', () => resolve(stderr));
  });
}

describe('QemuBinary with real QEMU', () => {
  it('the system QEMU by name: no -L, no module dir, version from --version', async (ctx) => {
    ctx.skip(systemSkip !== undefined, systemSkip);
    const binary = await resolveQemuBinary('qemu-system-x86_64');
    expect([binary.dataDir, binary.moduleDir, binary.source]).toEqual([
      undefined,
      undefined,
      'path',
    ]);
    expect((await queryVersion(binary)).version).toBe(binary.version);
  });

  it('10.0 from the cache runs with its own modules beside the system QEMU', async (ctx) => {
    ctx.skip(skip10 !== undefined, skip10);
    const binary = await resolveQemuBinary('10.0', { cacheDir });
    expect(binary.version).toMatch(/^10\.0\.\d+$/);
    expect(binary.source).toBe('cache');
    const { version, stderr } = await queryVersion(binary);
    expect(version).toBe(binary.version);
    expect(stderr).toBe('');
    expect(await deviceHelpStderr(binary)).not.toContain('Only modules from the same build');
    // Also by path: the same root is recognised and gets the same dirs.
    const byPath = await resolveQemuBinary(binary.path);
    expect({ ...byPath, source: 'cache' }).toEqual(binary);
  });

  it('the 10.0 binary without QEMU_MODULE_DIR loads the system modules and complains (why the env is needed)', async (ctx) => {
    ctx.skip(skip10 !== undefined, skip10);
    const binary = await resolveQemuBinary('10.0', { cacheDir });
    expect(await deviceHelpStderr({ ...binary, moduleDir: undefined })).toContain(
      'Only modules from the same build can be loaded',
    );
  });
});
