/**
 * The guest's serial protocol (COM1, 115200 8N1, every line ends in CR LF):
 *
 * | line          | when                                   | value                          |
 * |---------------|----------------------------------------|--------------------------------|
 * | `G=XXXXXXXX`  | once, first thing after boot           | guest format version (1)       |
 * | `F=XXXXXXXX`  | after each RAM fill (once: `fillRam`)  | bytes filled so far            |
 * | `C=XXXXXXXX`  | every iteration, after the disk write  | the counter (1, 2, 3, …)       |
 * | `E=<byte>`    | for each byte received on COM1         | that byte, raw                 |
 * | `D=XXXXXXXX`  | when the int 13h write fails           | the BIOS status code (AH)      |
 *
 * `XXXXXXXX` is exactly eight upper-case hex digits. Bytes are Latin-1: decode host-side
 * chunks with `'latin1'` so an echoed byte maps to one character.
 */

/** Kinds of line the guest prints, keyed by their one-letter tag. */
export const SERIAL_TAGS = {
  G: 'hello',
  F: 'filled',
  C: 'counter',
  E: 'echo',
  D: 'diskError',
} as const;

/** A machine-readable description of the serial output format. */
export const SERIAL_FORMAT = {
  /** Every line ends with this. */
  lineEnd: '\r\n',
  /** Encoding to decode the byte stream with (one byte = one character). */
  encoding: 'latin1',
  /** `C=` line: capture group 1 is the counter in hex. */
  counterLine: /^C=([0-9A-F]{8})$/,
  /** Lines carrying a hex value: group 1 is the tag, group 2 the value. */
  valueLine: /^([GFCD])=([0-9A-F]{8})$/,
  /** `E=` line: the rest of the line is the echoed byte. */
  echoPrefix: 'E=',
  tags: SERIAL_TAGS,
} as const;

/** One parsed line of guest output. */
export type SerialLine =
  | { readonly kind: 'hello'; readonly version: number }
  | { readonly kind: 'filled'; readonly bytes: number }
  | { readonly kind: 'counter'; readonly value: number }
  | { readonly kind: 'echo'; readonly char: string }
  | { readonly kind: 'diskError'; readonly status: number };

function stripLineEnd(line: string): string {
  return line.endsWith('\r\n') ? line.slice(0, -2) : line;
}

/**
 * Parses one line (with or without its CR LF). Returns `undefined` for anything the guest
 * would not print, such as SeaBIOS noise or a partial line.
 */
export function parseSerialLine(line: string): SerialLine | undefined {
  const text = stripLineEnd(line);
  if (text.startsWith(SERIAL_FORMAT.echoPrefix) && text.length === 3) {
    return { kind: 'echo', char: text.slice(2) };
  }
  const match = SERIAL_FORMAT.valueLine.exec(text);
  if (!match) return undefined;
  const value = Number.parseInt(match[2] ?? '', 16);
  switch (match[1]) {
    case 'G':
      return { kind: 'hello', version: value };
    case 'F':
      return { kind: 'filled', bytes: value };
    case 'C':
      return { kind: 'counter', value };
    default:
      return { kind: 'diskError', status: value };
  }
}

/** The counter of a `C=XXXXXXXX` line, or `undefined` for any other line. */
export function parseCounterLine(line: string): number | undefined {
  const match = SERIAL_FORMAT.counterLine.exec(stripLineEnd(line));
  return match ? Number.parseInt(match[1] ?? '', 16) : undefined;
}

/** Formats a counter the way the guest prints it (without the line end). */
export function formatCounterLine(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`counter must be a u32, got ${value}`);
  }
  return `C=${value.toString(16).toUpperCase().padStart(8, '0')}`;
}

/**
 * Splits a byte stream into guest lines. Lines end only at CR LF, so an echoed CR or LF
 * (`E=\r` + CR LF) stays one line.
 */
export class SerialLineSplitter {
  private pending = '';

  /** Feeds a chunk (a Buffer/Uint8Array is decoded as Latin-1); returns completed lines. */
  push(chunk: string | Uint8Array): string[] {
    this.pending += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('latin1');
    const lines: string[] = [];
    for (;;) {
      const end = this.pending.indexOf('\r\n');
      if (end < 0) break;
      lines.push(this.pending.slice(0, end));
      this.pending = this.pending.slice(end + 2);
    }
    return lines;
  }

  /** Text received after the last CR LF. */
  get rest(): string {
    return this.pending;
  }
}
