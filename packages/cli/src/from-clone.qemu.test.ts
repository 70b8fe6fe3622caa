/**
 * `pnpm -s qmpkit …` from a clone (issue #12 §4): relative paths are resolved against the
 * directory the user ran it from (pnpm's INIT_CWD), not the workspace root, and a normal
 * non-zero exit keeps its status with no ELIFECYCLE noise.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { createFakeQmp, type FakeQmp } from '@qmpkit/fake-qmp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { REPO } from './cli.test-support.js';

// A directory inside the clone that is not a workspace package (like `docs/`): pnpm runs the
// root's script there, in the root. `.cache/` is gitignored.
mkdirSync(path.join(REPO, '.cache'), { recursive: true });
const dir = mkdtempSync(path.join(REPO, '.cache', 'clone-test-'));
const tmp = { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
let fake: FakeQmp;
beforeAll(async () => {
  // The socket is named relative to the user's directory only.
  fake = await createFakeQmp({
    listen: { unix: path.join(tmp.dir, 'qmp.sock') },
    storage: 'memory',
    paused: true,
  });
});
afterAll(async () => {
  await fake?.close();
  tmp.remove();
});

// The user's shell, not the `pnpm test` that runs this file: pnpm's npm_config_* settings
// would make the nested npx warn about configs it does not know.
const userEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^(npm|pnpm)_/i.test(k) && k !== 'INIT_CWD'),
);

async function pnpmQmpkit(...args: string[]) {
  return promisify(execFile)('npx', ['-y', 'pnpm@10.34.9', '-s', 'qmpkit', ...args], {
    cwd: tmp.dir,
    env: userEnv,
    encoding: 'utf8',
    timeout: 60_000,
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
}

it('resolves a relative unix: address against the directory pnpm ran in', {
  timeout: 90_000,
}, async () => {
  const ok = await pnpmQmpkit('exec', 'unix:qmp.sock', 'query-status', '--no-pretty');
  expect(ok.stderr).toBe('');
  expect(JSON.parse(ok.stdout)).toMatchObject({ status: 'prelaunch' });
  expect(ok.code).toBe(0);
});

it('a failing command exits with its own status and no ELIFECYCLE line', {
  timeout: 90_000,
}, async () => {
  const failed = await pnpmQmpkit('exec', 'unix:qmp.sock', 'blockdev-del', 'node-name=missing');
  expect(failed.code).toBe(1);
  expect(failed.stderr).toMatch(/^qmpkit: GenericError: /);
  expect(failed.stderr).not.toContain('ELIFECYCLE');
});
