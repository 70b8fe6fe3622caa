import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from '@qmpkit/transport';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../cli.js';

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

async function until(fn: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 10));
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

  it('the bin stops on SIGTERM with exit code 0', async () => {
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
    await until(() => out.includes('listening'));
    expect(out).toMatch(/^fake QMP \(QEMU 7\.2\) listening on tcp:127\.0\.0\.1:\d+\n$/);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) =>
      child.once('exit', (c) => resolve(c)),
    );
    expect(code).toBe(0);
  }, 20_000);
});
