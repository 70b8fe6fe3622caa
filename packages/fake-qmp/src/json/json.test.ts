import { describe, expect, it } from 'vitest';
import { QemuJsonReader } from './reader.js';
import { QemuFloat, type QemuValue } from './values.js';
import { formatDouble, qdictOrder, quoteString, writeQemuJson } from './writer.js';

function read(text: string): (QemuValue | { error: string })[] {
  const out: (QemuValue | { error: string })[] = [];
  new QemuJsonReader({ value: (v) => out.push(v), error: (e) => out.push({ error: e }) }).feed(
    text,
  );
  return out;
}

describe('writer: QEMU 7.2 byte format', () => {
  it('orders keys like QEMU QDicts (measured on QEMU 7.2)', () => {
    expect(qdictOrder(['major', 'minor', 'micro'])).toEqual(['micro', 'minor', 'major']);
    expect(qdictOrder(['running', 'singlestep', 'status'])).toEqual([
      'status',
      'singlestep',
      'running',
    ]);
    expect(qdictOrder(['return', 'id'])).toEqual(['return', 'id']);
    expect(qdictOrder(['error', 'id'])).toEqual(['id', 'error']);
    expect(qdictOrder(['event', 'timestamp', 'data'])).toEqual(['timestamp', 'event', 'data']);
  });

  it('writes separators, escapes and numbers like QEMU', () => {
    expect(writeQemuJson({ return: {}, id: 1 })).toBe('{"return": {}, "id": 1}');
    expect(writeQemuJson([1, [], {}, null, true])).toBe('[1, [], {}, null, true]');
    expect(quoteString('é€😀/\t\u007f\u0000"\\')).toBe(
      '"\\u00E9\\u20AC\\uD83D\\uDE00/\\t\\u007F\\u0000\\"\\\\"',
    );
    expect(formatDouble(0.1)).toBe('0.10000000000000001');
    expect(formatDouble(2.5)).toBe('2.5');
    expect(formatDouble(100)).toBe('100');
    expect(formatDouble(-0)).toBe('-0');
    expect(formatDouble(1e21)).toBe('1e+21');
    expect(formatDouble(1.5e-7)).toBe('1.4999999999999999e-07');
    expect(formatDouble(Number.POSITIVE_INFINITY)).toBe('inf');
    expect(writeQemuJson(new QemuFloat(5))).toBe('5');
    expect(writeQemuJson(12345678901234567890n)).toBe('12345678901234567890');
    expect(writeQemuJson({ a: undefined, b: 1 })).toBe('{"b": 1}');
  });
});

describe('reader: what QEMU 7.2 accepts and its error texts', () => {
  it('reads values across lines and chunks, several per line, single quotes', () => {
    expect(read("{\"a\":\n1}{'b':'x\\'y'}\n")).toEqual([{ a: 1 }, { b: "x'y" }]);
    const out: QemuValue[] = [];
    const r = new QemuJsonReader({ value: (v) => out.push(v), error: () => {} });
    r.feed('{"execute": "qu');
    expect(r.pending).toBe(true);
    r.feed('ery-status"}\n');
    expect(out).toEqual([{ execute: 'query-status' }]);
    expect(r.pending).toBe(false);
  });

  it('keeps integers exact up to 64 bits and marks doubles', () => {
    const [v] = read(
      '{"a":12345678901234567890,"b":-9223372036854775808,"c":1.0,"d":1e400,"e":-0}\n',
    );
    expect(v).toEqual({
      a: 12345678901234567890n,
      b: -9223372036854775808n,
      c: new QemuFloat(1),
      d: new QemuFloat(Number.POSITIVE_INFINITY),
      e: 0,
    });
  });

  it.each([
    ['garbage\n', "JSON parse error, invalid keyword 'garbage'"],
    ['}\n', 'JSON parse error, expecting value'],
    ['{"a":1,}\n', 'JSON parse error, expecting value'],
    ['{"a" 1}\n', 'JSON parse error, missing : in object pair'],
    ['{1:2}\n', 'JSON parse error, key is not a string in object'],
    ['[1 2]\n', 'JSON parse error, expected separator in list'],
    ['{"a":1 "b":2}\n', 'JSON parse error, expected separator in dict'],
    ['{"a":1,"a":2}\n', 'JSON parse error, duplicate key'],
    ['{"a":"\\ud800"}\n', 'JSON parse error, \\ud800 is not a valid Unicode character'],
    ['{"a":"\\uffff"}\n', 'JSON parse error, \\uffff is not a valid Unicode character'],
    ['{"a":"\\q"}\n', 'JSON parse error, invalid escape sequence in string'],
    ['01\n', "JSON parse error, stray '01'"],
    ['@\n', "JSON parse error, stray '@'"],
  ])('%j → %s', (input, desc) => {
    expect(read(input)[0]).toEqual({ error: desc });
  });

  it('recovers at the next structural character after a stray byte', () => {
    expect(read('€ junk {"a":1}\n')).toEqual([
      { error: "JSON parse error, stray '\uFFFD'" },
      { a: 1 },
    ]);
  });

  it('refuses nesting deeper than QEMU does', () => {
    expect(read(`${'['.repeat(1025)}\n`)).toEqual([{ error: 'JSON nesting depth limit exceeded' }]);
  });
});
