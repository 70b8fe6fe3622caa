/**
 * `qmpkit snapshot` and `qmpkit vm` without QEMU: no supervisor (exit 2), `list` from the
 * store on disk, the error texts and exit codes, and the Ctrl-C flow against a scripted
 * supervisor on a real control socket.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { SnapshotStore } from '@qmpkit/snapshots';
import { afterAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import { SupervisorError } from '../vm/client.js';
import { lineReader, PROTOCOL_VERSION } from '../vm/protocol.js';
import { compatLine, EXIT_INTERRUPTED, progressView, reportFailure } from './snapshot.js';

const root = mkdtempSync(path.join(tmpdir(), 'qmpkit-snap-unit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

describe('without a supervisor', () => {
  it('save, load, delete, vm status and vm stop exit 2 and say how to start one', async () => {
    const dir = path.join(root, 'none');
    for (const argv of [
      ['snapshot', 'save', 's', '--dir', dir],
      ['snapshot', 'load', 's', '--dir', dir],
      ['snapshot', 'delete', 's', '--dir', dir],
      ['vm', 'status', '--dir', dir],
      ['vm', 'stop', '--dir', dir],
    ]) {
      const { code, err } = await run(...argv);
      expect(code, argv.join(' ')).toBe(2);
      expect(err).toBe(
        `qmpkit: no qmpkit VM supervisor is running at ${dir} (ENOENT on control.sock); start one with: qmpkit vm start <config.json> --dir ${dir}\n`,
      );
    }
  });

  it('list reads the manifest on disk (read-only), or says there is no such directory', async () => {
    const dir = path.join(root, 'disk');
    const store = await SnapshotStore.open(path.join(dir, 'snapshots'));
    const base = {
      strategy: 'external' as const,
      createdAt: new Date().toISOString(),
      description: undefined,
      qemuVersion: '7.2.22',
      machineType: 'pc-i440fx-7.2',
      configHash: 'h',
      memoryBytes: 1,
      vmStateBytes: 2048,
      wasRunning: true,
      stateFile: undefined,
      layers: [],
      tag: undefined,
      live: false,
      consoles: [],
      config: null,
    };
    await store.update((m) => ({
      ...m,
      current: '0000000b',
      snapshots: [
        { ...base, id: '0000000a', name: 'one', parent: null },
        { ...base, id: '0000000b', name: 'two', parent: 'one' },
      ],
    }));
    const list = await run('snapshot', 'list', '--dir', dir);
    expect(list.code).toBe(0);
    expect(list.err).toMatch(/^qmpkit: no supervisor runs at .*; read .*manifest\.json\n$/);
    expect(list.out).toMatch(/^ {2}one +external +2\.0 KiB {2}just now\n\* └─ two +external/);
    const json = JSON.parse((await run('snapshot', 'list', '--dir', dir, '--json')).out) as {
      current: string;
      snapshots: Record<string, unknown>[];
    };
    expect(json.current).toBe('0000000b');
    expect(json.snapshots.map((s) => s.name)).toEqual(['one', 'two']);
    expect(json.snapshots[0]).not.toHaveProperty('consoles');

    const empty = path.join(root, 'empty');
    mkdirSync(empty, { mode: 0o700 });
    expect((await run('snapshot', 'list', '--dir', empty)).out).toBe('no snapshots\n');
    const missing = await run('snapshot', 'list', '--dir', path.join(root, 'missing'));
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/no such VM directory/);
  });

  it('vm start refuses a directory open to others and an unreadable configuration (exit 2)', async () => {
    const open = path.join(root, 'open');
    mkdirSync(open, { mode: 0o755 });
    const shared = await run('vm', 'start', path.join(root, 'x.json'), '--dir', open);
    expect(shared.code).toBe(2);
    expect(shared.err).toMatch(/mode 755 lets others in/);
    const noConfig = await run(
      'vm',
      'start',
      path.join(root, 'x.json'),
      '--dir',
      path.join(root, 'vm'),
    );
    expect(noConfig.code).toBe(2);
    expect(noConfig.err).toMatch(/x\.json: ENOENT/);
  });
});

describe('reportFailure', () => {
  const report = (remote: Record<string, unknown>) => {
    const io = recordingIo();
    const code = reportFailure(
      io,
      'save',
      'snap',
      new SupervisorError({ name: 'Error', message: 'm', ...remote }),
    );
    return { code, err: io.err() };
  };

  it("maps the supervisor's errors to messages and exit codes", () => {
    expect(report({ name: 'SnapshotNotFoundError', known: ['snip', 'other'] })).toEqual({
      code: 1,
      err: "qmpkit: no snapshot 'snap'; did you mean snip? (snapshots: snip, other)\n",
    });
    expect(report({ name: 'SnapshotNotFoundError', known: [] }).err).toBe(
      "qmpkit: no snapshot 'snap' (there are no snapshots)\n",
    );
    expect(report({ name: 'SnapshotExistsError', where: 'store' })).toEqual({
      code: 1,
      err: "qmpkit: snapshot 'snap' already exists; use --overwrite to replace it\n",
    });
    expect(
      report({
        name: 'SnapshotAbortedError',
        check: { before: 'old', after: 'old', runState: 'running' },
      }),
    ).toEqual({
      code: EXIT_INTERRUPTED,
      err: "qmpkit: save of 'snap' aborted; the store is unchanged ('snap' is the one from before); the VM is running\n",
    });
    expect(report({ name: 'ProtocolError', message: 'bad' }).code).toBe(2);
    expect(report({ name: 'SnapshotQemuError', message: 'no space' })).toEqual({
      code: 1,
      err: "qmpkit: save 'snap': SnapshotQemuError: no space\n",
    });
    // Any class of the cannot-load hierarchy (recognised by its brand, not its name).
    expect(
      report({
        name: 'SnapshotMismatchError',
        snapshotCannotLoad: true,
        reason: 'ram-differs',
        message: 'does not fit',
      }),
    ).toEqual({ code: 1, err: "qmpkit: save 'snap' refused (ram-differs): does not fit\n" });
    // A load that failed after touching the VM is no refusal.
    expect(
      report({
        name: 'SnapshotRestoreError',
        snapshotCannotLoad: true,
        touched: true,
        reason: 'load-timeout',
        message: 'no completed incoming migration',
      }),
    ).toEqual({
      code: 1,
      err: "qmpkit: save 'snap' failed (load-timeout): no completed incoming migration\n",
    });
    const io = recordingIo();
    expect(
      reportFailure(io, 'load', 'x', new Error('the supervisor closed the control connection')),
    ).toBe(1);
    expect(io.err()).toMatch(/the outcome is unknown/);
  });
});

describe('Ctrl-C against a scripted supervisor', () => {
  /** A control socket that answers `save` with progress and waits; `abort` ends it. */
  async function fakeSupervisor(dir: string, abortable: boolean) {
    mkdirSync(dir, { mode: 0o700 });
    const received: unknown[] = [];
    const server = net.createServer((socket) => {
      socket.write(`${JSON.stringify({ hello: { protocol: PROTOCOL_VERSION, pid: 1 } })}\n`);
      const send = (v: unknown) => socket.write(`${JSON.stringify(v)}\n`);
      socket.on(
        'data',
        lineReader(
          (value) => {
            received.push(value);
            const request = value as { id: number; method: string; params: { id?: number } };
            if (request.method === 'save') {
              send({
                id: request.id,
                progress: {
                  phase: 'save',
                  bytes: 1024,
                  totalBytes: 4096,
                  percent: 25,
                  elapsedMs: 1,
                },
              });
            } else if (request.method === 'abort') {
              send({ id: request.id, result: { aborted: abortable } });
              if (abortable)
                send({
                  id: request.params.id,
                  error: {
                    name: 'SnapshotAbortedError',
                    message: 'aborted',
                    check: { before: null, after: null, runState: 'running' },
                  },
                });
            }
          },
          () => {},
        ),
      );
    });
    await new Promise<void>((resolve) => server.listen(path.join(dir, 'control.sock'), resolve));
    return { received, close: () => new Promise((resolve) => server.close(resolve)) };
  }

  it('the first Ctrl-C sends abort {id} and exits 130 once the supervisor confirms', async () => {
    const dir = path.join(root, 'fake1');
    const fake = await fakeSupervisor(dir, true);
    const io = recordingIo();
    const done = main(['snapshot', 'save', 'x', '--dir', dir], io);
    while (!io.err().includes('save x: save 25%')) await new Promise((r) => setTimeout(r, 5));
    io.interrupt();
    expect(await done).toBe(EXIT_INTERRUPTED);
    expect(fake.received).toEqual([
      { id: 1, method: 'save', params: { name: 'x' } },
      { id: 2, method: 'abort', params: { id: 1 } },
    ]);
    expect(io.err()).toBe(
      [
        'save x: save 25% (1.0 KiB of 4.0 KiB)',
        "qmpkit: interrupted: aborting the save of 'x' (Ctrl-C again to stop waiting)",
        "qmpkit: save of 'x' aborted; the store is unchanged ('x' does not exist); the VM is running",
        '',
      ].join('\n'),
    );
    await fake.close();
  });

  it('--disk-only asks for an external disk-only save, --require-quiesce passes through', async () => {
    const dir = path.join(root, 'fake-disk-only');
    const fake = await fakeSupervisor(dir, true);
    const io = recordingIo();
    const done = main(
      ['snapshot', 'save', 'd', '--disk-only', '--require-quiesce', '--dir', dir],
      io,
    );
    while (!io.err().includes('save d: save 25%')) await new Promise((r) => setTimeout(r, 5));
    io.interrupt();
    expect(await done).toBe(EXIT_INTERRUPTED);
    expect(fake.received[0]).toEqual({
      id: 1,
      method: 'save',
      params: { name: 'd', diskOnly: true, requireQuiesce: true, strategy: 'external' },
    });
    await fake.close();
  });

  it('a second Ctrl-C stops waiting (exit 130) when the supervisor does not answer', async () => {
    const dir = path.join(root, 'fake2');
    const fake = await fakeSupervisor(dir, false);
    const io = recordingIo();
    const done = main(['snapshot', 'save', 'x', '--dir', dir], io);
    while (!io.err().includes('save x: save')) await new Promise((r) => setTimeout(r, 5));
    io.interrupt();
    while (fake.received.length < 2) await new Promise((r) => setTimeout(r, 5));
    io.interrupt();
    expect(await done).toBe(EXIT_INTERRUPTED);
    expect(io.err()).toMatch(/stopped waiting; the supervisor finishes the abort/);
    await fake.close();
  });
});

