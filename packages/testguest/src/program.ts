/**
 * The test guest: a 512-byte x86 boot sector, written as calls to the tiny assembler.
 *
 * What it does (SeaBIOS loads it at 0000:7C00 with DL = boot drive):
 *  1. sets up segments and a stack, zeroes its RAM variables, programs COM1 for 115200 8N1;
 *  2. prints `G=<format version>`;
 *  3. loops forever: if the config flags say so (once for `fillRam`, every iteration for
 *     `dirtyRam`), fill every whole 4 KiB page of every E820 type-1 region above 1 MiB
 *     (below 4 GiB) with `fillPatternAt(address)` (one value per page) using unreal mode and
 *     `rep a32 stosd`, then print `F=<bytes filled so far>`; echo every byte waiting in the COM1 receiver as `E=<byte>`; acknowledge
 *     pending ACPI PCI eject requests (i440fx), so `device_del` completes; increment
 *     the dword at COUNTER_ADDRESS; write "SNAP"+counter to disk LBA 1 (int 13h/43h; on
 *     failure print `D=<status>`); print `C=<counter>`; sleep CX:DX microseconds
 *     (int 15h/86h; if that fails, `hlt` until the next timer tick).
 *
 * The disk write comes before the `C=` line, so a host that has seen `C=N` knows LBA 1
 * already holds N (or N+1 if the guest got one step further).
 */
import { Assembler } from './asm/assembler.js';
import {
  ACPI_PCIHP_DOWN_PORT,
  ACPI_PCIHP_EJECT_PORT,
  BOOT_DRIVE_ADDRESS,
  COM1_PORT,
  CONFIG_FLAGS_OFFSET,
  CONFIG_INTERVAL_OFFSET,
  CONFIG_MAGIC,
  CONFIG_OFFSET,
  COUNTER_ADDRESS,
  E820_BUFFER_ADDRESS,
  FILL_MULTIPLIER,
  FILLED_PAGES_ADDRESS,
  GUEST_FORMAT_VERSION,
  LOAD_ADDRESS,
  RECORD_BUFFER_ADDRESS,
  RECORD_COUNTER_OFFSET,
  RECORD_LBA,
  RECORD_MAGIC,
  SIGNATURE_OFFSET,
  STACK_TOP,
} from './layout.js';

/** The run-time configuration stored in the boot sector's config block. */
export interface ProgramConfig {
  /** Bit set of FLAG_* values. */
  readonly flags: number;
  /** Sleep between iterations, in microseconds (u32). */
  readonly intervalMicros: number;
}

const SMAP = 0x534d4150; // 'SMAP', the E820 signature
const ONE_MIB = 0x100000;
const PAGE_SIZE = 4096;
/** RAM zeroed at start: counter, drive, fill total, E820 buffer, record buffer. */
const SCRATCH_START = COUNTER_ADDRESS;
const SCRATCH_END = RECORD_BUFFER_ADDRESS + 512;

const UART_DATA = COM1_PORT; // RBR/THR (DLL when DLAB=1)
const UART_IER = COM1_PORT + 1; // interrupt enable (DLM when DLAB=1)
const UART_LCR = COM1_PORT + 3; // line control
const UART_LSR = COM1_PORT + 5; // line status
const LSR_DATA_READY = 0x01;
const LSR_THR_EMPTY = 0x20;

function asciiDword(text: string): number {
  let value = 0;
  for (let i = 3; i >= 0; i--) value = value * 256 + text.charCodeAt(i);
  return value;
}

