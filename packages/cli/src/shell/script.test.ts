/**
 * `qmpkit shell` reading a script from a pipe (no terminal) against the fake QMP server: a
 * script whose lines all work exits 0, one with a failing line exits 1 (issue #12 §4).
 */
import { PassThrough } from 'node:stream';
import { createFakeQmp, type FakeQmp } from '@qmpkit/fake-qmp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';

async function script(address: string, text: string, ...flags: string[]) {
  const stdin = new PassThrough();
  stdin.end(text);
  const io = { ...recordingIo(), stdin };
  const code = await main(['shell', '--no-history', ...flags, address], io);
  return { code, out: io.out(), err: io.err() };
}

describe('a piped shell script', () => {
  let fake: FakeQmp;
  beforeAll(async () => {
    fake = await createFakeQmp({ listen: { unix: true }, storage: 'memory', paused: true });
  });
  afterAll(async () => {
    await fake?.close();
  });

  it('exits 0 when every line worked', async () => {
    const result = await script(fake.address, 'query-status\nquery-version\n');
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/"status":"prelaunch"/);
  });

  it('exits 1 when a line failed, after running the rest', async () => {
    const result = await script(fake.address, 'query-stauts\nquery-status\n');
    expect(result.out).toContain("has no command 'query-stauts'");
    expect(result.out).toMatch(/"status":"prelaunch"/);
    expect(result.code).toBe(1);
  });

  it('exits 1 when a QMP command fails on the server', async () => {
    const result = await script(fake.address, 'blockdev-del node-name=missing\n');
    expect(result.out).toMatch(/error: GenericError: /);
    expect(result.code).toBe(1);
  });
});
