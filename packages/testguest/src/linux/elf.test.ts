import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readElfDynamic } from './elf.js';

describe('readElfDynamic', () => {
  it("reads node's own interpreter and DT_NEEDED list (a dynamic x86-64/arm64 Linux executable)", (ctx) => {
    ctx.skip(process.platform !== 'linux', 'needs a Linux ELF executable');
    const info = readElfDynamic(readFileSync(process.execPath), 'node');
    expect(info.interpreter).toMatch(/^\/lib.*\/ld-linux[-\w.]*\.so\.\d$/);
    expect(info.needed).toContain('libc.so.6');
  });

  it('refuses what is not a 64-bit little-endian ELF file', () => {
    expect(() =>
      readElfDynamic(new TextEncoder().encode('#!/bin/sh\necho hi\n'.repeat(5)), 'x.sh'),
    ).toThrow(/x\.sh: not an ELF file/);
    const elf32 = new Uint8Array(64);
    elf32.set([0x7f, 0x45, 0x4c, 0x46, 1, 1]);
    expect(() => readElfDynamic(elf32, 'old')).toThrow(/old: not a 64-bit little-endian ELF file/);
  });

  it('a static executable has no interpreter and needs nothing', () => {
    const elf = new Uint8Array(64);
    elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
    // no program headers at all
    expect(readElfDynamic(elf, 'static')).toEqual({ interpreter: undefined, needed: [] });
  });
});
