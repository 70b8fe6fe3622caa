import { describe, expect, it } from 'vitest';
import { lineReader, toWireError } from './protocol.js';

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
