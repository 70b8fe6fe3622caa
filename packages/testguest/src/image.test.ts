import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { disassemble, ndisasmSkipReason } from './asm/ndisasm.test-support.js';
import { isGuestImageError, isGuestOptionsError } from './errors.js';
import {
  bootSectorListing,
  buildBootSector,
  buildDiskImage,
  decodeCounterRecord,
  readBootSectorConfig,
  readCounterFromDisk,
} from './image.js';
import {
  CONFIG_FLAGS_OFFSET,
  CONFIG_INTERVAL_OFFSET,
  CONFIG_OFFSET,
  DEFAULT_DISK_SIZE,
  fillPatternAt,
  LOAD_ADDRESS,
} from './layout.js';
import { emitProgram } from './program.js';

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('buildBootSector', () => {
  it('is 512 bytes ending in the 0x55 0xAA signature', () => {
    const sector = buildBootSector();
    expect(sector).toHaveLength(512);
    expect([sector[510], sector[511]]).toEqual([0x55, 0xaa]);
  });

  it('starts with cli; xor ax,ax (the entry code)', () => {
    expect([...buildBootSector().subarray(0, 3)]).toEqual([0xfa, 0x31, 0xc0]);
  });

  it('is deterministic, and changes only in the config block between options', () => {
    const a = buildBootSector();
    expect(sha256(buildBootSector())).toBe(sha256(a));
    const b = buildBootSector({ fillRam: true, intervalMs: 7 });
    const differing = [...a.keys()].filter((i) => a[i] !== b[i]);
    expect(differing.length).toBeGreaterThan(0);
    for (const i of differing) {
      expect(i).toBeGreaterThanOrEqual(CONFIG_OFFSET);
      expect(i).toBeLessThan(510);
    }
  });

  it('puts the fillRam flag and the interval (µs, little-endian) in the config block', () => {
    const plain = buildBootSector();
    expect(plain[CONFIG_FLAGS_OFFSET]).toBe(0);
    expect([...plain.subarray(CONFIG_INTERVAL_OFFSET, CONFIG_INTERVAL_OFFSET + 4)]).toEqual([
      0x50, 0xc3, 0x00, 0x00,
    ]); // 50 000 µs
    const filled = buildBootSector({ fillRam: true, intervalMs: 1.5 });
    expect(filled[CONFIG_FLAGS_OFFSET]).toBe(1);
    expect([...filled.subarray(CONFIG_INTERVAL_OFFSET, CONFIG_INTERVAL_OFFSET + 4)]).toEqual([
      0xdc, 0x05, 0x00, 0x00,
    ]); // 1 500 µs
    expect(readBootSectorConfig(filled)).toEqual({
      fillRam: true,
      dirtyRam: false,
      intervalMs: 1.5,
      flags: 1,
      intervalMicros: 1500,
    });
    expect(readBootSectorConfig(plain)).toMatchObject({ fillRam: false, intervalMs: 50 });
    // Every bit set: the guest's arithmetic shift never runs out of fills.
    const dirty = buildBootSector({ dirtyRam: true });
    expect(dirty[CONFIG_FLAGS_OFFSET]).toBe(0xff);
    expect(readBootSectorConfig(dirty)).toMatchObject({ dirtyRam: true, flags: 0xff });
    // @ts-expect-error -- testing the run-time check
    expect(() => buildBootSector({ dirtyRam: 'yes' })).toThrow(/dirtyRam/);
  });

  it('accepts interval 0 and the u32 maximum, rejects the rest', () => {
    expect(readBootSectorConfig(buildBootSector({ intervalMs: 0 })).intervalMicros).toBe(0);
    expect(
      readBootSectorConfig(buildBootSector({ intervalMs: 4_294_967.295 })).intervalMicros,
    ).toBe(0xffffffff);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, 4_294_968]) {
      try {
        buildBootSector({ intervalMs: bad });
        expect.unreachable();
      } catch (error) {
        expect(isGuestOptionsError(error)).toBe(true);
        expect(error).toMatchObject({ option: 'intervalMs' });
      }
    }
  });

  it('has stable bytes (update this hash deliberately when the guest program changes)', () => {
    expect(sha256(buildBootSector())).toMatchInlineSnapshot(
      `"04c71e3e9aaf5b120d163c0572b1a4c02c023afbb454e9e33ac575debd8ae04d"`,
    );
  });

  it('keeps code and data clear of the config block', () => {
    const a = emitProgram({ flags: 0, intervalMicros: 0 });
    expect(a.addressOf('config')).toBe(LOAD_ADDRESS + CONFIG_OFFSET);
    expect(a.addressOf('code_end')).toBeLessThan(a.addressOf('config'));
  });

  it('has a listing with a comment on every instruction', () => {
    const listing = bootSectorListing();
    expect(listing).toContain('int 0x13');
    const a = emitProgram({ flags: 0, intervalMicros: 0 });
    for (const line of a.listing()) expect(line.comment.length).toBeGreaterThan(0);
  });
});

