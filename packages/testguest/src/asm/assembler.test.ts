import { describe, expect, it } from 'vitest';
import { isAssemblerError } from '../errors.js';
import { Assembler, formatListing } from './assembler.js';
import { KNOWN_ENCODINGS } from './known-encodings.test-support.js';
import { disassemble, ndisasmSkipReason } from './ndisasm.test-support.js';

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** Assembles one known case: the instruction at 0x7C00, label `far` at 0x7D00. */
function assembleCase(emit: (a: Assembler) => void): { code: Uint8Array; text: string } {
  const a = new Assembler(0x7c00);
  a.label('here');
  emit(a);
  const length = a.offset;
  a.padTo(0x100, 0, 'gap');
  a.label('far');
  const first = a.listing()[0];
  return { code: a.assemble().slice(0, length), text: first?.instruction ?? '' };
}

describe('Assembler encodings', () => {
  it.each(KNOWN_ENCODINGS.map((k) => [k.name, k] as const))('%s', (_name, known) => {
    const { code, text } = assembleCase(known.emit);
    expect(toHex(code)).toBe(known.hex);
    expect(text).toBe(known.text);
  });

  it('covers every instruction method of the assembler at least once', () => {
    const methods = Object.getOwnPropertyNames(Assembler.prototype).filter(
      (m) =>
        ![
          'constructor',
          'offset',
          'label',
          'addressOf',
          'emit',
          'mem',
          'db',
          'dw',
          'dd',
          'addressWord',
          'asciz',
          'padTo',
          'resolver',
          'assemble',
          'listing',
        ].includes(m),
    );
    const used = new Set<string>();
    for (const known of KNOWN_ENCODINGS) {
      const spy = new Proxy(new Assembler(0x7c00), {
        get(target, prop, receiver) {
          if (typeof prop === 'string') used.add(prop);
          return Reflect.get(target, prop, receiver);
        },
      });
      known.emit(spy);
    }
    expect(methods.filter((m) => !used.has(m))).toEqual([]);
  });
});

describe('Assembler labels and fixups', () => {
  it('patches forward references once the label is defined', () => {
    const a = new Assembler(0x7c00);
    a.jmp('end', 'skip');
    a.db([0x90, 0x90, 0x90], 'nops');
    a.label('end');
    a.call('end', 'call');
    expect(toHex(a.assemble())).toBe('eb03909090e8fdff');
  });

  it('writes absolute 16- and 32-bit label addresses', () => {
    const a = new Assembler(0x7c00);
    a.addressWord(16, 'x', 'abs16');
    a.addressWord(32, 'x', 'abs32');
    a.label('x');
    expect(toHex(a.assemble())).toBe('067c067c0000');
  });

  it('rejects a short jump that does not reach', () => {
    const a = new Assembler(0x7c00);
    a.jmp('far', 'too far');
    a.padTo(200, 0, 'gap');
    a.label('far');
    expect(() => a.assemble()).toThrowError(/out of range/);
  });

  it('rejects undefined and duplicate labels', () => {
    const a = new Assembler(0);
    a.call('nowhere', 'missing');
    expect(() => a.assemble()).toThrowError(/undefined label 'nowhere'/);
    a.label('x');
    try {
      a.label('x');
      expect.unreachable();
    } catch (error) {
      expect(isAssemblerError(error)).toBe(true);
    }
  });

  it('rejects immediates that do not fit and size mismatches', () => {
    const a = new Assembler(0);
    expect(() => a.movImm('al', 0x100, 'x')).toThrowError(/does not fit in 8 bits/);
    expect(() => a.movImm('ax', -0x8001, 'x')).toThrowError(/does not fit in 16 bits/);
    expect(() => a.movReg('ax', 'eax', 'x')).toThrowError(/size mismatch/);
    expect(() => a.movToSeg('cs', 'ax', 'x')).toThrowError(/not a valid instruction/);
  });

  it('refuses to pad backwards', () => {
    const a = new Assembler(0);
    a.db([1, 2, 3], 'three');
    expect(() => a.padTo(2, 0, 'config')).toThrowError(/past 0x2/);
  });

  it('formats a listing with labels, bytes, text and comments', () => {
    const a = new Assembler(0x7c00);
    a.label('start');
    a.cli('quiet');
    a.asciz('hi', 'greeting');
    expect(formatListing(a.listing())).toMatchInlineSnapshot(`
      "start:
      00007C00  FA                cli                         ; quiet
      00007C01  686900            data                        ; greeting"
    `);
  });
});

const noNdisasm = ndisasmSkipReason();

describe.skipIf(noNdisasm !== undefined)(
  `cross-check with ndisasm${noNdisasm ? ` (skipped: ${noNdisasm})` : ''}`,
  () => {
    it.each(KNOWN_ENCODINGS.map((k) => [k.name, k] as const))('%s', (_name, known) => {
      const { code } = assembleCase(known.emit);
      const rows = disassemble(code, 0x7c00);
      expect(rows).toHaveLength(1);
      expect(rows[0]?.hex.toLowerCase()).toBe(known.hex);
      expect(rows[0]?.text).toBe(known.text);
    });
  },
);