/** Emits the whole boot sector into a fresh assembler (origin 0x7C00). */
export function emitProgram(config: ProgramConfig): Assembler {
  const a = new Assembler(LOAD_ADDRESS);
  const cfgFlags = LOAD_ADDRESS + CONFIG_FLAGS_OFFSET;
  const cfgInterval = LOAD_ADDRESS + CONFIG_INTERVAL_OFFSET;

  // ---- entry: segments and stack ----------------------------------------------------------
  // Only relative jumps/calls are used and data is addressed through DS = 0, so the code does
  // not care whether the BIOS entered it as 0000:7C00 or 07C0:0000.
  a.label('start');
  a.cli('no interrupts while SS:SP is inconsistent');
  a.aluReg('xor', 'ax', 'ax', 'AX = 0');
  a.movToSeg('ds', 'ax', 'DS = 0: every address below is absolute');
  a.movToSeg('es', 'ax', 'ES = 0 (rep stosw, E820 buffer)');
  a.movToSeg('ss', 'ax', 'SS = 0');
  a.movImm('sp', STACK_TOP, 'stack grows down from 0x7C00');
  a.sti('interrupts back on (the BIOS timer and disk need them)');
  a.cld('string instructions count upwards');
  a.movImm('di', SCRATCH_START, 'DI = start of our RAM variables');
  a.movImm('cx', (SCRATCH_END - SCRATCH_START) / 2, 'CX = words up to the end of the record');
  a.repStosw('zero counter, fill total, E820 buffer and record buffer (AX = 0)');
  a.movStore(BOOT_DRIVE_ADDRESS, 'dl', 'remember the boot drive the BIOS passed in DL');
  a.movStoreImm(32, RECORD_BUFFER_ADDRESS, asciiDword(RECORD_MAGIC), 'record magic "SNAP"');

  // ---- COM1: 115200 8N1, FIFOs on, polled (no IRQ) ----------------------------------------
  a.movImm('dx', UART_IER, 'DX = COM1 interrupt enable register');
  a.outDxAl('IER = 0 (AL is 0): no UART interrupts, we poll');
  a.inc('dx', 'DX = FIFO control register');
  a.movImm('al', 0x07, 'enable FIFOs and clear both');
  a.outDxAl('FCR = 0x07');
  a.inc('dx', 'DX = line control register');
  a.movImm('al', 0x80, 'DLAB = 1 to reach the divisor latch');
  a.outDxAl('LCR = 0x80');
  a.movImm('dx', UART_DATA, 'DX = divisor latch low');
  a.movImm('al', 0x01, 'divisor 1 = 115200 baud');
  a.outDxAl('DLL = 1');
  a.inc('dx', 'DX = divisor latch high');
  a.dec('ax', 'AL = 0');
  a.outDxAl('DLM = 0');
  a.movImm('dx', UART_LCR, 'DX = line control register');
  a.movImm('al', 0x03, '8 data bits, no parity, 1 stop bit, DLAB = 0');
  a.outDxAl('LCR = 0x03');
  a.inc('dx', 'DX = modem control register');
  a.outDxAl('MCR = 0x03: DTR + RTS, OUT2 off (no IRQ line)');

  // ---- hello -------------------------------------------------------------------------------
  a.movImm('bl', 0x47, "BL = 'G'");
  a.call('put_tag', 'print "G="');
  a.movImm('eax', GUEST_FORMAT_VERSION, 'EAX = guest format version');
  a.call('puthex_line', 'print 8 hex digits and CRLF');

  // ---- main loop ---------------------------------------------------------------------------
  a.label('main_loop');
  a.call('fill_ram', 'fill RAM if the config flags say so (see fill_ram)');
  a.movImm('dx', UART_LSR, 'DX = COM1 line status register');
  a.inAlDx('AL = LSR');
  a.testImm('al', LSR_DATA_READY, 'a received byte waiting?');
  a.jcc('z', 'tick', 'no: go count');
  a.movImm('dx', UART_DATA, 'DX = receive buffer');
  a.inAlDx('AL = received byte');
  a.movReg('bh', 'al', 'keep it in BH (the print helpers leave BX alone)');
  a.movImm('bl', 0x45, "BL = 'E'");
  a.call('put_tag', 'print "E="');
  a.movReg('al', 'bh', 'AL = the received byte');
  a.call('putc', 'echo it as is');
  a.call('crlf', 'end the line');
  a.jmp('main_loop', 'drain the receiver before counting');

  a.label('tick');
  a.movImm('dx', ACPI_PCIHP_DOWN_PORT, 'DX = ACPI PCI hot-plug "down" register (i440fx)');
  a.inEaxDx('EAX = slots QEMU wants ejected (device_del in progress)');
  a.testReg('eax', 'eax', 'any?');
  a.jcc('z', 'count', 'no: go count');
  a.movImm('dl', ACPI_PCIHP_EJECT_PORT & 0xff, 'DX = eject register (same high byte)');
  a.outDxEax('eject them: QEMU removes the device and emits DEVICE_DELETED');
  a.label('count');
  a.incMem(32, COUNTER_ADDRESS, 'counter += 1');
  a.movLoad('eax', COUNTER_ADDRESS, 'EAX = counter');
  a.movStore(RECORD_BUFFER_ADDRESS + RECORD_COUNTER_OFFSET, 'eax', 'record.counter = counter');
  a.movStoreImm(16, { label: 'dap', add: 2 }, 1, 'DAP sector count = 1 (the BIOS may rewrite it)');
  a.movLabel('si', 'dap', 'DS:SI = disk address packet');
  a.movImm('ax', 0x4300, 'AH = 43h extended write, AL = 0 no verify');
  a.movLoad('dl', BOOT_DRIVE_ADDRESS, 'DL = boot drive');
  a.int(0x13, 'BIOS disk service: write the record to LBA 1');
  a.jcc('nc', 'print_counter', 'written: print the counter');
  a.movReg('bh', 'ah', 'BH = BIOS status code');
  a.movImm('bl', 0x44, "BL = 'D'");
  a.call('put_tag', 'print "D="');
  a.movzx('eax', 'bh', 'EAX = status');
  a.call('puthex_line', 'print the status and CRLF');

  a.label('print_counter');
  a.movImm('bl', 0x43, "BL = 'C'");
  a.call('put_tag', 'print "C="');
  a.movLoad('eax', COUNTER_ADDRESS, 'EAX = counter');
  a.call('puthex_line', 'print 8 hex digits and CRLF');
  a.movLoad('cx', cfgInterval + 2, 'CX = interval high word (µs)');
  a.movLoad('dx', cfgInterval, 'DX = interval low word (µs)');
  a.movImm('ah', 0x86, 'AH = 86h wait');
  a.int(0x15, 'BIOS wait CX:DX microseconds');
  a.jcc('nc', 'main_loop', 'waited: next iteration');
  a.hlt('wait unsupported: sleep until the next timer interrupt instead');
  a.jmp('main_loop', 'next iteration');

  // ---- fill_ram: E820 walk, unreal mode, a32 stores ----------------------------------------
  // Clobbers EAX, EBX, ECX, EDX, EDI. Keeps EBX (the E820 continuation) across the fill.
  // Runs when bit 0 of the flags byte, shifted out, is set. `sar` keeps bit 7: FLAG_FILL_RAM
  // (0x01) is 0 after one fill; FLAG_DIRTY_RAM (0xFF) stays, so every loop iteration rewrites
  // all RAM above 1 MiB (a guest that dirties memory without pause).
  a.label('fill_ram');
  a.shiftMem1('sar', 8, cfgFlags, 'CF = flags bit 0; flags >>= 1 (sign kept)');
  a.jcc('c', 'fill_start', 'set: fill');
  a.ret('not this time');
  a.label('fill_start');
  a.aluReg('xor', 'ebx', 'ebx', 'EBX = 0: first E820 entry');
  a.label('e820_next');
  a.movImm('eax', 0xe820, 'EAX = E820h: query system address map');
  a.movImm('edx', SMAP, "EDX = 'SMAP'");
  a.movImm('ecx', 24, 'ECX = buffer size');
  a.movImm('di', E820_BUFFER_ADDRESS, 'ES:DI = entry buffer');
  a.int(0x15, 'BIOS: next address range into the buffer, EBX = continuation');
  a.jcc('c', 'fill_done', 'carry: end of list (or unsupported)');
  a.aluImm('cmp', 'eax', SMAP, "EAX must come back as 'SMAP'");
  a.jcc('nz', 'fill_done', 'otherwise give up');
  a.aluMemImm('cmp', 32, E820_BUFFER_ADDRESS + 16, 1, 'type 1 (usable RAM)?');
  a.jcc('nz', 'e820_skip', 'no: skip');
  a.aluMemImm('cmp', 32, E820_BUFFER_ADDRESS + 4, 0, 'base below 4 GiB?');
  a.jcc('nz', 'e820_skip', 'no: unreachable with 32-bit addresses');
  a.aluMemImm('cmp', 32, E820_BUFFER_ADDRESS + 12, 0, 'length below 4 GiB?');
  a.jcc('nz', 'e820_skip', 'no: skip');
  a.movLoad('edi', E820_BUFFER_ADDRESS, 'EDI = base');
  a.aluImm('cmp', 'edi', ONE_MIB, 'at or above 1 MiB?');
  a.jcc('c', 'e820_skip', 'no: conventional memory holds us and the BIOS');
  a.movLoad('ecx', E820_BUFFER_ADDRESS + 8, 'ECX = length in bytes');
  a.shiftImm('shr', 'ecx', 12, 'ECX = whole 4 KiB pages (a partial last page is left alone)');
  a.jcc('z', 'e820_skip', 'none: skip');
  a.aluStore('add', FILLED_PAGES_ADDRESS, 'ecx', 'pages filled += pages');
  a.cli('no interrupts: a BIOS handler would reload ES and drop its 4 GiB limit');
  a.call('unreal', 'ES gets a 4 GiB limit');
  a.label('fill_page');
  a.push('ecx', 'keep the page count');
  a.movReg('eax', 'edi', 'EAX = page address');
  a.imulImm('eax', 'eax', FILL_MULTIPLIER, 'EAX = page address * 0x9E3779B1 (never 0)');
  a.movImm('ecx', PAGE_SIZE / 4, 'ECX = dwords per page');
  a.repA32Stosd('fill the page: [ES:EDI] = EAX, EDI += 4, ECX times');
  a.pop('ecx', 'ECX = pages left');
  a.dec('ecx', 'one page less');
  a.jcc('nz', 'fill_page', 'until the region is full');
  a.sti('interrupts back on');
  a.label('e820_skip');
  a.testReg('ebx', 'ebx', 'continuation 0 = last entry');
  a.jcc('nz', 'e820_next', 'more entries');
  a.label('fill_done');
  a.movImm('bl', 0x46, "BL = 'F'");
  a.call('put_tag', 'print "F="');
  a.movLoad('eax', FILLED_PAGES_ADDRESS, 'EAX = pages filled');
  a.shiftImm('shl', 'eax', 12, 'EAX = bytes filled');
  a.jmp('puthex_line', 'tail call: print them and return');

  // ---- unreal: give ES a 4 GiB limit and return to real mode -------------------------------
  // Interrupts must be off. Clobbers EAX, DX.
  a.label('unreal');
  a.lgdt('gdt_desc', 'GDTR = our two-entry GDT');
  a.movFromCr0('eax', 'EAX = CR0');
  a.aluImm('or', 'al', 1, 'PE = 1');
  a.movToCr0('eax', 'enter protected mode');
  a.jmp('unreal_pm', 'flush the prefetch queue');
  a.label('unreal_pm');
  a.movImm('dx', 0x08, 'selector 8: flat 4 GiB data segment');
  a.movToSeg('es', 'dx', 'ES descriptor cache now has base 0, limit 4 GiB');
  a.aluImm('and', 'al', 0xfe, 'PE = 0');
  a.movToCr0('eax', 'back to real mode; the cached limit stays');
  a.jmp('unreal_rm', 'flush the prefetch queue');
  a.label('unreal_rm');
  a.aluReg('xor', 'dx', 'dx', 'DX = 0');
  a.movToSeg('es', 'dx', 'ES = 0 in real-mode terms (base 0, limit kept)');
  a.ret('ES is now "unreal"');

  // ---- output helpers (all leave BX, SI, DI alone) -----------------------------------------
  // puthex_line: print EAX as 8 upper-case hex digits, then CRLF. Clobbers EAX, CX, DX.
  a.label('puthex_line');
  a.movImm('cx', 8, 'CX = 8 digits');
  a.label('puthex_digit');
  a.shiftImm('rol', 'eax', 4, 'next nibble into AL[3:0]');
  a.push('eax', 'keep the rest');
  a.aluImm('and', 'al', 0x0f, 'AL = nibble');
  a.aluImm('add', 'al', 0x30, "AL = '0' + nibble");
  a.aluImm('cmp', 'al', 0x39, "above '9'?");
  a.jcc('na', 'puthex_out', 'no: a decimal digit');
  a.aluImm('add', 'al', 7, "yes: 'A'..'F'");
  a.label('puthex_out');
  a.call('putc', 'print it');
  a.pop('eax', 'restore the rest');
  a.loop('puthex_digit', 'eight times');
  // fall through into crlf

  // crlf: print CR LF. Clobbers AX, DX.
  a.label('crlf');
  a.movImm('al', 0x0d, 'AL = CR');
  a.call('putc', 'print it');
  a.movImm('al', 0x0a, 'AL = LF');
  a.jmp('putc', 'tail call: print it and return');

  // put_tag: print the letter in BL and '='. Clobbers AX, DX.
  a.label('put_tag');
  a.movReg('al', 'bl', 'AL = tag letter');
  a.call('putc', 'print it');
  a.movImm('al', 0x3d, "AL = '='");
  // fall through into putc

  // putc: print AL on COM1 once the transmitter is ready. Clobbers AH, DX.
  a.label('putc');
  a.movReg('ah', 'al', 'AH = byte to send');
  a.movImm('dx', UART_LSR, 'DX = line status register');
  a.label('putc_wait');
  a.inAlDx('AL = LSR');
  a.testImm('al', LSR_THR_EMPTY, 'transmit holding register empty?');
  a.jcc('z', 'putc_wait', 'no: wait');
  a.movReg('al', 'ah', 'AL = byte to send');
  a.movImm('dx', UART_DATA, 'DX = transmit holding register');
  a.outDxAl('send it');
  a.ret('return');

  a.label('code_end');

  // ---- data --------------------------------------------------------------------------------
  a.label('dap');
  a.db([0x10, 0x00], 'DAP: size 16, reserved');
  a.dw([1], 'DAP: sector count');
  a.dw([RECORD_BUFFER_ADDRESS, 0x0000], 'DAP: buffer offset, segment');
  a.dd([RECORD_LBA, 0], 'DAP: 64-bit LBA');

  a.label('gdt');
  a.dd([0, 0], 'GDT[0]: null descriptor');
  a.dw([0xffff, 0x0000], 'GDT[1]: limit 15:0 = FFFFh, base 15:0 = 0');
  a.db([0x00, 0x92, 0xcf, 0x00], 'GDT[1]: base 23:16, present RW data, 4K granular, base 31:24');
  a.label('gdt_desc');
  a.dw([16 - 1], 'GDTR limit: two descriptors');
  a.addressWord(32, 'gdt', 'GDTR base');

  // ---- config block and signature ----------------------------------------------------------
  a.padTo(CONFIG_OFFSET, 0, 'free space (zero)');
  a.label('config');
  a.db(
    [...CONFIG_MAGIC].map((c) => c.charCodeAt(0)),
    'config: magic',
  );
  a.db([config.flags, 0, 0, 0], 'config: flags, reserved');
  a.dd([config.intervalMicros], 'config: interval in microseconds');
  a.dw([0], 'config: reserved');
  a.padTo(SIGNATURE_OFFSET, 0, 'config: end');
  a.db([0x55, 0xaa], 'boot signature');
  return a;
}
