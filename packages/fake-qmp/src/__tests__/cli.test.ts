import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from '@qmpkit/transport';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { runCli } from '../cli.js';
import { formatConversation } from '../replay/conversation.js';

const dir = mkdtempSync(path.join(tmpdir(), 'fake-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function io() {
  let out = '';
  let err = '';
  return {
    io: {
      out: (t: string) => {
        out += t;
      },
      err: (t: string) => {
        err += t;
      },
    },
    out: () => out,
    err: () => err,
  };
}

/**
 * Waits until `fn` holds, however long that takes: a busy machine can take seconds to start
 * the bin under tsx, and a fixed 2 s budget failed there. The test's timeout guards a hang.
 */
async function until(fn: () => boolean): Promise<void> {
  while (!fn()) await new Promise((r) => setTimeout(r, 10));
}

describe('qmpkit-fake-qmp', () => {
  it('serves on a unix socket, prints where, stops on abort', async () => {
    const o = io();
    const controller = new AbortController();
    const sock = path.join(dir, 'a', 'qmp.sock');
    const done = runCli(['--unix', sock, '--machine', 'none'], controller.signal, o.io);
    await until(() => o.out().includes('listening'));
    expect(o.out()).toBe(`fake QMP (QEMU 7.2) listening on unix:${sock}\n`);
    const qmp = await connect(`unix:${sock}`);
    expect((await qmp.execute('query-status')).status).toBe('running');
    await qmp.close();
    controller.abort();
    expect(await done).toBe(0);
  });

  it('exits 0 when the simulated QEMU quits', async () => {
    const o = io();
    const done = runCli(['--tcp', '127.0.0.1:0'], new AbortController().signal, o.io);
    await until(() => o.out().includes('listening'));
    const address = o.out().trim().split(' ').at(-1)!;
    const qmp = await connect(address);
    await qmp.execute('quit');
    expect(await done).toBe(0);
  });

  it('imitates QEMU 10.0 with --qemu-version 10.0', async () => {
    const o = io();
    const controller = new AbortController();
    const sock = path.join(dir, 'v10', 'qmp.sock');
    const done = runCli(['--unix', sock, '--qemu-version', '10.0'], controller.signal, o.io);
    await until(() => o.out().includes('listening'));
    expect(o.out()).toBe(`fake QMP (QEMU 10.0) listening on unix:${sock}\n`);
    const qmp = await connect(`unix:${sock}`);
    expect(qmp.greeting.version.qemu).toEqual({ major: 10, minor: 0, micro: 2 });
    await qmp.close();
    controller.abort();
    expect(await done).toBe(0);
  });

  it('refuses bad usage (exit 2) and corrupt replay files (exit 1, with the location)', async () => {
    let o = io();
    expect(await runCli([], new AbortController().signal, o.io)).toBe(2);
    expect(o.err()).toContain('give at least one of --unix, --tcp, --ws');
    o = io();
    expect(
      await runCli(['--tcp', 'x:1', '--qemu-version', '8.0'], new AbortController().signal, o.io),
    ).toBe(2);
    expect(o.err()).toContain("argument '8.0' is invalid");
    const bad = path.join(dir, 'bad.qmp');
    writeFileSync(
      bad,
      '{"format":"qmpkit-conversation","version":1}\n{"dir":"sideways","line":""}\n',
    );
    o = io();
    expect(
      await runCli(['--tcp', '127.0.0.1:0', '--replay', bad], new AbortController().signal, o.io),
    ).toBe(1);
    expect(o.err()).toBe(`qmpkit-fake-qmp: ${bad}:2: "dir" must be "in" or "out"\n`);
  });

  it('serves QMP over WebSocket with --ws and prints the ws:// address', async () => {
    const o = io();
    const controller = new AbortController();
    const done = runCli(['--ws', '127.0.0.1:0', '--machine', 'none'], controller.signal, o.io);
    await until(() => o.out().includes('listening'));
    expect(o.out()).toMatch(/^fake QMP \(QEMU 7\.2\) listening on ws:\/\/127\.0\.0\.1:\d+\/\n$/);
    const address = o.out().trim().split(' ').at(-1)!;
    const { WebSocket } = await import('ws');
    const qmp = await connect(address, { WebSocket });
    expect((await qmp.execute('query-version')).qemu).toMatchObject({ major: 7, minor: 2 });
    expect((await qmp.execute('query-status')).status).toBe('running');
    await qmp.close();
    controller.abort();
    expect(await done).toBe(0);
  });

  it('serves a valid --replay conversation file to a client', async () => {
    const file = path.join(dir, 'good.qmp');
    const greeting =
      '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "recorded"}, "capabilities": ["oob"]}}';
    writeFileSync(
      file,
      formatConversation({
        qemu: { major: 7, minor: 2, micro: 0 },
        source: 'hand-made for cli.test.ts',
        records: [
          { dir: 'out', line: greeting },
          // What @qmpkit/transport sends when the greeting offers oob.
          {
            dir: 'in',
            line: '{"execute":"qmp_capabilities","arguments":{"enable":["oob"]},"id":1}',
          },
          { dir: 'out', line: '{"return": {}, "id": 1}' },
          { dir: 'in', line: '{"execute":"query-name","id":2}' },
          { dir: 'out', line: '{"return": {"name": "from-the-recording"}, "id": 2}' },
        ],
      }),
    );
    const o = io();
    const controller = new AbortController();
    const sock = path.join(dir, 'replay', 'qmp.sock');
    const done = runCli(['--unix', sock, '--replay', file], controller.signal, o.io);
    await until(() => o.out().includes('listening'));
    const qmp = await connect(`unix:${sock}`);
    // The recorded greeting, not the simulated 7.2.22 one; the recorded answer, not the model's.
    expect(qmp.greeting.version.package).toBe('recorded');
    expect(await qmp.execute('query-name')).toEqual({ name: 'from-the-recording' });
    await qmp.close();
    controller.abort();
    expect(await done).toBe(0);
    expect(o.err()).toBe('');
  });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'the bin stops on %s with exit code 0',
    async (signal) => {
      const bin = path.join(import.meta.dirname, '..', 'bin.ts');
      const child = spawn(
        process.execPath,
        ['--conditions=@qmpkit/source', '--import', 'tsx', bin, '--tcp', '127.0.0.1:0'],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      // A failed or timed-out test must not leave the bin listening.
      onTestFinished(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
        (resolve) => child.once('exit', (code, sig) => resolve({ code, signal: sig })),
      );
      await until(() => out.includes('listening'));
      expect(out).toMatch(/^fake QMP \(QEMU 7\.2\) listening on tcp:127\.0\.0\.1:\d+\n$/);
      child.kill(signal);
      // Killed by the signal (no handler) would be { code: null, signal }.
      expect(await exited).toEqual({ code: 0, signal: null });
    },
    20_000,
  );
});
