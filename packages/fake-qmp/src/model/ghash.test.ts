import { describe, expect, it } from 'vitest';
import { GHashTableOrder, gStrHash } from './ghash.js';

describe('GLib hash table order (as QEMU 7.2 shows it)', () => {
  it('hashes like g_str_hash', () => {
    expect(gStrHash('')).toBe(5381);
    expect(gStrHash('a')).toBe((5381 * 33 + 97) >>> 0);
  });

  it('matches qom-list /machine/peripheral measured on QEMU 7.2 (children, before reversal)', () => {
    const t = new GHashTableOrder(['usb', 'tab1', 'kbd1', 'mouse1', 'net1']);
    expect(t.keysInOrder()).toEqual(['tab1', 'usb', 'kbd1', 'net1', 'mouse1']);
    t.remove('kbd1');
    expect(t.keysInOrder()).toEqual(['tab1', 'usb', 'net1', 'mouse1']);
  });

  it('survives growth and shrinking with every key present once', () => {
    const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
    const t = new GHashTableOrder(keys);
    expect(new Set(t.keysInOrder())).toEqual(new Set(keys));
    for (const k of keys.slice(0, 190)) t.remove(k);
    expect(t.keysInOrder().sort()).toEqual(keys.slice(190).sort());
  });
});
