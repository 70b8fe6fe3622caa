/**
 * The migration stream the fake writes and reads, on plain `Uint8Array`s (no Node, so it runs
 * in a page). QEMU-shaped: QEVM magic, version 3, a configuration section (machine type), an
 * optional OPEN_RETURN_PATH command, then ram, timer and globalstate sections, QEMU_VM_EOF and
 * the vmdesc trailer. For `-machine none` a real QEMU loads it, and the fake loads `-machine
 * none` streams from a real QEMU (it reads the saved run state from `globalstate`).
 *
 * A source sends the stream in two parts: `streamHead` when the channel connects (so a
 * target sees a started stream even when the migration is cancelled later) and `streamTail`
 * at the switch-over. The return path (target → source) carries QEMU's SHUT message.
 */

const QEVM = 0x5145564d;
const SECTION_START = 0x01;
const SECTION_PART = 0x03;
const SECTION_FULL = 0x04;
const VM_EOF = 0x00;
const VM_COMMAND = 0x08;
const VM_CONFIGURATION = 0x07;
const VM_VMDESCRIPTION = 0x06;
const SECTION_FOOTER = 0x7e;
const MIG_CMD_OPEN_RETURN_PATH = 1;
/** Return-path message: the target is done (value 0) or failed (value 1). */
const MIG_RP_MSG_SHUT = 1;

/** Big-endian bytes built piece by piece. */
class ByteWriter {
  private readonly parts: Uint8Array[] = [];
  private length = 0;

  private push(part: Uint8Array): this {
    this.parts.push(part);
    this.length += part.length;
    return this;
  }

  u8(n: number): this {
    return this.push(Uint8Array.of(n));
  }

