import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { escapeValue, formatKeyval, formatScalar, formatSize, parseKeyval } from './keyval.js';

describe('keyval escaping', () => {
  it('doubles commas and nothing else', () => {
    expect(escapeValue('a,b')).toBe('a,,b');
    expect(escapeValue(',,')).toBe(',,,,');
    expect(escapeValue('x=y')).toBe('x=y');
    expect(escapeValue('')).toBe('');
  });

  it('formats pairs after an implied value, booleans as on/off', () => {
    expect(
      formatKeyval(
        [
          ['path', '/a,b=c'],
          ['server', true],
          ['wait', false],
          ['skipped', undefined],
          ['size', 65536],
        ],
        'socket',
      ),
    ).toBe('socket,path=/a,,b=c,server=on,wait=off,size=65536');
    expect(formatKeyval([], 'null')).toBe('null');
  });

  it('refuses keys it cannot write and numbers that are not finite', () => {
    expect(() => formatKeyval([['a,b', 1]])).toThrow(RangeError);
    expect(() => formatKeyval([['a=b', 1]])).toThrow(RangeError);
    expect(() => formatKeyval([['', 1]])).toThrow(RangeError);
    expect(() => formatScalar(Number.NaN)).toThrow(RangeError);
    expect(formatScalar(1e21)).toBe('1000000000000000000000');
  });

  it('parses what it formats, for any value', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        const text = formatKeyval(
          [
            ['path', a],
            ['name', b],
          ],
          'file',
        );
        expect(parseKeyval(text)).toEqual([
          ['', 'file'],
          ['path', a],
          ['name', b],
        ]);
      }),
    );
  });

  it('parses the tricky cases QEMU documents', () => {
    expect(parseKeyval('file,id=c0,path=/tmp/d,,x=y/f,,=,,g.log')).toEqual([
      ['', 'file'],
      ['id', 'c0'],
      ['path', '/tmp/d,x=y/f,=,g.log'],
    ]);
  });
});

describe('formatSize', () => {
  it('uses the largest exact suffix', () => {
    expect(formatSize(2 ** 40)).toBe('1T');
    expect(formatSize(3 * 2 ** 30)).toBe('3G');
    expect(formatSize(1536 * 2 ** 20)).toBe('1536M');
    expect(formatSize(4096)).toBe('4K');
    expect(formatSize(4097)).toBe('4097B');
    expect(formatSize(512)).toBe('512B');
  });
});