const noNdisasm = ndisasmSkipReason();
describe.skipIf(noNdisasm !== undefined)(
  `boot sector vs ndisasm${noNdisasm ? ` (skipped: ${noNdisasm})` : ''}`,
  () => {
    it('disassembles to exactly the instructions of the listing', () => {
      const a = emitProgram({ flags: 1, intervalMicros: 50_000 });
      const code = a.assemble().subarray(0, a.addressOf('code_end') - LOAD_ADDRESS);
      const rows = disassemble(code, LOAD_ADDRESS);
      const mine = a
        .listing()
        .filter((l) => l.instruction !== undefined)
        .map((l) => ({
          address: l.address,
          hex: Buffer.from(l.bytes).toString('hex').toUpperCase(),
          text: l.instruction,
        }));
      expect(rows).toEqual(mine);
    });
  },
);

describe('buildDiskImage', () => {
  it('is 1 MiB by default: boot sector, empty record sector, zeros', () => {
    const image = buildDiskImage({ fillRam: true });
    expect(image).toHaveLength(DEFAULT_DISK_SIZE);
    expect(Buffer.from(image.subarray(0, 512)).equals(buildBootSector({ fillRam: true }))).toBe(
      true,
    );
    expect(image.subarray(512).every((b) => b === 0)).toBe(true);
    expect(readCounterFromDisk(image)).toBeUndefined();
  });

  it('honours sizeBytes and rejects sizes that are not whole sectors or too small', () => {
    expect(buildDiskImage({ sizeBytes: 1024 })).toHaveLength(1024);
    for (const bad of [512, 1000, 1536.5, -1024]) {
      expect(() => buildDiskImage({ sizeBytes: bad })).toThrowError(/sizeBytes/);
    }
  });
});

describe('counter records', () => {
  function imageWithRecord(counter: number): Uint8Array {
    const image = buildDiskImage({ sizeBytes: 4096 });
    image.set([0x53, 0x4e, 0x41, 0x50], 512); // "SNAP"
    new DataView(image.buffer).setUint32(516, counter, true);
    return image;
  }

  it('reads the counter after the SNAP magic at LBA 1', () => {
    expect(readCounterFromDisk(imageWithRecord(0x1234_5678))).toBe(0x1234_5678);
    expect(readCounterFromDisk(imageWithRecord(0xffff_ffff))).toBe(0xffff_ffff);
    expect(decodeCounterRecord(imageWithRecord(7).subarray(512, 1024))).toBe(7);
  });

  it('returns undefined without the magic and throws on short input', () => {
    expect(decodeCounterRecord(new Uint8Array(512))).toBeUndefined();
    expect(() => readCounterFromDisk(new Uint8Array(1000))).toThrowError(/at least 1024/);
    try {
      decodeCounterRecord(new Uint8Array(4));
      expect.unreachable();
    } catch (error) {
      expect(isGuestImageError(error)).toBe(true);
    }
  });

  it('refuses to read a config from something that is not a test-guest sector', () => {
    expect(() => readBootSectorConfig(new Uint8Array(512))).toThrowError(/signature/);
    const other = new Uint8Array(512);
    other[510] = 0x55;
    other[511] = 0xaa;
    expect(() => readBootSectorConfig(other)).toThrowError(/config block/);
  });
});

describe('fillPatternAt', () => {
  it('is one non-zero value per 4 KiB page, different for every page', () => {
    expect(fillPatternAt(0x100000)).toBe(Math.imul(0x100000, 0x9e3779b1) >>> 0);
    expect(fillPatternAt(0x100ffc)).toBe(fillPatternAt(0x100000));
    const seen = new Set<number>();
    for (let page = 0x100000; page < 0x100000 + 4096 * 4096; page += 4096) {
      const value = fillPatternAt(page);
      expect(value).not.toBe(0);
      seen.add(value);
    }
    expect(seen.size).toBe(4096);
  });
});
