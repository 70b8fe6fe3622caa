/**
 * Hand-checked encodings (Intel SDM Vol. 2 opcode tables) for every instruction form the
 * assembler offers, with the text ndisasm prints for them. Used by the unit tests, and by
 * the optional ndisasm cross-check when `ndisasm` is installed. Test support only: not
 * exported from the package.
 */
import type { Assembler } from './assembler.js';

export interface KnownEncoding {
  /** What the case covers. */
  readonly name: string;
  /** Emits exactly one instruction at origin 0x7C00 (labels `here`/`far` are provided). */
  readonly emit: (a: Assembler) => void;
  /** Expected bytes, as hex. */
  readonly hex: string;
  /** Expected listing text (ndisasm's spelling). */
  readonly text: string;
}

const c = 'test';

export const KNOWN_ENCODINGS: readonly KnownEncoding[] = [
  { name: 'cli', emit: (a) => a.cli(c), hex: 'fa', text: 'cli' },
  { name: 'sti', emit: (a) => a.sti(c), hex: 'fb', text: 'sti' },
  { name: 'cld', emit: (a) => a.cld(c), hex: 'fc', text: 'cld' },
  { name: 'hlt', emit: (a) => a.hlt(c), hex: 'f4', text: 'hlt' },
  { name: 'ret', emit: (a) => a.ret(c), hex: 'c3', text: 'ret' },
  { name: 'lodsb', emit: (a) => a.lodsb(c), hex: 'ac', text: 'lodsb' },
  { name: 'rep stosw', emit: (a) => a.repStosw(c), hex: 'f3ab', text: 'rep stosw' },
  { name: 'a32 stosd', emit: (a) => a.a32Stosd(c), hex: '6766ab', text: 'a32 stosd' },
  {
    name: 'rep a32 stosd',
    emit: (a) => a.repA32Stosd(c),
    hex: 'f36766ab',
    text: 'rep a32 stosd',
  },
  { name: 'mov r8,imm8', emit: (a) => a.movImm('al', 0x80, c), hex: 'b080', text: 'mov al,0x80' },
  { name: 'mov bh,imm8', emit: (a) => a.movImm('bh', 7, c), hex: 'b707', text: 'mov bh,0x7' },
  {
    name: 'mov r16,imm16',
    emit: (a) => a.movImm('sp', 0x7c00, c),
    hex: 'bc007c',
    text: 'mov sp,0x7c00',
  },
  {
    name: 'mov r32,imm32',
    emit: (a) => a.movImm('edx', 0x534d4150, c),
    hex: '66ba50414d53',
    text: 'mov edx,0x534d4150',
  },
  {
    name: 'mov r16,label',
    emit: (a) => a.movLabel('si', 'here', c),
    hex: 'be007c',
    text: 'mov si,0x7c00',
  },
  { name: 'mov r16,r16', emit: (a) => a.movReg('dx', 'ax', c), hex: '89c2', text: 'mov dx,ax' },
  { name: 'mov r8,r8', emit: (a) => a.movReg('ah', 'al', c), hex: '88c4', text: 'mov ah,al' },
  {
    name: 'mov r32,r32',
    emit: (a) => a.movReg('eax', 'edi', c),
    hex: '6689f8',
    text: 'mov eax,edi',
  },
  { name: 'mov ds,r16', emit: (a) => a.movToSeg('ds', 'ax', c), hex: '8ed8', text: 'mov ds,ax' },
  { name: 'mov es,dx', emit: (a) => a.movToSeg('es', 'dx', c), hex: '8ec2', text: 'mov es,dx' },
  {
    name: 'movzx r32,r8',
    emit: (a) => a.movzx('eax', 'bh', c),
    hex: '660fb6c7',
    text: 'movzx eax,bh',
  },
  {
    name: 'mov r8,[disp16]',
    emit: (a) => a.movLoad('dl', 0x504, c),
    hex: '8a160405',
    text: 'mov dl,[0x504]',
  },
  {
    name: 'mov r16,[disp16]',
    emit: (a) => a.movLoad('cx', 0x7dfa, c),
    hex: '8b0efa7d',
    text: 'mov cx,[0x7dfa]',
  },
  {
    name: 'mov r32,[disp16]',
    emit: (a) => a.movLoad('eax', 0x500, c),
    hex: '668b060005',
    text: 'mov eax,[0x500]',
  },
  {
    name: 'mov [disp16],r8',
    emit: (a) => a.movStore(0x504, 'dl', c),
    hex: '88160405',
    text: 'mov [0x504],dl',
  },
  {
    name: 'mov [disp16],r32',
    emit: (a) => a.movStore(0x804, 'eax', c),
    hex: '6689060408',
    text: 'mov [0x804],eax',
  },
  {
    name: 'mov byte [disp16],imm8',
    emit: (a) => a.movStoreImm(8, 0x504, 0x80, c),
    hex: 'c606040580',
    text: 'mov byte [0x504],0x80',
  },
  {
    name: 'mov word [label+2],imm16',
    emit: (a) => a.movStoreImm(16, { label: 'here', add: 2 }, 1, c),
    hex: 'c706027c0100',
    text: 'mov word [0x7c02],0x1',
  },
  {
    name: 'mov dword [disp16],imm32',
    emit: (a) => a.movStoreImm(32, 0x800, 0x50414e53, c),
    hex: '66c7060008534e4150',
    text: 'mov dword [0x800],0x50414e53',
  },
  { name: 'mov eax,cr0', emit: (a) => a.movFromCr0('eax', c), hex: '0f20c0', text: 'mov eax,cr0' },
  { name: 'mov cr0,eax', emit: (a) => a.movToCr0('eax', c), hex: '0f22c0', text: 'mov cr0,eax' },
  {
    name: 'lgdt [disp16]',
    emit: (a) => a.lgdt(0x7dcb, c),
    hex: '0f0116cb7d',
    text: 'lgdt [0x7dcb]',
  },
  { name: 'or r8,imm8', emit: (a) => a.aluImm('or', 'al', 1, c), hex: '80c801', text: 'or al,0x1' },
  {
    name: 'and r8,imm8',
    emit: (a) => a.aluImm('and', 'al', 0xfe, c),
    hex: '80e0fe',
    text: 'and al,0xfe',
  },
  {
    name: 'cmp r8,imm8',
    emit: (a) => a.aluImm('cmp', 'al', 0x39, c),
    hex: '80f839',
    text: 'cmp al,0x39',
  },
  {
    name: 'and r32,simm8',
    emit: (a) => a.aluImm('and', 'ecx', -4, c),
    hex: '6683e1fc',
    text: 'and ecx,byte -0x4',
  },
  {
    name: 'add r16,simm8',
    emit: (a) => a.aluImm('add', 'sp', 2, c),
    hex: '83c402',
    text: 'add sp,byte +0x2',
  },
  {
    name: 'cmp r32,imm32',
    emit: (a) => a.aluImm('cmp', 'eax', 0x534d4150, c),
    hex: '6681f850414d53',
    text: 'cmp eax,0x534d4150',
  },
  {
    name: 'sub r16,imm16',
    emit: (a) => a.aluImm('sub', 'bx', 0x1234, c),
    hex: '81eb3412',
    text: 'sub bx,0x1234',
  },
  {
    name: 'cmp dword [disp16],simm8',
    emit: (a) => a.aluMemImm('cmp', 32, 0x610, 1, c),
    hex: '66833e100601',
    text: 'cmp dword [0x610],byte +0x1',
  },
  {
    name: 'cmp dword [disp16],imm32',
    emit: (a) => a.aluMemImm('cmp', 32, 0x610, 0x12345678, c),
    hex: '66813e100678563412',
    text: 'cmp dword [0x610],0x12345678',
  },
  {
    name: 'add dword [disp16],imm32',
    emit: (a) => a.aluMemImm('add', 32, 0x508, 4096, c),
    hex: '668106080500100000',
    text: 'add dword [0x508],0x1000',
  },
  {
    name: 'add byte [disp16],imm8',
    emit: (a) => a.aluMemImm('add', 8, 0x610, 3, c),
    hex: '8006100603',
    text: 'add byte [0x610],0x3',
  },
  {
    name: 'xor r16,r16',
    emit: (a) => a.aluReg('xor', 'ax', 'ax', c),
    hex: '31c0',
    text: 'xor ax,ax',
  },
  {
    name: 'xor r32,r32',
    emit: (a) => a.aluReg('xor', 'ebx', 'ebx', c),
    hex: '6631db',
    text: 'xor ebx,ebx',
  },
  {
    name: 'cmp r8,r8',
    emit: (a) => a.aluReg('cmp', 'al', 'bl', c),
    hex: '38d8',
    text: 'cmp al,bl',
  },
  {
    name: 'add [disp16],r32',
    emit: (a) => a.aluStore('add', 0x508, 'ecx', c),
    hex: '66010e0805',
    text: 'add [0x508],ecx',
  },
  {
    name: 'test al,imm8',
    emit: (a) => a.testImm('al', 0x20, c),
    hex: 'a820',
    text: 'test al,0x20',
  },
  {
    name: 'test r16,imm16',
    emit: (a) => a.testImm('cx', 0x100, c),
    hex: 'f7c10001',
    text: 'test cx,0x100',
  },
  {
    name: 'test byte [disp16],imm8',
    emit: (a) => a.testMem8(0x7df4, 1, c),
    hex: 'f606f47d01',
    text: 'test byte [0x7df4],0x1',
  },
  { name: 'test r8,r8', emit: (a) => a.testReg('al', 'al', c), hex: '84c0', text: 'test al,al' },
  {
    name: 'test r32,r32',
    emit: (a) => a.testReg('ebx', 'ebx', c),
    hex: '6685db',
    text: 'test ebx,ebx',
  },
  { name: 'inc r16', emit: (a) => a.inc('dx', c), hex: '42', text: 'inc dx' },
  { name: 'dec r16', emit: (a) => a.dec('ax', c), hex: '48', text: 'dec ax' },
  { name: 'dec r32', emit: (a) => a.dec('ecx', c), hex: '6649', text: 'dec ecx' },
  { name: 'inc r8', emit: (a) => a.inc('cl', c), hex: 'fec1', text: 'inc cl' },
  {
    name: 'inc dword [disp16]',
    emit: (a) => a.incMem(32, 0x500, c),
    hex: '66ff060005',
    text: 'inc dword [0x500]',
  },
  {
    name: 'shr r32,imm8',
    emit: (a) => a.shiftImm('shr', 'ecx', 2, c),
    hex: '66c1e902',
    text: 'shr ecx,byte 0x2',
  },
  {
    name: 'rol r32,imm8',
    emit: (a) => a.shiftImm('rol', 'eax', 4, c),
    hex: '66c1c004',
    text: 'rol eax,byte 0x4',
  },
  {
    name: 'shl r8,imm8',
    emit: (a) => a.shiftImm('shl', 'al', 3, c),
    hex: 'c0e003',
    text: 'shl al,byte 0x3',
  },
  {
    name: 'sar byte [disp16],1',
    emit: (a) => a.shiftMem1('sar', 8, 0x7dfc, c),
    hex: 'd03efc7d',
    text: 'sar byte [0x7dfc],1',
  },
  {
    name: 'imul r32,r32,imm32',
    emit: (a) => a.imulImm('eax', 'eax', 0x9e3779b1, c),
    hex: '6669c0b179379e',
    text: 'imul eax,eax,dword 0x9e3779b1',
  },
  { name: 'push r32', emit: (a) => a.push('eax', c), hex: '6650', text: 'push eax' },
  { name: 'pop r32', emit: (a) => a.pop('eax', c), hex: '6658', text: 'pop eax' },
  { name: 'push r16', emit: (a) => a.push('si', c), hex: '56', text: 'push si' },
  { name: 'pop r16', emit: (a) => a.pop('di', c), hex: '5f', text: 'pop di' },
  { name: 'in al,dx', emit: (a) => a.inAlDx(c), hex: 'ec', text: 'in al,dx' },
  { name: 'out dx,al', emit: (a) => a.outDxAl(c), hex: 'ee', text: 'out dx,al' },
  { name: 'in eax,dx', emit: (a) => a.inEaxDx(c), hex: '66ed', text: 'in eax,dx' },
  { name: 'out dx,eax', emit: (a) => a.outDxEax(c), hex: '66ef', text: 'out dx,eax' },
  { name: 'in al,imm8', emit: (a) => a.inAlImm(0x92, c), hex: 'e492', text: 'in al,0x92' },
  { name: 'out imm8,al', emit: (a) => a.outImmAl(0x92, c), hex: 'e692', text: 'out 0x92,al' },
  { name: 'int imm8', emit: (a) => a.int(0x13, c), hex: 'cd13', text: 'int 0x13' },
  {
    name: 'jmp short (backwards)',
    emit: (a) => a.jmp('here', c),
    hex: 'ebfe',
    text: 'jmp short 0x7c00',
  },
  {
    name: 'jmp near',
    emit: (a) => a.jmpNear('far', c),
    hex: 'e9fd00',
    text: 'jmp 0x7d00',
  },
  {
    name: 'jmp far',
    emit: (a) => a.jmpFar(0, 'far', c),
    hex: 'ea007d0000',
    text: 'jmp 0x0:0x7d00',
  },
  { name: 'jz short', emit: (a) => a.jcc('z', 'here', c), hex: '74fe', text: 'jz 0x7c00' },
  { name: 'jnc short', emit: (a) => a.jcc('nc', 'here', c), hex: '73fe', text: 'jnc 0x7c00' },
  { name: 'jna short', emit: (a) => a.jcc('na', 'here', c), hex: '76fe', text: 'jna 0x7c00' },
  {
    name: 'jnz near',
    emit: (a) => a.jccNear('nz', 'far', c),
    hex: '0f85fc00',
    text: 'jnz near 0x7d00',
  },
  { name: 'loop', emit: (a) => a.loop('here', c), hex: 'e2fe', text: 'loop 0x7c00' },
  { name: 'call near', emit: (a) => a.call('far', c), hex: 'e8fd00', text: 'call 0x7d00' },
];
