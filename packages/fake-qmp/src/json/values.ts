/**
 * Values as QEMU's JSON parser produces them. Plain JavaScript values cover almost
 * everything; two wrappers keep what JavaScript numbers cannot say:
 * - `QemuFloat`: a number QEMU parsed as a double (`1.0`, `1e2`), which QEMU refuses where
 *   an integer is expected and prints with `%.17g`;
 * - `bigint`: an integer beyond 2^53 that QEMU keeps exactly (int64 or uint64).
 * `RawJson` is text already in QEMU's format (used to serve captured replies verbatim).
 */

export class QemuFloat {
  constructor(readonly value: number) {}
}

export class RawJson {
  constructor(readonly text: string) {}
}

export type QemuValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | QemuFloat
  | RawJson
  | readonly QemuValue[]
  | { readonly [key: string]: QemuValue | undefined };

export type QemuDict = { readonly [key: string]: QemuValue | undefined };

export function isDict(value: unknown): value is QemuDict {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof QemuFloat) &&
    !(value instanceof RawJson)
  );
}

/** Converts parser output to plain JSON-like values (floats unwrapped, safe bigints to numbers). */
export function toPlain(value: unknown): unknown {
  if (value instanceof QemuFloat) return value.value;
  if (typeof value === 'bigint') {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : value;
  }
  if (Array.isArray(value)) return value.map(toPlain);
  if (isDict(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) out[key] = toPlain(value[key]);
    return out;
  }
  return value;
}
