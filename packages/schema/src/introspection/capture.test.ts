/**
 * `captureFromBinary`'s failures, with Node standing in for QEMU (`node -e <script> -- <QEMU's
 * arguments>`): each way a capture can fail rejects with a `SchemaCaptureError` whose fields
 * say where and why. The real capture is `capture.qemu.test.ts`.
 */
import { describe, expect, it } from 'vitest';
import { isSchemaCaptureError, SchemaCaptureError } from '../errors.js';
import { captureFromBinary } from './capture.js';

/** A "QEMU" that runs `body` (Node, with `send(obj)` and `onCommand(fn)` defined). */
function fakeQemu(body: string): { args: string[] } {
  const prelude = `
    const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
    const onCommand = (fn) => {
      let buf = '';
      process.stdin.setEncoding('utf8').on('data', (c) => {
        buf += c;
        for (let i; (i = buf.indexOf('\\n')) >= 0; ) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          fn(JSON.parse(line));
        }
      });
    };
  `;
  return { args: ['-e', prelude + body, '--'] };
}

const GREETING = `send({ QMP: { version: {}, capabilities: [] } });`;

async function captureError(body: string): Promise<SchemaCaptureError> {
  const error = await captureFromBinary(process.execPath, fakeQemu(body)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SchemaCaptureError);
  expect(isSchemaCaptureError(error)).toBe(true);
  return error as SchemaCaptureError;
}

describe('captureFromBinary rejects with SchemaCaptureError', () => {
  it('when the binary cannot be started (stage spawn, the spawn error as cause)', async () => {
    const error = await captureFromBinary('qemu-system-none-such').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SchemaCaptureError);
    expect(error).toMatchObject({
      name: 'SchemaCaptureError',
      binary: 'qemu-system-none-such',
      stage: 'spawn',
      command: undefined,
      cause: { code: 'ENOENT' },
    });
    expect((error as Error).message).toMatch(/cannot start qemu-system-none-such/);
  });

  it('when QEMU exits first (stage exited, exit code and stderr kept)', async () => {
    const error = await captureError(
      `process.stderr.write('no such machine\\n'); process.exit(3);`,
    );
    expect(error).toMatchObject({
      stage: 'exited',
      binary: process.execPath,
      exitCode: 3,
      signal: null,
      stderr: 'no such machine',
    });
  });

  it('when a command fails (stage command, the command and QMP error class)', async () => {
    const error = await captureError(`${GREETING}
      onCommand((c) => send({ error: { class: 'CommandNotFound', desc: 'nope' }, id: c.id }));`);
    expect(error).toMatchObject({
      stage: 'command',
      command: 'qmp_capabilities',
      errorClass: 'CommandNotFound',
    });
    expect(error.message).toBe('qmp_capabilities failed: CommandNotFound: nope');
  });

  it('when QEMU sends no greeting, or a line that is not JSON (stage protocol)', async () => {
    const noGreeting = await captureError(`send({ return: {} }); setInterval(() => {}, 1000);`);
    expect(noGreeting).toMatchObject({ stage: 'protocol', command: undefined });
    expect(noGreeting.message).toMatch(/expected a QMP greeting/);
    const garbage = await captureError(
      `process.stdout.write('not json\\n'); setInterval(() => {}, 1000);`,
    );
    expect(garbage).toMatchObject({ stage: 'protocol', cause: expect.any(SyntaxError) });
  });

  it('when QEMU closes QMP in the middle of a command (stage exited, the command named)', async () => {
    const error = await captureError(`${GREETING}
      onCommand((c) => { if (c.execute === 'qmp_capabilities') send({ return: {}, id: c.id });
        else { process.stdout.end(); process.exitCode = 0; process.stdin.destroy(); } });`);
    expect(error).toMatchObject({ stage: 'exited', command: 'query-version', exitCode: 0 });
  });
});
