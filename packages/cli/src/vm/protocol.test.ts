import { describe, expect, it } from 'vitest';
import { asWireError, isRequest, isStatusResult, lineReader, toWireError } from './protocol.js';

describe('lineReader', () => {
  it('splits chunks into JSON values across chunk boundaries and reports bad lines', () => {
    const values: unknown[] = [];
    const bad: string[] = [];
    const feed = lineReader(
      (v) => values.push(v),
      (p) => bad.push(p),
    );
    feed('{"id":1,"res');
    feed(Buffer.from('ult":2}\n\n{"a"'));
    feed(':[1]}\nnope\n');
    expect(values).toEqual([{ id: 1, result: 2 }, { a: [1] }]);
    expect(bad).toEqual(['not JSON: nope']);
  });

  it('drops a line longer than 1 MiB', () => {
    const bad: string[] = [];
    const feed = lineReader(
      () => {},
      (p) => bad.push(p),
    );
    feed('x'.repeat(1024 * 1024 + 1));
    expect(bad).toEqual(['line longer than 1 MiB']);
  });
});

describe('toWireError', () => {
  it('keeps the name, message and own fields; the cause as its message; extras win', () => {
    class Oops extends Error {
      override readonly name = 'Oops' as const;
      readonly snapshot = 's';
      readonly known = ['a', 'b'];
    }
    const wire = toWireError(new Oops('bad', { cause: new Error('deeper') }), { check: 1 });
    expect(wire).toEqual({
      name: 'Oops',
      message: 'bad',
      snapshot: 's',
      known: ['a', 'b'],
      cause: 'deeper',
      check: 1,
    });
    expect(toWireError('text')).toEqual({ name: 'Error', message: 'text' });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(toWireError(Object.assign(new Error('c'), { circular })).circular).toBe(
      '[object Object]',
    );
  });
});

describe('checks of what arrives on the wire', () => {
  it('a request needs a numeric id and a method name', () => {
    expect(isRequest({ id: 1, method: 'status' })).toBe(true);
    expect(isRequest({ id: 1, method: 'save', params: { name: 'a' } })).toBe(true);
    expect(isRequest({ id: '1', method: 'status' })).toBe(false);
    expect(isRequest({ id: 1 })).toBe(false);
    expect(isRequest([1, 'status'])).toBe(false);
  });

  it('an error of any shape stays an error, its fields kept', () => {
    expect(asWireError({ name: 'X', message: 'm', reason: 'r' })).toEqual({
      name: 'X',
      message: 'm',
      reason: 'r',
    });
    expect(asWireError({ code: 3 })).toEqual({ name: 'Error', message: '{"code":3}', code: 3 });
  });

  it('a ready line is a status with its fields', () => {
    const status = {
      dir: 'vm',
      pid: 2,
      startedAt: '2026-01-01T00:00:00.000Z',
      qemu: { pid: 3, version: '7.2.0', accel: 'tcg', runState: 'running' },
      strategy: 'external',
      busy: null,
      snapshots: 0,
    };
    expect(isStatusResult(status)).toBe(true);
    expect(isStatusResult({ ...status, qemu: { pid: 3 } })).toBe(false);
    expect(isStatusResult({ ...status, pid: '2' })).toBe(false);
  });
});
