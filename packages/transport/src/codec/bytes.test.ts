// Runs in Node and in Chromium (vitest project `browser`): no Node import here.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytes, latin1, nodeBytes, webBytes } from './bytes.js';

const hasBuffer = typeof (globalThis as { Buffer?: unknown }).Buffer === 'function';
const u8 = (...values: number[]) => new Uint8Array(values);

describe('codec byte helpers', () => {
  it('uses Buffer where the runtime has one, TextDecoder elsewhere', () => {
    expect(nodeBytes !== undefined).toBe(hasBuffer);
    expect(bytes).toBe(hasBuffer ? nodeBytes : webBytes);
  });

  it('web: text maps invalid UTF-8 to U+FFFD and isUtf8 says exactly when', () => {
    expect(webBytes.text(u8(0x61, 0xc3, 0xa9, 0x62), 0, 4)).toBe('aéb');
    expect(webBytes.text(u8(0x61, 0xc3, 0xa9, 0x62), 1, 3)).toBe('é');
    expect(webBytes.text(u8(0x61, 0xff, 0x62), 0, 3)).toBe('a\uFFFDb');
    expect(webBytes.isUtf8(u8(0x61, 0xff))).toBe(false);
    expect(webBytes.isUtf8(u8(0xef, 0xbf, 0xbd))).toBe(true); // a real U+FFFD is valid
    expect(webBytes.isUtf8(u8(0xed, 0xa0, 0x80))).toBe(false); // a lone surrogate
  });

  it('web: copy owns its bytes; concat keeps order', () => {
    const source = u8(1, 2, 3);
    const copy = webBytes.copy(source.subarray(1));
    source[1] = 9;
    expect([...copy]).toEqual([2, 3]);
    expect([...webBytes.concat([u8(1), u8(), u8(2, 3)], 3)]).toEqual([1, 2, 3]);
    expect([...webBytes.encode('é\n')]).toEqual([0xc3, 0xa9, 0x0a]);
    expect(latin1(u8(0x6e, 0x75, 0x6c, 0x6c), 0, 4)).toBe('null');
  });

  it.skipIf(!hasBuffer)(
    'node and web agree on every operation (property; needs Buffer, so Node only)',
    () => {
      const node = nodeBytes;
      if (node === undefined) throw new TypeError('nodeBytes missing where Buffer exists');
      fc.assert(
        fc.property(
          fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 5 }),
          fc.nat(),
          fc.nat(),
          (parts, a, b) => {
            const total = parts.reduce((n, p) => n + p.length, 0);
            const web = webBytes.concat(parts, total);
            expect([...node.concat(parts, total)]).toEqual([...web]);
            const start = total === 0 ? 0 : a % total;
            const end = start + (total === 0 ? 0 : b % (total - start + 1));
            expect(webBytes.text(web, start, end)).toBe(node.text(node.view(web), start, end));
            expect(webBytes.isUtf8(web)).toBe(node.isUtf8(web));
            expect([...node.copy(web)]).toEqual([...webBytes.copy(web)]);
          },
        ),
      );
    },
  );
});
