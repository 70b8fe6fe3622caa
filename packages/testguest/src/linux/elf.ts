/**
 * Just enough ELF64 (little-endian) reading to find what a dynamic executable needs: its
 * interpreter (`PT_INTERP`) and `DT_NEEDED` libraries. Used to copy exactly the libraries
 * qemu-ga loads from the unpacked packages — never from the host (running the host's `ldd`
 * would resolve against the host's libraries).
 */
import { LinuxGuestBuildError } from '../errors.js';

export interface ElfDynamicInfo {
  /** `PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`, or `undefined` for a static binary. */
  readonly interpreter: string | undefined;
  /** `DT_NEEDED` sonames in order. */
  readonly needed: readonly string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;

function cString(bytes: Uint8Array, at: number): string {
  let end = at;
  while (end < bytes.length && bytes[end] !== 0) end++;
  return new TextDecoder().decode(bytes.subarray(at, end));
}

/** Reads the interpreter and needed libraries of an ELF64 LE file; `file` names it in errors. */
export function readElfDynamic(bytes: Uint8Array, file: string): ElfDynamicInfo {
  const fail = (why: string): never => {
    throw new LinuxGuestBuildError('elf', `${file}: ${why}`);
  };
  if (
    bytes.length < 64 ||
    bytes[0] !== 0x7f ||
    bytes[1] !== 0x45 ||
    bytes[2] !== 0x4c ||
    bytes[3] !== 0x46
  )
    fail('not an ELF file');
  if (bytes[4] !== 2 || bytes[5] !== 1) fail('not a 64-bit little-endian ELF file');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  if (phoff + phentsize * phnum > bytes.length) fail('program headers beyond the end of the file');
  const loads: { vaddr: bigint; offset: bigint; filesz: bigint }[] = [];
  let dynamic: { offset: number; size: number } | undefined;
  let interpreter: string | undefined;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    const type = view.getUint32(at, true);
    const offset = view.getBigUint64(at + 8, true);
    const vaddr = view.getBigUint64(at + 16, true);
    const filesz = view.getBigUint64(at + 32, true);
    if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
    else if (type === PT_DYNAMIC) dynamic = { offset: Number(offset), size: Number(filesz) };
    else if (type === PT_INTERP) interpreter = cString(bytes, Number(offset));
  }
  if (!dynamic) return { interpreter, needed: [] };
  const toOffset = (vaddr: bigint): number => {
    const seg = loads.find((l) => vaddr >= l.vaddr && vaddr < l.vaddr + l.filesz);
    return seg
      ? Number(vaddr - seg.vaddr + seg.offset)
      : fail(`address 0x${vaddr.toString(16)} is in no loaded segment`);
  };
  const neededOffsets: bigint[] = [];
  let strtab: bigint | undefined;
  for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.size; at += 16) {
    const tag = view.getBigUint64(at, true);
    const value = view.getBigUint64(at + 8, true);
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED) neededOffsets.push(value);
    else if (tag === DT_STRTAB) strtab = value;
  }
  if (neededOffsets.length > 0 && strtab === undefined) fail('DT_NEEDED without DT_STRTAB');
  const base = strtab === undefined ? 0 : toOffset(strtab);
  return { interpreter, needed: neededOffsets.map((o) => cString(bytes, base + Number(o))) };
}
