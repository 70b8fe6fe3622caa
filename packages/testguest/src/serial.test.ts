import { describe, expect, it } from 'vitest';
import {
  formatCounterLine,
  parseCounterLine,
  parseSerialLine,
  SERIAL_FORMAT,
  SerialLineSplitter,
} from './serial.js';

describe('parseCounterLine', () => {
  it('parses C= lines with or without CR LF', () => {
    expect(parseCounterLine('C=0000002A')).toBe(42);
    expect(parseCounterLine('C=FFFFFFFF\r\n')).toBe(0xffffffff);
  });

  it('rejects anything else', () => {
    for (const line of [
      'C=2A',
      'C=0000002a',
      'C=0000002A ',
      'F=0000002A',
      'E=C',
      '',
      'C=00000002AB',
    ]) {
      expect(parseCounterLine(line)).toBeUndefined();
    }
  });

  it('round-trips with formatCounterLine', () => {
    for (const n of [0, 1, 0xabc, 0xffffffff])
      expect(parseCounterLine(formatCounterLine(n))).toBe(n);
    expect(() => formatCounterLine(-1)).toThrowError(RangeError);
  });
});

describe('parseSerialLine', () => {
  it('parses every kind of line', () => {
    expect(parseSerialLine('G=00000001')).toEqual({ kind: 'hello', version: 1 });
    expect(parseSerialLine('F=07EE0000')).toEqual({ kind: 'filled', bytes: 0x07ee0000 });
    expect(parseSerialLine('C=00000003')).toEqual({ kind: 'counter', value: 3 });
    expect(parseSerialLine('D=00000080')).toEqual({ kind: 'diskError', status: 0x80 });
    expect(parseSerialLine('E=x')).toEqual({ kind: 'echo', char: 'x' });
    expect(parseSerialLine('E=\r')).toEqual({ kind: 'echo', char: '\r' });
    expect(parseSerialLine('E=\n\r\n')).toEqual({ kind: 'echo', char: '\n' });
  });

  it('ignores noise', () => {
    expect(parseSerialLine('SeaBIOS (version 1.16.2)')).toBeUndefined();
    expect(parseSerialLine('E=')).toBeUndefined();
    expect(parseSerialLine('X=00000001')).toBeUndefined();
  });

  it('describes the format as data', () => {
    expect(SERIAL_FORMAT.lineEnd).toBe('\r\n');
    expect(SERIAL_FORMAT.counterLine.test('C=00000001')).toBe(true);
  });
});

describe('SerialLineSplitter', () => {
  it('splits on CR LF across chunk boundaries', () => {
    const s = new SerialLineSplitter();
    expect(s.push('G=000')).toEqual([]);
    expect(s.push('00001\r')).toEqual([]);
    expect(s.push(Buffer.from('\nC=00000001\r\nC=0000'))).toEqual(['G=00000001', 'C=00000001']);
    expect(s.rest).toBe('C=0000');
  });

  it('keeps an echoed CR or LF inside its line', () => {
    const s = new SerialLineSplitter();
    expect(s.push('E=\r\r\nE=\n\r\nE=a\r\n')).toEqual(['E=\r', 'E=\n', 'E=a']);
  });

  it('decodes bytes as Latin-1, one byte per character', () => {
    const s = new SerialLineSplitter();
    expect(s.push(Uint8Array.from([0x45, 0x3d, 0xe9, 0x0d, 0x0a]))).toEqual(['E=\u00e9']);
  });
});
