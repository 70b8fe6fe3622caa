/**
 * A deliberately tiny x86 assembler for 16-bit real-mode code (with the 0x66/0x67 prefixes
 * for 32-bit operands and addresses). It knows only the instruction forms the test guest
 * uses; each form is encoded by hand from the Intel SDM opcode tables.
 *
 * Every instruction and data directive takes a comment, so the program that uses it reads
 * like an annotated assembly listing, and `listing()` prints one (in ndisasm's spelling, so
 * it can be diffed against `ndisasm -b 16 -o 0x7c00` during development).
 *
 * Labels are strings. Forward references are recorded as fixups and patched by `assemble()`.
 * Jumps are never resized: `jmp`/`jcc`/`loop` are short (rel8) and fail loudly if the target
 * is out of range; `jmpNear`/`jccNear`/`call` are rel16.
 */
import { AssemblerError } from '../errors.js';

export type Reg8 = 'al' | 'cl' | 'dl' | 'bl' | 'ah' | 'ch' | 'dh' | 'bh';
export type Reg16 = 'ax' | 'cx' | 'dx' | 'bx' | 'sp' | 'bp' | 'si' | 'di';
export type Reg32 = 'eax' | 'ecx' | 'edx' | 'ebx' | 'esp' | 'ebp' | 'esi' | 'edi';
export type Reg = Reg8 | Reg16 | Reg32;
export type SegReg = 'es' | 'cs' | 'ss' | 'ds' | 'fs' | 'gs';
/** Condition codes, spelled the way ndisasm prints them (`jz`, `jc`, `jna`, …). */
export type Cond =
  | 'o'
  | 'no'
  | 'c'
  | 'nc'
  | 'z'
  | 'nz'
  | 'na'
  | 'a'
  | 's'
  | 'ns'
  | 'pe'
  | 'po'
  | 'l'
  | 'nl'
  | 'ng'
  | 'g';
/** A memory operand `[disp16]`: an absolute address, or a label (+ optional addend). */
export type Address = number | string | { readonly label: string; readonly add: number };
/** Group-1 arithmetic operations, numbered as their ModRM `/digit`. */
export type AluOp = 'add' | 'or' | 'adc' | 'sbb' | 'and' | 'sub' | 'xor' | 'cmp';
export type ShiftOp = 'rol' | 'ror' | 'shl' | 'shr' | 'sar';
export type Size = 8 | 16 | 32;

const REG8: readonly Reg8[] = ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh'];
const REG16: readonly Reg16[] = ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di'];
const REG32: readonly Reg32[] = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'];
const SEG: readonly SegReg[] = ['es', 'cs', 'ss', 'ds', 'fs', 'gs'];
const COND: readonly Cond[] = [
  'o',
  'no',
  'c',
  'nc',
  'z',
  'nz',
  'na',
  'a',
  's',
  'ns',
  'pe',
  'po',
  'l',
  'nl',
  'ng',
  'g',
];
const ALU: readonly AluOp[] = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
const SHIFT: Readonly<Record<ShiftOp, number>> = { rol: 0, ror: 1, shl: 4, shr: 5, sar: 7 };

const OPERAND_SIZE = 0x66;
const ADDRESS_SIZE = 0x67;

type FixupKind = 'rel8' | 'rel16' | 'abs16' | 'abs32';

interface Fixup {
  readonly kind: FixupKind;
  /** Offset of the field to patch. */
  readonly at: number;
  /** Offset just past the instruction (the base of a relative displacement). */
  readonly end: number;
  readonly label: string;
  readonly add: number;
}

/** Resolves a label to its absolute address (origin + offset). */
export type Resolve = (label: string) => number;

/** One line of the listing: an instruction or a data directive. */
export interface ListingLine {
  readonly offset: number;
  readonly address: number;
  readonly bytes: Uint8Array;
  /** Intel syntax, spelled like ndisasm; `undefined` for data. */
  readonly instruction: string | undefined;
  readonly comment: string;
  /** Labels defined at this offset. */
  readonly labels: readonly string[];
}

interface Item {
  readonly offset: number;
  readonly length: number;
  readonly text: ((resolve: Resolve) => string) | undefined;
  readonly comment: string;
}

