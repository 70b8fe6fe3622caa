import { afterEach, describe, expect, it } from 'vitest';
import { fakeQmp } from '../__tests__/helpers.js';
import { QmpValidationError } from '../errors.js';
import { connect, type ValidationReport } from './client.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** A fake QEMU that answers query-status wrongly and emits a malformed event. */
async function liar() {
  const server = await fakeQmp((cmd, conn) => {
    if (cmd.execute === 'query-status') return { return: { status: 42, running: 'yes' } };
    if (cmd.execute === 'query-name') return { return: { name: 'vm', 'x-new-member': 1 } };
    if (cmd.execute === 'stop') {
      conn.event('RESET', { guest: 'no', reason: 'guest-reset' });
      return { return: {} };
    }
    return undefined;
  });
  cleanups.push(server.close);
  return server;
}

describe('validate', () => {
  it('strict: refuses commands the tables do not know', async () => {
    const server = await liar();
    const qmp = await connect(server.address, { validate: 'strict' });
    await expect(qmp.executeUnchecked('x-emit')).rejects.toMatchObject({
      name: 'QmpValidationError',
      problems: [{ kind: 'unknown-command' }],
    });
    await qmp.close();
  });

  it('strict: rejects bad arguments before sending, with JSON paths', async () => {
    const server = await liar();
    const qmp = await connect(server.address, { validate: 'strict' });
    const error = await qmp
      .executeUnchecked('human-monitor-command', { 'command-line': 1, extra: true })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpValidationError);
    expect((error as QmpValidationError).direction).toBe('arguments');
    expect((error as QmpValidationError).problems.map((p) => p.path).sort()).toEqual([
      '$.command-line',
      '$.extra',
    ]);
    expect(server.commands.map((c) => c.execute)).toEqual(['qmp_capabilities']);
    await qmp.close();
  });

  it('strict: rejects a reply that does not match, tolerates forward-compatible extras', async () => {
    const server = await liar();
    const reports: ValidationReport[] = [];
    const qmp = await connect(server.address, {
      validate: 'strict',
      onValidation: (r) => reports.push(r),
    });
    const error = await qmp.execute('query-status').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpValidationError);
    expect((error as QmpValidationError).direction).toBe('return');
    // a member a newer QEMU might add is fine in open mode
    await expect(qmp.execute('query-name')).resolves.toEqual({ name: 'vm', 'x-new-member': 1 });
    // events are reported, never rejected
    await qmp.execute('stop');
    expect(reports).toMatchObject([{ direction: 'event', name: 'RESET' }]);
    expect(reports[0]?.problems[0]?.path).toBe('$.guest');
    await qmp.close();
  });

  it('warn: sends anyway and reports arguments, replies and events', async () => {
    const server = await liar();
    const reports: ValidationReport[] = [];
    const qmp = await connect(server.address, {
      validate: 'warn',
      onValidation: (r) => reports.push(r),
    });
    await expect(qmp.execute('query-status')).resolves.toMatchObject({ status: 42 });
    await qmp.executeUnchecked('query-status', { bogus: 1 }).catch(() => undefined);
    await qmp.executeUnchecked('x-emit').catch(() => undefined);
    await qmp.execute('stop');
    expect(reports.map((r) => `${r.direction}:${r.name}`)).toEqual([
      'return:query-status',
      'arguments:query-status',
      'return:query-status',
      'arguments:x-emit', // unknown to the 7.2 tables; its reply is not checked
      'event:RESET',
    ]);
    await qmp.close();
  });

  it('off: no checks at all', async () => {
    const server = await liar();
    const qmp = await connect(server.address);
    await expect(qmp.execute('query-status')).resolves.toMatchObject({ status: 42 });
    await qmp.close();
  });
});