  u16(n: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, n);
    return this.push(b);
  }

  u32(n: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    return this.push(b);
  }

  u64(n: bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, n);
    return this.push(b);
  }

  bytes(b: Uint8Array): this {
    return this.push(b);
  }

  /** QEMU's idstr: a length byte, then the name. */
  idstr(s: string): this {
    const b = latin1(s);
    return this.u8(b.length).bytes(b);
  }

  done(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** Latin-1 bytes of a string (QEMU's names and run states are ASCII). */
function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

function latin1Text(b: Uint8Array): string {
  let s = '';
  for (const c of b) s += String.fromCharCode(c);
  return s;
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const w = new ByteWriter();
  for (const p of parts) w.bytes(p);
  return w.done();
}

/** The stream's first part: header, configuration, (return path), the ram section's start. */
export function streamHead(machineType: string, options: { returnPath: boolean }): Uint8Array {
  const machine = latin1(machineType);
  const w = new ByteWriter().u32(QEVM).u32(3);
  w.u8(VM_CONFIGURATION).u32(machine.length).bytes(machine);
  if (options.returnPath) w.u8(VM_COMMAND).u16(MIG_CMD_OPEN_RETURN_PATH).u16(0);
  // ram: section start, total size 0 | MEM_SIZE, EOS, footer.
  w.u8(SECTION_START).u32(2).idstr('ram').u32(0).u32(4).u64(4n).u64(0x10n);
  w.u8(SECTION_FOOTER).u32(2);
  return w.done();
}

/** The rest: ram's last part, timer, globalstate (`runstate`), EOF and the vmdesc trailer. */
export function streamTail(runstate: string): Uint8Array {
  const w = new ByteWriter();
  w.u8(SECTION_PART).u32(2).u64(0x10n).u8(SECTION_FOOTER).u32(2);
  w.u8(SECTION_FULL).u32(0).idstr('timer').u32(0).u32(2).u64(0n).u64(0n).u64(0n);
  w.u8(SECTION_FOOTER).u32(0);
  const state = new Uint8Array(100);
  state.set(latin1(runstate));
  w.u8(SECTION_FULL)
    .u32(4)
    .idstr('globalstate')
    .u32(0)
    .u32(1)
    .u32(runstate.length + 1);
  w.bytes(state).u8(SECTION_FOOTER).u32(4);
  w.u8(VM_EOF);
  const vmdesc = new TextEncoder().encode(
    JSON.stringify({ page_size: 4096, devices: [], 'qmpkit-fake-qmp': { runstate } }),
  );
  w.u8(VM_VMDESCRIPTION).u32(vmdesc.length).bytes(vmdesc);
  return w.done();
}

/** What a target learns from a whole stream. */
export interface ParsedStream {
  /** The source's run state at the switch-over (`running`, `paused`, …). */
  readonly runstate: string;
  /** The source asked for a return path (OPEN_RETURN_PATH after the configuration). */
  readonly returnPath: boolean;
  /** The machine type in the configuration section ('' when the stream has none). */
  readonly machineType: string;
}

function indexOf(data: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= data.length; i++) {
    for (let k = 0; k < needle.length; k++) if (data[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

/**
 * The machine type of a stream's configuration section as soon as the bytes are there (a
 * target checks it before anything else, like QEMU): undefined while too few bytes arrived,
 * '' for a stream without the section (or no QEVM header).
 */
export function streamMachineType(data: Uint8Array): string | undefined {
  if (data.length < 13) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (view.getUint32(0) !== QEVM || data[8] !== VM_CONFIGURATION) return '';
  const length = view.getUint32(9);
  if (data.length < 13 + length) return undefined;
  return latin1Text(data.subarray(13, 13 + length));
}

/**
 * Reads a stream: the saved run state and the return-path request, or an error text ('empty'
 * for no bytes at all — QEMU keeps waiting then).
 */
export function parseStream(data: Uint8Array): ParsedStream | string {
  if (data.length === 0) return 'empty';
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data.length < 8 || view.getUint32(0) !== QEVM) return 'Not a migration stream';
  if (view.getUint32(4) !== 3) return 'Unsupported migration stream version';
  let at = 8;
  let machineType = '';
  if (data[at] === VM_CONFIGURATION && at + 5 <= data.length) {
    const length = view.getUint32(at + 1);
    machineType = latin1Text(data.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  const returnPath =
    at + 5 <= data.length &&
    data[at] === VM_COMMAND &&
    view.getUint16(at + 1) === MIG_CMD_OPEN_RETURN_PATH;
  const marker = latin1('\x0bglobalstate');
  const found = indexOf(data, marker);
  if (found < 0) return 'load of migration failed: Invalid argument';
  const fieldAt = found + marker.length + 8;
  if (fieldAt + 4 > data.length) return 'load of migration failed: Input/output error';
  const size = view.getUint32(fieldAt);
  if (fieldAt + 4 + size > data.length) return 'load of migration failed: Input/output error';
  const text = latin1Text(data.subarray(fieldAt + 4, fieldAt + 4 + size)).replace(/\0.*$/s, '');
  return { runstate: text || 'running', returnPath, machineType };
}

/** The target's SHUT message on the return path (`failed`: the load did not succeed). */
export function returnPathShut(failed: boolean): Uint8Array {
  return new ByteWriter()
    .u16(MIG_RP_MSG_SHUT)
    .u16(4)
    .u32(failed ? 1 : 0)
    .done();
}

/**
 * Reads return-path messages as they arrive (a source's side): calls `onShut` for SHUT and
 * skips every other message type (a real QEMU target also sends PONG and others).
 */
export class ReturnPathReader {
  private buffered: Uint8Array = new Uint8Array(0);

  constructor(private readonly onShut: (failed: boolean) => void) {}

  push(chunk: Uint8Array): void {
    this.buffered = concatBytes([this.buffered, chunk]);
    for (;;) {
      if (this.buffered.length < 4) return;
      const view = new DataView(
        this.buffered.buffer,
        this.buffered.byteOffset,
        this.buffered.byteLength,
      );
      const type = view.getUint16(0);
      const len = view.getUint16(2);
      if (this.buffered.length < 4 + len) return;
      if (type === MIG_RP_MSG_SHUT && len === 4) this.onShut(view.getUint32(4) !== 0);
      this.buffered = this.buffered.subarray(4 + len);
    }
  }
}
