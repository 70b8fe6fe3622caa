/**
 * QEMU's `key=value,key=value` option syntax (QemuOpts / keyval), for the options QEMU 7.2
 * does not accept as JSON: `-machine`, `-accel`, `-m`, `-smp`, `-boot`, `-chardev`, `-mon`.
 *
 * In a value, a comma is written as two commas; nothing else is special after the first `=`
 * of a pair (`path=/a,,b=c` is the path `/a,b=c`). Keys cannot be escaped at all, so they
 * are checked instead.
 */
import type { Scalar } from './model.js';

/** Escapes a value for a keyval option: every `,` becomes `,,`. */
export function escapeValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** Keys QEMU's option parsers accept (letters, digits, `-`, `_`, `.`), none empty. */
const KEY = /^[A-Za-z0-9_.-]+$/;

export function isValidKey(key: string): boolean {
  return KEY.test(key);
}

/** Formats a scalar the way QemuOpts reads it: booleans as `on`/`off`. */
export function formatScalar(value: Scalar): string {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`cannot write ${value} as an option value`);
    return Number.isInteger(value) ? BigInt(value).toString() : String(value);
  }
  return value;
}

/**
 * Formats `key=value` pairs (in the order given), optionally after a leading implied value
 * (`tcg,thread=single`). Values are escaped; keys must be valid (throws RangeError).
 */
export function formatKeyval(
  pairs: Iterable<readonly [string, Scalar | undefined]>,
  implied?: string,
): string {
  const parts: string[] = [];
  if (implied !== undefined) parts.push(escapeValue(implied));
  for (const [key, value] of pairs) {
    if (value === undefined) continue;
    if (!isValidKey(key)) throw new RangeError(`'${key}' cannot be an option key`);
    parts.push(`${key}=${escapeValue(formatScalar(value))}`);
  }
  return parts.join(',');
}

/**
 * Splits a keyval string back into pairs, undoing `,,` escaping (the inverse of
 * `formatKeyval` for strings it produced; used by tests and for reading injected args).
 */
export function parseKeyval(text: string): Array<[string, string]> {
  const segments: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i];
    if (ch === ',') {
      if (text[i + 1] === ',') {
        current += ',';
        i += 1;
        continue;
      }
      segments.push(current);
      current = '';
      continue;
    }
    current += ch;
  }
  segments.push(current);
  return segments.map((segment) => {
    const eq = segment.indexOf('=');
    if (eq > 0 && isValidKey(segment.slice(0, eq)))
      return [segment.slice(0, eq), segment.slice(eq + 1)];
    return ['', segment];
  });
}

/** Writes a byte count with the largest suffix that divides it exactly (`128M`, `1G`, `4097B`). */
export function formatSize(bytes: number): string {
  const units: ReadonlyArray<readonly [string, number]> = [
    ['T', 2 ** 40],
    ['G', 2 ** 30],
    ['M', 2 ** 20],
    ['K', 2 ** 10],
  ];
  for (const [suffix, factor] of units) {
    if (bytes >= factor && bytes % factor === 0) return `${BigInt(bytes / factor)}${suffix}`;
  }
  return `${BigInt(Math.trunc(bytes))}B`;
}
