/**
 * Iteration order of GLib's `GHashTable` with string keys (`g_str_hash`), as in GLib 2.74
 * (Debian 12, which QEMU 7.2 links against). QEMU shows this order in a few places: which
 * leftover argument it names as unexpected, and the order of `qom-list` children. Open
 * addressing with quadratic probing, `(hash * 11) % prime` home slots, tombstones on
 * removal, and GLib's grow/shrink thresholds; rehashing follows GLib's in-place algorithm.
 */

/** UTF-8 bytes without Node's Buffer (the fake also runs in a page). */
const utf8 = new TextEncoder();

const MIN_SHIFT = 3;
const PRIMES = [
  1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
  262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859, 134217689,
  268435399, 536870909, 1073741789, 2147483647,
];
const UNUSED = 0;
const TOMBSTONE = 1;

/** GLib's `g_str_hash` (djb2 over *signed* chars of the UTF-8 bytes). */
export function gStrHash(key: string): number {
  const bytes = utf8.encode(key);
  let h = 5381;
  for (const b of bytes) {
    const signed = b > 127 ? b - 256 : b;
    h = (Math.imul(h, 33) + signed) >>> 0;
  }
  return h;
}

export class GHashTableOrder {
  private size = 1 << MIN_SHIFT;
  private mod = PRIMES[MIN_SHIFT]!;
  private mask = this.size - 1;
  private hashes: number[] = new Array<number>(this.size).fill(UNUSED);
  private keys: (string | undefined)[] = new Array<string | undefined>(this.size).fill(undefined);
  private nnodes = 0;
  private noccupied = 0;

  constructor(keys: Iterable<string> = []) {
    for (const key of keys) this.insert(key);
  }

  private index(hash: number): number {
    return (Math.imul(hash, 11) >>> 0) % this.mod; // guint arithmetic wraps at 2^32
  }

  private lookup(key: string): { index: number; hash: number } {
    let hash = gStrHash(key);
    if (hash < 2) hash = 2;
    let index = this.index(hash);
    let step = 0;
    let tombstone = -1;
    while (this.hashes[index] !== UNUSED) {
      const h = this.hashes[index]!;
      if (h === hash && this.keys[index] === key) return { index, hash };
      if (h === TOMBSTONE && tombstone < 0) tombstone = index;
      step++;
      index = (index + step) & this.mask;
    }
    return { index: tombstone >= 0 ? tombstone : index, hash };
  }

  insert(key: string): void {
    const { index, hash } = this.lookup(key);
    const old = this.hashes[index]!;
    if (old >= 2) return; // already present (value replaced, order unchanged)
    this.hashes[index] = hash;
    this.keys[index] = key;
    this.nnodes++;
    if (old === UNUSED) {
      this.noccupied++;
      this.maybeResize();
    }
  }

  remove(key: string): void {
    const { index } = this.lookup(key);
    if ((this.hashes[index] ?? 0) < 2 || this.keys[index] !== key) return;
    this.hashes[index] = TOMBSTONE;
    this.keys[index] = undefined;
    this.nnodes--;
    this.maybeResize();
  }

  /** Keys in iteration order. */
  keysInOrder(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.size; i++) if (this.hashes[i]! >= 2) out.push(this.keys[i]!);
    return out;
  }

  private maybeResize(): void {
    const { size, noccupied, nnodes } = this;
    if (
      (size > nnodes * 4 && size > 1 << MIN_SHIFT) ||
      size <= noccupied + Math.floor(noccupied / 16)
    )
      this.resize();
  }

  private resize(): void {
    const oldSize = this.size;
    let n = Math.trunc(this.nnodes * 1.333);
    let shift = 0;
    while (n) {
      n >>= 1;
      shift++;
    }
    shift = Math.max(shift, MIN_SHIFT);
    this.size = 1 << shift;
    this.mod = PRIMES[shift]!;
    this.mask = this.size - 1;
    const length = Math.max(oldSize, this.size);
    while (this.hashes.length < length) {
      this.hashes.push(UNUSED);
      this.keys.push(undefined);
    }
    const relocated = new Array<boolean>(length).fill(false);
    for (let i = 0; i < oldSize; i++) {
      let hash = this.hashes[i]!;
      if (hash < 2) {
        this.hashes[i] = UNUSED;
        continue;
      }
      if (relocated[i]) continue;
      this.hashes[i] = UNUSED;
      let key = this.keys[i];
      this.keys[i] = undefined;
      for (;;) {
        let slot = this.index(hash);
        let step = 0;
        while (relocated[slot]) {
          step++;
          slot = (slot + step) & this.mask;
        }
        relocated[slot] = true;
        const replaced = this.hashes[slot]!;
        const replacedKey = this.keys[slot];
        this.hashes[slot] = hash;
        this.keys[slot] = key;
        if (replaced < 2) break;
        hash = replaced;
        key = replacedKey;
      }
    }
    this.hashes.length = this.size;
    this.keys.length = this.size;
    this.noccupied = this.nnodes;
  }
}