export function regSize(reg: Reg): Size {
  if ((REG8 as readonly string[]).includes(reg)) return 8;
  if ((REG16 as readonly string[]).includes(reg)) return 16;
  return 32;
}

function regNum(reg: Reg): number {
  const size = regSize(reg);
  const table: readonly string[] = size === 8 ? REG8 : size === 16 ? REG16 : REG32;
  return table.indexOf(reg);
}

function modrm(mod: number, reg: number, rm: number): number {
  return ((mod & 3) << 6) | ((reg & 7) << 3) | (rm & 7);
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function le(value: number, bytes: 1 | 2 | 4): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes; i++) out.push(Math.floor(value / 2 ** (8 * i)) & 0xff);
  return out;
}

function checkImm(value: number, size: Size, what: string): void {
  const max = 2 ** size;
  if (!Number.isInteger(value) || value < -(max / 2) || value >= max) {
    throw new AssemblerError(`${what}: ${value} does not fit in ${size} bits`);
  }
}

function fitsInt8(value: number, size: Size): boolean {
  // Sign-extend the immediate as the CPU would and compare within the operand size.
  const mask = 2 ** size;
  const norm = ((value % mask) + mask) % mask;
  const signed = norm >= mask / 2 ? norm - mask : norm;
  return signed >= -128 && signed <= 127;
}

function sizeWord(size: Size): string {
  return size === 8 ? 'byte' : size === 16 ? 'word' : 'dword';
}

export class Assembler {
  readonly origin: number;
  private readonly out: number[] = [];
  private readonly fixups: Fixup[] = [];
  private readonly labels = new Map<string, number>();
  private readonly items: Item[] = [];

  constructor(origin: number) {
    this.origin = origin;
  }

  /** Current offset from the start of the output. */
  get offset(): number {
    return this.out.length;
  }

  /** Defines `name` at the current offset. */
  label(name: string): this {
    if (this.labels.has(name)) throw new AssemblerError(`label '${name}' defined twice`);
    this.labels.set(name, this.out.length);
    return this;
  }

  /** Address of an already defined label (for assertions in programs and tests). */
  addressOf(name: string): number {
    const at = this.labels.get(name);
    if (at === undefined) throw new AssemblerError(`undefined label '${name}'`);
    return this.origin + at;
  }

  // ---------------------------------------------------------------------------------------
  // Plumbing

  private emit(
    bytes: readonly number[],
    text: ((resolve: Resolve) => string) | undefined,
    comment: string,
    fixups: readonly Omit<Fixup, 'end'>[] = [],
  ): this {
    const offset = this.out.length;
    for (const b of bytes) this.out.push(b & 0xff);
    const end = this.out.length;
    for (const f of fixups) this.fixups.push({ ...f, at: offset + f.at, end });
    this.items.push({ offset, length: bytes.length, text, comment });
    return this;
  }

  /**
   * Encodes a `[disp16]` operand: ModRM mod=00 rm=110 plus a 16-bit displacement.
   * Returns the bytes and, for a label, the fixup (relative to `fieldAt` in the instruction).
   */
  private mem(
    addr: Address,
    reg: number,
    fieldAt: number,
  ): { bytes: number[]; fixups: Omit<Fixup, 'end'>[]; text: (r: Resolve) => string } {
    if (typeof addr === 'number') {
      checkImm(addr, 16, 'address');
      return { bytes: [modrm(0, reg, 6), ...le(addr, 2)], fixups: [], text: () => hex(addr) };
    }
    const label = typeof addr === 'string' ? addr : addr.label;
    const add = typeof addr === 'string' ? 0 : addr.add;
    return {
      bytes: [modrm(0, reg, 6), 0, 0],
      fixups: [{ kind: 'abs16', at: fieldAt + 1, label, add }],
      text: (r) => hex(r(label) + add),
    };
  }

  private static prefix(size: Size): number[] {
    return size === 32 ? [OPERAND_SIZE] : [];
  }

  // ---------------------------------------------------------------------------------------
  // Instructions without operands

