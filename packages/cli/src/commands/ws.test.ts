/**
 * `ws://` addresses (issue 7: "Addresses: unix:/path, tcp:host:port, ws://…") against the
 * fake QMP server's WebSocket listener: exec and events in-process and through the real
 * bin (Node 20 has no global WebSocket: the CLI's lazily imported `ws` must do), and every
 * way of not connecting as a clear error with exit 2.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createFakeQmp, type FakeQmp } from '@qmpkit/fake-qmp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';

const BIN = path.join(import.meta.dirname, '../bin.ts');

async function run(...argv: string[]) {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

describe('ws:// addresses against the fake QMP server', () => {
  let fake: FakeQmp;
  let ws: string;
  let tcp: string;
  beforeAll(async () => {
    fake = await createFakeQmp({
      listen: [{ ws: { path: '/qmp' } }, { tcp: {} }],
      storage: 'memory',
      paused: true,
    });
    ws = fake.addresses.find((a) => a.kind === 'ws')!.address;
    tcp = fake.addresses.find((a) => a.kind === 'tcp')!.address;
  });
  afterAll(async () => {
    await fake?.close();
  });

  it('exec query-status over ws:// prints the return as JSON', async () => {
    expect(ws).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/qmp$/);
    const before = fake.received('query-status').length;
    const status = await run('exec', ws, 'query-status');
    expect(status).toMatchObject({ code: 0, err: '' });
    expect(JSON.parse(status.out)).toEqual({
      status: 'prelaunch',
      singlestep: false,
      running: false,
    });
    expect(fake.received('query-status')).toHaveLength(before + 1);
  });

  it('exec over ws:// from the bin in a child process (no global WebSocket on Node 20)', async () => {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [
        '--conditions=@qmpkit/source',
        '--import',
        'tsx',
        BIN,
        'exec',
        '--no-pretty',
        ws,
        'query-status',
      ],
      { env: { ...process.env, NO_COLOR: '1' } },
    );
    expect(stderr).toBe('');
    expect(JSON.parse(stdout)).toMatchObject({ status: 'prelaunch', running: false });
  });

  it('events over ws:// prints the events QEMU sends, filtered by --name, until --count', async () => {
    const io = recordingIo();
    const done = main(['events', ws, '--name', 'STOP', '--count', '1'], io);
    while (!io.err().includes('listening')) await sleep(20);
    expect(io.err()).toContain(`listening on ${ws} for STOP`);
    // Through a second ws:// client: cont (RESUME, filtered out), then stop (STOP).
    expect(await run('exec', ws, 'cont')).toMatchObject({ code: 0, out: '{}\n' });
    expect(await run('exec', ws, 'stop')).toMatchObject({ code: 0, out: '{}\n' });
    expect(await done).toBe(0);
    const lines = io.out().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      event: 'STOP',
      timestamp: { seconds: expect.any(Number), microseconds: expect.any(Number) },
    });
  });

  it('an unreachable ws:// address exits 2 with the reason', async () => {
    const refused = await run('exec', 'ws://127.0.0.1:1/qmp', 'query-status');
    expect(refused).toMatchObject({
      code: 2,
      out: '',
      err: 'qmpkit: cannot connect to ws://127.0.0.1:1/qmp: nothing is listening there (ECONNREFUSED)\n',
    });
    const events = await run('events', 'ws://127.0.0.1:1/qmp');
    expect(events.code).toBe(2);
    expect(events.err).toContain('nothing is listening there (ECONNREFUSED)');
  });

  // Regression: these printed the `ws` package's raw text (an OpenSSL record dump with a
  // trailing blank line, "Unexpected server response: 400", an HTTP parser error).
  it('a WebSocket handshake that fails says what to check, exit 2', async () => {
    const port = /:(\d+)\//.exec(ws)![1];
    const wrongPath = await run('exec', `ws://127.0.0.1:${port}/nope`, 'query-status');
    expect(wrongPath).toMatchObject({
      code: 2,
      err: `qmpkit: cannot connect to ws://127.0.0.1:${port}/nope: the server answered HTTP 400, not a WebSocket upgrade: is the path right?\n`,
    });
    const tls = await run('exec', `wss://127.0.0.1:${port}/qmp`, 'query-status');
    expect(tls).toMatchObject({
      code: 2,
      err: `qmpkit: cannot connect to wss://127.0.0.1:${port}/qmp: TLS handshake failed (EPROTO): is the server plain ws:// rather than wss://?\n`,
    });
    const rawQmp = `ws://${tcp.slice('tcp:'.length)}/`;
    const raw = await run('exec', rawQmp, 'query-status');
    expect(raw.code).toBe(2);
    expect(raw.err).toMatch(
      new RegExp(
        `^qmpkit: cannot connect to ${rawQmp}: the server does not speak HTTP \\(HPE_\\w+\\): for a plain QMP socket use tcp:host:port\\n$`,
      ),
    );
  });

  it('malformed ws:// and wss:// addresses are usage errors (exit 2), nothing dialled', async () => {
    for (const address of ['ws://', 'wss://', 'ws://127.0.0.1:99999/qmp', 'ws://bad host/qmp']) {
      const result = await run('exec', address, 'query-status');
      expect(result).toMatchObject({
        code: 2,
        out: '',
        err: `qmpkit: QMP address '${address}': not a valid URL\n`,
      });
    }
    const scheme = await run('exec', 'ws:/127.0.0.1/qmp', 'query-status');
    expect(scheme.code).toBe(2);
    expect(scheme.err).toContain('expected unix:/path, tcp:host:port, ws://… or wss://…');
  });
});
