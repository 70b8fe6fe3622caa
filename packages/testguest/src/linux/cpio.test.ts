import { describe, expect, it } from 'vitest';
import { writeCpio } from './cpio.js';

const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');

/** Reads back a newc archive (independently of the writer's code paths). */
function readNewc(bytes: Uint8Array) {
  const s = text(bytes);
  const out: {
    name: string;
    mode: number;
    size: number;
    rdev: [number, number];
    data: string;
    at: number;
  }[] = [];
  let at = 0;
  for (;;) {
    expect(at % 4).toBe(0);
    expect(s.slice(at, at + 6)).toBe('070701');
    const field = (i: number) => Number.parseInt(s.slice(at + 6 + i * 8, at + 14 + i * 8), 16);
    const mode = field(1);
    const size = field(6);
    const nameSize = field(11);
    const name = s.slice(at + 110, at + 110 + nameSize - 1);
    expect(s.charCodeAt(at + 110 + nameSize - 1)).toBe(0);
    let dataAt = at + 110 + nameSize;
    dataAt += (4 - (dataAt % 4)) % 4;
    out.push({
      name,
      mode,
      size,
      rdev: [field(9), field(10)],
      data: s.slice(dataAt, dataAt + size),
      at,
    });
    at = dataAt + size;
    at += (4 - (at % 4)) % 4;
    if (name === 'TRAILER!!!') break;
  }
  expect(at).toBe(bytes.length);
  return out;
}

describe('writeCpio', () => {
  it('writes newc headers, names, 4-byte padding, file data, links, device nodes and the trailer', () => {
    const archive = writeCpio([
      { type: 'dir', path: 'bin' },
      { type: 'file', path: 'bin/hello', data: new TextEncoder().encode('hi!\n'), mode: 0o755 },
      { type: 'file', path: 'odd', data: new TextEncoder().encode('12345') },
      { type: 'symlink', path: 'bin/sh', target: '/bin/busybox' },
      { type: 'char', path: 'console', major: 5, minor: 1 },
    ]);
    expect(readNewc(archive).map(({ at: _at, ...e }) => e)).toEqual([
      { name: 'bin', mode: 0o040755, size: 0, rdev: [0, 0], data: '' },
      { name: 'bin/hello', mode: 0o100755, size: 4, rdev: [0, 0], data: 'hi!\n' },
      { name: 'odd', mode: 0o100644, size: 5, rdev: [0, 0], data: '12345' },
      { name: 'bin/sh', mode: 0o120777, size: 12, rdev: [0, 0], data: '/bin/busybox' },
      { name: 'console', mode: 0o020600, size: 0, rdev: [5, 1], data: '' },
      { name: 'TRAILER!!!', mode: 0, size: 0, rdev: [0, 0], data: '' },
    ]);
  });

  it('the first header is exactly the format the kernel reads (inode 1, root-owned, mtime 0)', () => {
    const archive = writeCpio([{ type: 'dir', path: 'd' }]);
    expect(text(archive).slice(0, 110)).toBe(
      `070701${'00000001'}${'000041ed'}${'00000000'}${'00000000'}${'00000002'}${'00000000'}${'00000000'}${'00000000'}${'00000000'}${'00000000'}${'00000000'}${'00000002'}${'00000000'}`,
    );
  });

  it('is deterministic', () => {
    const entries = [{ type: 'file' as const, path: 'a', data: new Uint8Array([1, 2, 3]) }];
    expect(Buffer.from(writeCpio(entries)).equals(Buffer.from(writeCpio(entries)))).toBe(true);
  });

  it('refuses absolute, dotted, empty and duplicate paths', () => {
    for (const bad of ['/init', '../x', 'a//b', './a', ''])
      expect(() => writeCpio([{ type: 'dir', path: bad }])).toThrow(/not a relative archive path/);
    expect(() =>
      writeCpio([
        { type: 'dir', path: 'a' },
        { type: 'dir', path: 'a' },
      ]),
    ).toThrow(/duplicate archive path: a/);
  });
});
