import { describe, expect, it } from 'vitest';
import { RequestReader } from '../protocol/input.js';
import { QemuFloat, type QemuValue } from './values.js';
import { formatDouble, qdictOrder, quoteString, writeQemuJson } from './writer.js';

type Out = QemuValue | { error: string } | { overflow: number };

function reader(out: Out[], max = 1024 * 1024): RequestReader {
  return new RequestReader(
    {
      request: (v) => out.push(v),
      parseError: (e) => out.push({ error: e }),
      overflow: (limit) => out.push({ overflow: limit }),
    },
    max,
  );
}

/** The fake's whole input path: the codec's stream framing, then QEMU's parser. */
function read(text: string): Out[] {
  const out: Out[] = [];
  reader(out).push(Buffer.from(text, 'utf8'));
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
    const out: Out[] = [];
    const r = reader(out);
    r.push(Buffer.from('{"execute": "qu'));
    expect(r.bufferedBytes).toBe(15);
    r.push(Buffer.from('ery-status"}'));
    expect(out).toEqual([{ execute: 'query-status' }]);
    expect(r.bufferedBytes).toBe(0);
  });

  it('needs no newline: messages back to back, with or without blanks, split anywhere', () => {
    const text =
      '{"execute":"a"}{"execute":"b","id":[1,{"x":"}{"}]} \t{\'execute\':\'c\'}\r\n7 "s"[]';
    const want = [
      { execute: 'a' },
      { execute: 'b', id: [1, { x: '}{' }] },
      { execute: 'c' },
      7,
      's',
      [],
    ];
    expect(read(text)).toEqual(want);
    const bytes = Buffer.from(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const out: Out[] = [];
      const r = reader(out);
      r.push(bytes.subarray(0, cut));
      r.push(bytes.subarray(cut));
      expect(out, `cut at ${cut}`).toEqual(want);
    }
    const out: Out[] = [];
    const r = reader(out);
    for (const b of bytes) r.push(Buffer.from([b]));
    expect(out).toEqual(want);
  });

  it('a top-level number ends only at the next byte, like QEMU', () => {
    const out: Out[] = [];
    const r = reader(out);
    r.push(Buffer.from('12'));
    expect(out).toEqual([]);
    r.push(Buffer.from(' '));
    expect(out).toEqual([12]);
  });

  it('drops the client past the byte limit without holding the message', () => {
    const out: Out[] = [];
    const r = reader(out, 64);
    r.push(Buffer.from(`{"execute":"${'x'.repeat(40)}`));
    expect(out).toEqual([]);
    r.push(Buffer.from('y'.repeat(40)));
    expect(out).toEqual([{ overflow: 64 }]);
    expect(r.bufferedBytes).toBe(0);
    r.push(Buffer.from('"}{"execute":"z"}'));
    expect(out).toEqual([{ overflow: 64 }]);
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
    ['{"a":1e5e3}', 'JSON parse error, expected separator in dict'],
    ['{"a":"x\u0001"}', "JSON parse error, stray '\"x\u0001'"],
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