  /** `cli` (FA): clear the interrupt flag. */
  cli(comment: string): this {
    return this.emit([0xfa], () => 'cli', comment);
  }
  /** `sti` (FB): set the interrupt flag. */
  sti(comment: string): this {
    return this.emit([0xfb], () => 'sti', comment);
  }
  /** `cld` (FC): string operations count upwards. */
  cld(comment: string): this {
    return this.emit([0xfc], () => 'cld', comment);
  }
  /** `hlt` (F4): wait for the next interrupt. */
  hlt(comment: string): this {
    return this.emit([0xf4], () => 'hlt', comment);
  }
  /** `ret` (C3): near return. */
  ret(comment: string): this {
    return this.emit([0xc3], () => 'ret', comment);
  }
  /** `lodsb` (AC): AL = [DS:SI], SI += 1. */
  lodsb(comment: string): this {
    return this.emit([0xac], () => 'lodsb', comment);
  }
  /** `rep stosw` (F3 AB): store AX to ES:DI, CX times. */
  repStosw(comment: string): this {
    return this.emit([0xf3, 0xab], () => 'rep stosw', comment);
  }
  /** `a32 stosd` (67 66 AB): store EAX to ES:EDI (32-bit address), EDI += 4. */
  a32Stosd(comment: string): this {
    return this.emit([ADDRESS_SIZE, OPERAND_SIZE, 0xab], () => 'a32 stosd', comment);
  }

  /** `rep a32 stosd` (F3 67 66 AB): store EAX to ES:EDI, ECX times (32-bit address/count). */
  repA32Stosd(comment: string): this {
    return this.emit([0xf3, ADDRESS_SIZE, OPERAND_SIZE, 0xab], () => 'rep a32 stosd', comment);
  }

  // ---------------------------------------------------------------------------------------
  // Moves

  /** `mov reg, imm` (B0+r ib / B8+r iw / 66 B8+r id). */
  movImm(reg: Reg, imm: number, comment: string): this {
    const size = regSize(reg);
    checkImm(imm, size, `mov ${reg}`);
    const opcode = (size === 8 ? 0xb0 : 0xb8) + regNum(reg);
    const bytes = [...Assembler.prefix(size), opcode, ...le(imm, (size / 8) as 1 | 2 | 4)];
    const unsigned = imm < 0 ? imm + 2 ** size : imm;
    return this.emit(bytes, () => `mov ${reg},${hex(unsigned)}`, comment);
  }

  /** `mov reg, label` — loads the absolute address of a label into a 16-bit register. */
  movLabel(reg: Reg16, label: string, comment: string): this {
    return this.emit([0xb8 + regNum(reg), 0, 0], (r) => `mov ${reg},${hex(r(label))}`, comment, [
      { kind: 'abs16', at: 1, label, add: 0 },
    ]);
  }

  /** `mov dst, src` between general registers of the same size (88/89 /r, ModRM mod=11). */
  movReg(dst: Reg, src: Reg, comment: string): this {
    const size = regSize(dst);
    if (regSize(src) !== size) throw new AssemblerError(`mov ${dst},${src}: size mismatch`);
    const bytes = [
      ...Assembler.prefix(size),
      size === 8 ? 0x88 : 0x89,
      modrm(3, regNum(src), regNum(dst)),
    ];
    return this.emit(bytes, () => `mov ${dst},${src}`, comment);
  }

  /** `movzx r16/r32, r8` (0F B6 /r; 66-prefixed for a 32-bit destination). */
  movzx(dst: Reg16 | Reg32, src: Reg8, comment: string): this {
    const size = regSize(dst);
    return this.emit(
      [...Assembler.prefix(size), 0x0f, 0xb6, modrm(3, regNum(dst), regNum(src))],
      () => `movzx ${dst},${src}`,
      comment,
    );
  }

  /** `mov sreg, r16` (8E /r). */
  movToSeg(seg: SegReg, src: Reg16, comment: string): this {
    if (seg === 'cs') throw new AssemblerError('mov cs,r16 is not a valid instruction');
    return this.emit(
      [0x8e, modrm(3, SEG.indexOf(seg), regNum(src))],
      () => `mov ${seg},${src}`,
      comment,
    );
  }

