/** `qmpkit exec` against the fake QMP server: exit codes and error output (issue #12 §4). */
import { createFakeQmp, type FakeQmp } from '@qmpkit/fake-qmp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';

async function run(...argv: string[]) {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

describe('qmpkit exec', () => {
  let fake: FakeQmp;
  let address: string;
  beforeAll(async () => {
    fake = await createFakeQmp({ listen: { unix: true }, storage: 'memory', paused: true });
    address = fake.address;
  });
  afterAll(async () => {
    await fake?.close();
  });

  it('--hmp exits 1 with the HMP error when the command line fails (device_del nosuch)', async () => {
    const result = await run('exec', address, '--hmp', 'device_del', 'nosuch');
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/^qmpkit: HMP 'device_del nosuch' failed: /m);
    expect(result.out).toBe('');
  });

  it('--hmp exits 0 and prints the text when the command line works', async () => {
    const result = await run('exec', address, '--hmp', 'info', 'status');
    expect(result).toMatchObject({ code: 0, err: '' });
    expect(result.out).toMatch(/VM status: paused/);
  });

  it('--json-errors reports a QMP error as one JSON line with class, desc and exit code', async () => {
    const result = await run('exec', address, '--json-errors', 'blockdev-del', 'node-name=nope');
    expect(result.code).toBe(1);
    expect(result.out).toBe('');
    const line = JSON.parse(result.err.trim()) as { error: Record<string, unknown> };
    expect(line.error).toMatchObject({
      command: 'blockdev-del',
      class: 'GenericError',
      exitCode: 1,
    });
    expect(line.error.desc).toMatch(/nope/);
  });

  it('--json-errors reports our own refusals too (unknown command: exit 2, nothing sent)', async () => {
    const result = await run('exec', address, '--json-errors', 'query-stauts');
    expect(result.code).toBe(2);
    const line = JSON.parse(result.err.trim()) as { error: Record<string, unknown> };
    expect(line.error).toMatchObject({ class: 'CliUsageError', exitCode: 2 });
    expect(line.error.desc).toMatch(/did you mean query-status/);
  });

  it('--json-errors reports an unreachable address with exit 2', async () => {
    const result = await run('exec', 'unix:/nonexistent/qmp.sock', '--json-errors', 'query-status');
    expect(result.code).toBe(2);
    expect(JSON.parse(result.err.trim())).toMatchObject({
      error: { class: 'CliConnectError', exitCode: 2 },
    });
  });
});
