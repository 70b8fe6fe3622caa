/**
 * QEMU's JSON output format, byte for byte: `, ` and `: ` separators, strings escaped like
 * QEMU's JSON writer (every code point outside printable ASCII as `\uXXXX`, upper-case hex,
 * surrogate pairs beyond the BMP), doubles as C's `%.17g`, and object keys in the order
 * QEMU's `QDict` iterates them: by hash bucket, newest first within a bucket.
 */
import { isDict, QemuFloat, RawJson } from './values.js';

/** UTF-8 bytes without Node's Buffer (the fake also runs in a page). */
const utf8 = new TextEncoder();

const BUCKETS = 512;
const bucketCache = new Map<string, number>();

/** The QDict bucket of a key (QEMU hashes the key's bytes, tdb/gdbm style). */
export function qdictBucket(key: string): number {
  let cached = bucketCache.get(key);
  if (cached !== undefined) return cached;
  const bytes = utf8.encode(key);
  let v = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    v = (v + ((bytes[i]! << ((i * 5) % 24)) >>> 0)) >>> 0;
  }
  cached = ((Math.imul(1103515243, v) + 12345) >>> 0) % BUCKETS;
  if (bucketCache.size < 10_000) bucketCache.set(key, cached);
  return cached;
}

const orderCache = new Map<string, readonly string[]>();

/**
 * The wire order of keys inserted in `keys` order: ascending bucket; inside a bucket the
 * last inserted comes first (QEMU prepends to the bucket's list).
 */
export function qdictOrder(keys: readonly string[]): readonly string[] {
  if (keys.length < 2) return keys;
  const signature = keys.join('\u0000');
  const cached = orderCache.get(signature);
  if (cached) return cached;
  const order = keys
    .map((key, index) => ({ key, index, bucket: qdictBucket(key) }))
    .sort((a, b) => a.bucket - b.bucket || b.index - a.index)
    .map((e) => e.key);
  if (orderCache.size < 5_000) orderCache.set(signature, order);
  return order;
}

const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

/** A string literal as QEMU writes it. */
export function quoteString(s: string): string {
  if (PLAIN.test(s)) return `"${s}"`;
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    switch (c) {
      case 0x22:
        out += '\\"';
        continue;
      case 0x5c:
        out += '\\\\';
        continue;
      case 0x08:
        out += '\\b';
        continue;
      case 0x0c:
        out += '\\f';
        continue;
      case 0x0a:
        out += '\\n';
        continue;
      case 0x0d:
        out += '\\r';
        continue;
      case 0x09:
        out += '\\t';
        continue;
    }
    if (c >= 0x20 && c < 0x7f) {
      out += s[i];
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += `\\u${hex4(c)}\\u${hex4(d)}`;
        i++;
        continue;
      }
      out += '\\uFFFD'; // a lone surrogate is not valid UTF-8; QEMU writes U+FFFD
      continue;
    }
    if (c >= 0xdc00 && c <= 0xdfff) {
      out += '\\uFFFD';
      continue;
    }
    out += `\\u${hex4(c)}`;
  }
  return `${out}"`;
}

/** C's `printf("%.17g", x)` (glibc spelling of infinities and NaN). */
export function formatDouble(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Number.POSITIVE_INFINITY) return 'inf';
  if (x === Number.NEGATIVE_INFINITY) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const exp = x.toExponential(16); // 17 significant digits, correctly rounded
  const e = exp.indexOf('e');
  const exponent = Number(exp.slice(e + 1));
  if (exponent < -4 || exponent >= 17) {
    let mantissa = exp.slice(0, e);
    if (mantissa.includes('.')) mantissa = mantissa.replace(/0+$/, '').replace(/\.$/, '');
    const sign = exponent < 0 ? '-' : '+';
    const digits = String(Math.abs(exponent)).padStart(2, '0');
    return `${mantissa}e${sign}${digits}`;
  }
  let fixed = x.toFixed(16 - exponent);
  if (fixed.includes('.')) fixed = fixed.replace(/0+$/, '').replace(/\.$/, '');
  return fixed;
}

function formatNumber(n: number): string {
  if (Number.isSafeInteger(n)) return Object.is(n, -0) ? '0' : String(n);
  if (Number.isInteger(n)) return BigInt(n).toString(); // an int64 that arrived rounded
  return formatDouble(n);
}

/**
 * Serialises a value like QEMU. Objects are treated as QDicts built in the object's own key
 * order (so collisions resolve like QEMU when callers build objects in QAPI member order);
 * `undefined` members are left out.
 */
export function writeQemuJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return quoteString(value);
    case 'number':
      return formatNumber(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return value.toString();
    case 'undefined':
      return 'null';
  }
  if (value === null) return 'null';
  if (value instanceof RawJson) return value.text;
  if (value instanceof QemuFloat) return formatDouble(value.value);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ', ';
      out += writeQemuJson(value[i]);
    }
    return `${out}]`;
  }
  if (isDict(value)) {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined);
    if (keys.length === 0) return '{}';
    const order = qdictOrder(keys);
    let out = '{';
    for (let i = 0; i < order.length; i++) {
      const key = order[i]!;
      if (i > 0) out += ', ';
      out += `${quoteString(key)}: ${writeQemuJson(value[key])}`;
    }
    return `${out}}`;
  }
  return 'null';
}

/** One line as QEMU's monitor sends it (`\r\n`-terminated). */
export function qemuLine(value: unknown): string {
  return `${writeQemuJson(value)}\r\n`;
}

/**
 * QEMU's formatting with the keys in the order given — for text that already is in wire
 * order (captured replies, libvirt recordings), where re-deriving QDict order could swap keys
 * that share a hash bucket.
 */
export function writeOrderedJson(value: unknown): string {
  if (Array.isArray(value)) {
    return value.length === 0 ? '[]' : `[${value.map(writeOrderedJson).join(', ')}]`;
  }
  if (isDict(value)) {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined);
    if (keys.length === 0) return '{}';
    return `{${keys.map((k) => `${quoteString(k)}: ${writeOrderedJson(value[k])}`).join(', ')}}`;
  }
  return writeQemuJson(value);
}