  /** `mov reg, [addr]` (8A/8B /r with a disp16 operand). */
  movLoad(reg: Reg, addr: Address, comment: string): this {
    const size = regSize(reg);
    const pre = Assembler.prefix(size);
    const m = this.mem(addr, regNum(reg), pre.length + 1);
    return this.emit(
      [...pre, size === 8 ? 0x8a : 0x8b, ...m.bytes],
      (r) => `mov ${reg},[${m.text(r)}]`,
      comment,
      m.fixups,
    );
  }

  /** `mov [addr], reg` (88/89 /r with a disp16 operand). */
  movStore(addr: Address, reg: Reg, comment: string): this {
    const size = regSize(reg);
    const pre = Assembler.prefix(size);
    const m = this.mem(addr, regNum(reg), pre.length + 1);
    return this.emit(
      [...pre, size === 8 ? 0x88 : 0x89, ...m.bytes],
      (r) => `mov [${m.text(r)}],${reg}`,
      comment,
      m.fixups,
    );
  }

  /** `mov byte/word/dword [addr], imm` (C6 /0 ib, C7 /0 iw, 66 C7 /0 id). */
  movStoreImm(size: Size, addr: Address, imm: number, comment: string): this {
    checkImm(imm, size, `mov ${sizeWord(size)} [..]`);
    const pre = Assembler.prefix(size);
    const m = this.mem(addr, 0, pre.length + 1);
    const unsigned = imm < 0 ? imm + 2 ** size : imm;
    return this.emit(
      [...pre, size === 8 ? 0xc6 : 0xc7, ...m.bytes, ...le(imm, (size / 8) as 1 | 2 | 4)],
      (r) => `mov ${sizeWord(size)} [${m.text(r)}],${hex(unsigned)}`,
      comment,
      m.fixups,
    );
  }

  /** `mov eax, cr0` (0F 20 /r). */
  movFromCr0(dst: Reg32, comment: string): this {
    return this.emit([0x0f, 0x20, modrm(3, 0, regNum(dst))], () => `mov ${dst},cr0`, comment);
  }

  /** `mov cr0, eax` (0F 22 /r). */
  movToCr0(src: Reg32, comment: string): this {
    return this.emit([0x0f, 0x22, modrm(3, 0, regNum(src))], () => `mov cr0,${src}`, comment);
  }

  /** `lgdt [addr]` (0F 01 /2): load the GDT register from a 6-byte descriptor. */
  lgdt(addr: Address, comment: string): this {
    const m = this.mem(addr, 2, 2);
    return this.emit([0x0f, 0x01, ...m.bytes], (r) => `lgdt [${m.text(r)}]`, comment, m.fixups);
  }

  // ---------------------------------------------------------------------------------------
  // Arithmetic and logic

  /**
   * `op reg, imm`: 80 /n ib for 8-bit registers; 83 /n ib when the immediate fits a
   * sign-extended byte, else 81 /n iw/id, for 16/32-bit registers.
   */
  aluImm(op: AluOp, reg: Reg, imm: number, comment: string): this {
    const size = regSize(reg);
    checkImm(imm, size, `${op} ${reg}`);
    const n = ALU.indexOf(op);
    const rm = modrm(3, n, regNum(reg));
    if (size === 8) {
      const u = imm < 0 ? imm + 256 : imm;
      return this.emit([0x80, rm, u & 0xff], () => `${op} ${reg},${hex(u)}`, comment);
    }
    const pre = Assembler.prefix(size);
    if (fitsInt8(imm, size)) {
      const mask = 2 ** size;
      const norm = ((imm % mask) + mask) % mask;
      const s = norm >= mask / 2 ? norm - mask : norm;
      const text = `${op} ${reg},byte ${s < 0 ? `-${hex(-s)}` : `+${hex(s)}`}`;
      return this.emit([...pre, 0x83, rm, s & 0xff], () => text, comment);
    }
    const u = imm < 0 ? imm + 2 ** size : imm;
    const width = (size / 8) as 2 | 4;
    const text = `${op} ${reg},${hex(u)}`;
    return this.emit([...pre, 0x81, rm, ...le(u, width)], () => text, comment);
  }