describe('progressView', () => {
  const p = (phase: 'pause' | 'save', bytes: number, percent?: number) => ({
    phase,
    bytes,
    totalBytes: percent === undefined ? undefined : 4096,
    percent,
    elapsedMs: 0,
  });

  it('on a terminal: a bar with phase, percent and bytes', () => {
    const stderr = Object.assign(new PassThrough(), { isTTY: true, columns: 100 });
    let text = '';
    stderr.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    const io = { ...recordingIo(), stderr };
    const view = progressView(io, 'save s');
    view.update(p('pause', 0));
    view.update(p('save', 2048, 50));
    view.stop();
    expect(text).toContain('save s [');
    expect(text).toMatch(/50% save 2\.0 KiB\/4\.0 KiB/);
  });

  it('elsewhere: one line per phase and per quarter', () => {
    const io = recordingIo();
    const view = progressView(io, 'save s');
    for (const [phase, bytes, percent] of [
      ['pause', 0, undefined],
      ['save', 0, 0],
      ['save', 100, 2],
      ['save', 1100, 27],
      ['save', 1200, 30],
      ['save', 4096, 100],
    ] as const)
      view.update(p(phase, bytes, percent));
    expect(io.err()).toBe(
      [
        'save s: pause',
        'save s: save 0% (0 B of 4.0 KiB)',
        'save s: save 27% (1.1 KiB of 4.0 KiB)',
        'save s: save 100% (4.0 KiB of 4.0 KiB)',
        '',
      ].join('\n'),
    );
  });
});

describe('compatLine', () => {
  const base = { flaggedSections: [] as string[], flaggedButLoaded: [] as string[] };
  it('says what was checked and what the probe loaded', () => {
    expect(
      compatLine({
        check: 'probe',
        verdict: 'warn',
        flaggedSections: ['e1000e', 'hpet'],
        flaggedButLoaded: ['e1000e', 'hpet'],
      }),
    ).toBe(
      'compatibility: warn (probe loaded the state); statically flagged: e1000e, hpet, of which the probe loaded 2',
    );
    expect(compatLine({ ...base, check: 'probe', verdict: 'ok' })).toBe(
      'compatibility: ok (probe loaded the state)',
    );
    expect(
      compatLine({ ...base, check: 'static', verdict: 'warn', flaggedSections: ['hpet'] }),
    ).toBe(
      'compatibility: warn (static check only, no probe ran: the saving binary is gone); flagged: hpet',
    );
    expect(compatLine({ ...base, check: 'forced', verdict: null })).toBe(
      'compatibility: not checked (--force)',
    );
    expect(compatLine({ ...base, check: 'none', verdict: null })).toMatch(/not checked/);
  });
});