  /**
   * `op size [addr], imm` (80/81/83 /n with a disp16 operand).
   */
  aluMemImm(op: AluOp, size: Size, addr: Address, imm: number, comment: string): this {
    checkImm(imm, size, `${op} ${sizeWord(size)} [..]`);
    const n = ALU.indexOf(op);
    const pre = Assembler.prefix(size);
    const m = this.mem(addr, n, pre.length + 1);
    if (size === 8) {
      const u = imm < 0 ? imm + 256 : imm;
      return this.emit(
        [0x80, ...m.bytes, u],
        (r) => `${op} byte [${m.text(r)}],${hex(u)}`,
        comment,
        m.fixups,
      );
    }
    if (fitsInt8(imm, size)) {
      const mask = 2 ** size;
      const norm = ((imm % mask) + mask) % mask;
      const s = norm >= mask / 2 ? norm - mask : norm;
      const imm8 = s < 0 ? `-${hex(-s)}` : `+${hex(s)}`;
      return this.emit(
        [...pre, 0x83, ...m.bytes, s & 0xff],
        (r) => `${op} ${sizeWord(size)} [${m.text(r)}],byte ${imm8}`,
        comment,
        m.fixups,
      );
    }
    const u = imm < 0 ? imm + 2 ** size : imm;
    return this.emit(
      [...pre, 0x81, ...m.bytes, ...le(u, (size / 8) as 2 | 4)],
      (r) => `${op} ${sizeWord(size)} [${m.text(r)}],${hex(u)}`,
      comment,
      m.fixups,
    );
  }

  /** `op dst, src` between registers (00/08/…/38 +1 for 16/32-bit, ModRM mod=11). */
  aluReg(op: AluOp, dst: Reg, src: Reg, comment: string): this {
    const size = regSize(dst);
    if (regSize(src) !== size) throw new AssemblerError(`${op} ${dst},${src}: size mismatch`);
    const opcode = ALU.indexOf(op) * 8 + (size === 8 ? 0 : 1);
    return this.emit(
      [...Assembler.prefix(size), opcode, modrm(3, regNum(src), regNum(dst))],
      () => `${op} ${dst},${src}`,
      comment,
    );
  }

  /** `op [addr], reg` (00/08/…/38 +1, with a disp16 operand). */
  aluStore(op: AluOp, addr: Address, src: Reg, comment: string): this {
    const size = regSize(src);
    const pre = Assembler.prefix(size);
    const m = this.mem(addr, regNum(src), pre.length + 1);
    const opcode = ALU.indexOf(op) * 8 + (size === 8 ? 0 : 1);
    return this.emit(
      [...pre, opcode, ...m.bytes],
      (r) => `${op} [${m.text(r)}],${src}`,
      comment,
      m.fixups,
    );
  }

  /** `test reg, imm` (A8 ib for AL, else F6/F7 /0). */
  testImm(reg: Reg, imm: number, comment: string): this {
    const size = regSize(reg);
    checkImm(imm, size, `test ${reg}`);
    const u = imm < 0 ? imm + 2 ** size : imm;
    const text = () => `test ${reg},${hex(u)}`;
    if (reg === 'al') return this.emit([0xa8, u], text, comment);
    const width = (size / 8) as 1 | 2 | 4;
    return this.emit(
      [
        ...Assembler.prefix(size),
        size === 8 ? 0xf6 : 0xf7,
        modrm(3, 0, regNum(reg)),
        ...le(u, width),
      ],
      text,
      comment,
    );
  }

  /** `test byte [addr], imm8` (F6 /0 ib). */
  testMem8(addr: Address, imm: number, comment: string): this {
    checkImm(imm, 8, 'test byte [..]');
    const m = this.mem(addr, 0, 1);
    const u = imm < 0 ? imm + 256 : imm;
    return this.emit(
      [0xf6, ...m.bytes, u],
      (r) => `test byte [${m.text(r)}],${hex(u)}`,
      comment,
      m.fixups,
    );
  }

  /** `test a, b` between registers (84/85 /r). */
  testReg(a: Reg, b: Reg, comment: string): this {
    const size = regSize(a);
    if (regSize(b) !== size) throw new AssemblerError(`test ${a},${b}: size mismatch`);
    return this.emit(
      [...Assembler.prefix(size), size === 8 ? 0x84 : 0x85, modrm(3, regNum(b), regNum(a))],
      () => `test ${a},${b}`,
      comment,
    );
  }

  /** `inc reg` (40+r, 16/32-bit only; FE /0 for 8-bit). */
  inc(reg: Reg, comment: string): this {
    const size = regSize(reg);
    const bytes =
      size === 8
        ? [0xfe, modrm(3, 0, regNum(reg))]
        : [...Assembler.prefix(size), 0x40 + regNum(reg)];
    return this.emit(bytes, () => `inc ${reg}`, comment);
  }

  /** `dec reg` (48+r, 16/32-bit only; FE /1 for 8-bit). */
  dec(reg: Reg, comment: string): this {
    const size = regSize(reg);
    const bytes =
      size === 8
        ? [0xfe, modrm(3, 1, regNum(reg))]
        : [...Assembler.prefix(size), 0x48 + regNum(reg)];
    return this.emit(bytes, () => `dec ${reg}`, comment);
  }

  /** `inc size [addr]` (FE /0, FF /0, 66 FF /0). */
  incMem(size: Size, addr: Address, comment: string): this {
    const pre = Assembler.prefix(size);
    const m = this.mem(addr, 0, pre.length + 1);
    return this.emit(
      [...pre, size === 8 ? 0xfe : 0xff, ...m.bytes],
      (r) => `inc ${sizeWord(size)} [${m.text(r)}]`,
      comment,
      m.fixups,
    );
  }

  /** `rol/ror/shl/shr/sar size [addr], 1` (D0/D1 /n): the bit shifted out lands in CF. */
  shiftMem1(op: ShiftOp, size: Size, addr: Address, comment: string): this {
    const pre = Assembler.prefix(size);
    const m = this.mem(addr, SHIFT[op], pre.length + 1);
    return this.emit(
      [...pre, size === 8 ? 0xd0 : 0xd1, ...m.bytes],
      (r) => `${op} ${sizeWord(size)} [${m.text(r)}],1`,
      comment,
      m.fixups,
    );
  }

  /** `rol/ror/shl/shr/sar reg, imm8` (C0/C1 /n ib). */
  shiftImm(op: ShiftOp, reg: Reg, count: number, comment: string): this {
    checkImm(count, 8, `${op} count`);
    const size = regSize(reg);
    return this.emit(
      [
        ...Assembler.prefix(size),
        size === 8 ? 0xc0 : 0xc1,
        modrm(3, SHIFT[op], regNum(reg)),
        count & 0xff,
      ],
      () => `${op} ${reg},byte ${hex(count)}`,
      comment,
    );
  }

  /** `imul dst, src, imm` (69 /r iw/id; 66-prefixed for 32-bit). */
  imulImm(dst: Reg16 | Reg32, src: Reg16 | Reg32, imm: number, comment: string): this {
    const size = regSize(dst);
    if (regSize(src) !== size) throw new AssemblerError(`imul ${dst},${src}: size mismatch`);
    checkImm(imm, size, `imul ${dst}`);
    const u = imm < 0 ? imm + 2 ** size : imm;
    return this.emit(
      [
        ...Assembler.prefix(size),
        0x69,
        modrm(3, regNum(dst), regNum(src)),
        ...le(u, (size / 8) as 2 | 4),
      ],
      () => `imul ${dst},${src},${size === 32 ? 'dword ' : 'word '}${hex(u)}`,
      comment,
    );
  }

  // ---------------------------------------------------------------------------------------
  // Stack, ports, interrupts

  /** `push reg` (50+r; 66-prefixed for 32-bit). */
  push(reg: Reg16 | Reg32, comment: string): this {
    return this.emit(
      [...Assembler.prefix(regSize(reg)), 0x50 + regNum(reg)],
      () => `push ${reg}`,
      comment,
    );
  }

  /** `pop reg` (58+r; 66-prefixed for 32-bit). */
  pop(reg: Reg16 | Reg32, comment: string): this {
    return this.emit(
      [...Assembler.prefix(regSize(reg)), 0x58 + regNum(reg)],
      () => `pop ${reg}`,
      comment,
    );
  }

  /** `in al, dx` (EC). */
  inAlDx(comment: string): this {
    return this.emit([0xec], () => 'in al,dx', comment);
  }

  /** `out dx, al` (EE). */
  outDxAl(comment: string): this {
    return this.emit([0xee], () => 'out dx,al', comment);
  }

  /** `in eax, dx` (66 ED). */
  inEaxDx(comment: string): this {
    return this.emit([OPERAND_SIZE, 0xed], () => 'in eax,dx', comment);
  }

  /** `out dx, eax` (66 EF). */
  outDxEax(comment: string): this {
    return this.emit([OPERAND_SIZE, 0xef], () => 'out dx,eax', comment);
  }

  /** `in al, imm8` (E4 ib). */
  inAlImm(port: number, comment: string): this {
    checkImm(port, 8, 'in port');
    return this.emit([0xe4, port], () => `in al,${hex(port)}`, comment);
  }

  /** `out imm8, al` (E6 ib). */
  outImmAl(port: number, comment: string): this {
    checkImm(port, 8, 'out port');
    return this.emit([0xe6, port], () => `out ${hex(port)},al`, comment);
  }

  /** `int imm8` (CD ib): software interrupt (a BIOS service). */
  int(vector: number, comment: string): this {
    checkImm(vector, 8, 'int vector');
    return this.emit([0xcd, vector], () => `int ${hex(vector)}`, comment);
  }

  // ---------------------------------------------------------------------------------------
  // Control flow

  /** `jmp short label` (EB rel8). */
  jmp(label: string, comment: string): this {
    return this.emit([0xeb, 0], (r) => `jmp short ${hex(r(label))}`, comment, [
      { kind: 'rel8', at: 1, label, add: 0 },
    ]);
  }

  /** `jmp near label` (E9 rel16). */
  jmpNear(label: string, comment: string): this {
    return this.emit([0xe9, 0, 0], (r) => `jmp ${hex(r(label))}`, comment, [
      { kind: 'rel16', at: 1, label, add: 0 },
    ]);
  }

  /** `jmp seg:label` (EA iw iw): far jump, reloads CS. */
  jmpFar(segment: number, label: string, comment: string): this {
    checkImm(segment, 16, 'jmp far segment');
    return this.emit(
      [0xea, 0, 0, ...le(segment, 2)],
      (r) => `jmp ${hex(segment)}:${hex(r(label) - segment * 16)}`,
      comment,
      [{ kind: 'abs16', at: 1, label, add: -segment * 16 }],
    );
  }

  /** `jcc short label` (70+cc rel8). */
  jcc(cond: Cond, label: string, comment: string): this {
    return this.emit([0x70 + COND.indexOf(cond), 0], (r) => `j${cond} ${hex(r(label))}`, comment, [
      { kind: 'rel8', at: 1, label, add: 0 },
    ]);
  }

  /** `jcc near label` (0F 80+cc rel16). */
  jccNear(cond: Cond, label: string, comment: string): this {
    return this.emit(
      [0x0f, 0x80 + COND.indexOf(cond), 0, 0],
      (r) => `j${cond} near ${hex(r(label))}`,
      comment,
      [{ kind: 'rel16', at: 2, label, add: 0 }],
    );
  }

  /** `loop label` (E2 rel8): CX -= 1, jump if CX != 0. */
  loop(label: string, comment: string): this {
    return this.emit([0xe2, 0], (r) => `loop ${hex(r(label))}`, comment, [
      { kind: 'rel8', at: 1, label, add: 0 },
    ]);
  }

  /** `call label` (E8 rel16). */
  call(label: string, comment: string): this {
    return this.emit([0xe8, 0, 0], (r) => `call ${hex(r(label))}`, comment, [
      { kind: 'rel16', at: 1, label, add: 0 },
    ]);
  }

  // ---------------------------------------------------------------------------------------
  // Data

  /** Raw bytes. */
  db(bytes: readonly number[] | Uint8Array, comment: string): this {
    for (const b of bytes) checkImm(b, 8, 'db');
    return this.emit([...bytes], undefined, comment);
  }

  /** Little-endian 16-bit words. */
  dw(words: readonly number[], comment: string): this {
    for (const w of words) checkImm(w, 16, 'dw');
    return this.emit(
      words.flatMap((w) => le(w, 2)),
      undefined,
      comment,
    );
  }

  /** Little-endian 32-bit doublewords. */
  dd(dwords: readonly number[], comment: string): this {
    for (const d of dwords) checkImm(d, 32, 'dd');
    return this.emit(
      dwords.flatMap((d) => le(d, 4)),
      undefined,
      comment,
    );
  }

  /** A 16- or 32-bit word holding the absolute address of a label. */
  addressWord(size: 16 | 32, label: string, comment: string): this {
    return this.emit(size === 16 ? [0, 0] : [0, 0, 0, 0], undefined, comment, [
      { kind: size === 16 ? 'abs16' : 'abs32', at: 0, label, add: 0 },
    ]);
  }

  /** Latin-1 text followed by a NUL byte. */
  asciz(text: string, comment: string): this {
    const bytes = [...text].map((c) => {
      const code = c.charCodeAt(0);
      if (code > 0xff) throw new AssemblerError(`asciz: ${JSON.stringify(c)} is not Latin-1`);
      return code;
    });
    return this.emit([...bytes, 0], undefined, comment);
  }

  /** Pads with `fill` up to `offset`; fails if the output is already past it. */
  padTo(offset: number, fill: number, comment: string): this {
    if (this.out.length > offset) {
      throw new AssemblerError(
        `code and data end at offset ${hex(this.out.length)}, past ${hex(offset)} (${comment})`,
      );
    }
    return this.emit(new Array<number>(offset - this.out.length).fill(fill), undefined, comment);
  }

  // ---------------------------------------------------------------------------------------
  // Output

  private resolver(): Resolve {
    return (label) => {
      const at = this.labels.get(label);
      if (at === undefined) throw new AssemblerError(`undefined label '${label}'`);
      return this.origin + at;
    };
  }

  /** Resolves every fixup and returns the bytes. */
  assemble(): Uint8Array {
    const resolve = this.resolver();
    const bytes = Uint8Array.from(this.out);
    for (const f of this.fixups) {
      const target = resolve(f.label) + f.add;
      let value: number;
      let width: 1 | 2 | 4;
      switch (f.kind) {
        case 'rel8':
          value = target - (this.origin + f.end);
          if (value < -128 || value > 127) {
            throw new AssemblerError(
              `short jump to '${f.label}' at offset ${hex(f.at - 1)} is out of range (${value})`,
            );
          }
          width = 1;
          break;
        case 'rel16':
          value = target - (this.origin + f.end);
          width = 2;
          break;
        case 'abs16':
          value = target;
          checkImm(value, 16, `address of '${f.label}'`);
          width = 2;
          break;
        case 'abs32':
          value = target;
          width = 4;
          break;
      }
      const le32 = le(value < 0 ? value + 2 ** (8 * width) : value, width);
      bytes.set(le32, f.at);
    }
    return bytes;
  }

  /** The annotated listing, one line per instruction or directive. */
  listing(): ListingLine[] {
    const bytes = this.assemble();
    const resolve = this.resolver();
    const labelsAt = new Map<number, string[]>();
    for (const [name, at] of this.labels) labelsAt.set(at, [...(labelsAt.get(at) ?? []), name]);
    return this.items.map((item) => ({
      offset: item.offset,
      address: this.origin + item.offset,
      bytes: bytes.slice(item.offset, item.offset + item.length),
      instruction: item.text?.(resolve),
      comment: item.comment,
      labels: labelsAt.get(item.offset) ?? [],
    }));
  }
}

/** Formats a listing as text: address, bytes, instruction, comment. */
export function formatListing(lines: readonly ListingLine[]): string {
  const out: string[] = [];
  for (const line of lines) {
    for (const label of line.labels) out.push(`${label}:`);
    const addr = line.address.toString(16).toUpperCase().padStart(8, '0');
    const shown = [...line.bytes.slice(0, 8)]
      .map((b) => b.toString(16).toUpperCase().padStart(2, '0'))
      .join('');
    const more = line.bytes.length > 8 ? `… (${line.bytes.length} bytes)` : '';
    const text = line.instruction ?? 'data';
    out.push(`${addr}  ${(shown + more).padEnd(18)}${text.padEnd(28)}; ${line.comment}`);
  }
  return out.join('\n');
}
