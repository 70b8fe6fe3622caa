import { formatListing } from './asm/assembler.js';
import { GuestImageError, GuestOptionsError } from './errors.js';
import {
  CONFIG_FLAGS_OFFSET,
  CONFIG_INTERVAL_OFFSET,
  CONFIG_MAGIC,
  CONFIG_OFFSET,
  DEFAULT_DISK_SIZE,
  DEFAULT_INTERVAL_MS,
  FLAG_DIRTY_RAM,
  FLAG_FILL_RAM,
  RECORD_COUNTER_OFFSET,
  RECORD_LBA,
  RECORD_MAGIC,
  SECTOR_SIZE,
  SIGNATURE_OFFSET,
} from './layout.js';
import { emitProgram, type ProgramConfig } from './program.js';

/** Options for the boot sector. */
export interface BootSectorOptions {
  /**
   * Fill every usable RAM region above 1 MiB (below 4 GiB) with non-zero, never-repeating
   * data before the loop starts, so RAM snapshots are mostly non-zero. Default `false`.
   */
  readonly fillRam?: boolean;
  /**
   * Rewrite all RAM above 1 MiB on every iteration, without end (`F=` after each pass): a guest
   * that dirties memory as fast as the CPU can store, for migration convergence tests.
   */
  readonly dirtyRam?: boolean;
  /**
   * Sleep between loop iterations, in milliseconds (rounded to whole microseconds; BIOS
   * resolution is about 1 ms). `0` loops as fast as the disk write allows. Default 50.
   */
  readonly intervalMs?: number;
}

/** Options for the disk image: the boot sector's plus the image size. */
export interface DiskImageOptions extends BootSectorOptions {
  /** Image size in bytes, a multiple of 512 and at least 1024. Default 1 MiB. */
  readonly sizeBytes?: number;
}

/** The configuration found in a boot sector's config block. */
export interface BootSectorConfig {
  readonly fillRam: boolean;
  readonly dirtyRam: boolean;
  readonly intervalMs: number;
  /** The raw flags byte. */
  readonly flags: number;
  /** The raw interval in microseconds. */
  readonly intervalMicros: number;
}

const MAX_INTERVAL_MICROS = 0xffffffff;

function programConfig(options: BootSectorOptions): ProgramConfig {
  const fillRam = options.fillRam ?? false;
  if (typeof fillRam !== 'boolean') {
    throw new GuestOptionsError('fillRam', fillRam, 'must be a boolean');
  }
  const dirtyRam = options.dirtyRam ?? false;
  if (typeof dirtyRam !== 'boolean') {
    throw new GuestOptionsError('dirtyRam', dirtyRam, 'must be a boolean');
  }
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs < 0) {
    throw new GuestOptionsError('intervalMs', intervalMs, 'must be a finite number >= 0');
  }
  const intervalMicros = Math.round(intervalMs * 1000);
  if (intervalMicros > MAX_INTERVAL_MICROS) {
    throw new GuestOptionsError(
      'intervalMs',
      intervalMs,
      `must be at most ${MAX_INTERVAL_MICROS / 1000} (the BIOS takes a u32 of microseconds)`,
    );
  }
  return { flags: dirtyRam ? FLAG_DIRTY_RAM : fillRam ? FLAG_FILL_RAM : 0, intervalMicros };
}

/**
 * Builds the 512-byte boot sector: code, data, the config block at offset 0x1F0 and the
 * 0x55 0xAA signature.
 */
export function buildBootSector(options: BootSectorOptions = {}): Uint8Array {
  const bytes = emitProgram(programConfig(options)).assemble();
  if (bytes.length !== SECTOR_SIZE) {
    throw new GuestImageError(`boot sector is ${bytes.length} bytes, expected ${SECTOR_SIZE}`);
  }
  return bytes;
}

/** The annotated assembly listing of the boot sector (for humans and debugging). */
export function bootSectorListing(options: BootSectorOptions = {}): string {
  return formatListing(emitProgram(programConfig(options)).listing());
}

/**
 * Builds a raw disk image: sector 0 is the boot sector, sector 1 is the (empty) counter
 * record, the rest is zero.
 */
export function buildDiskImage(options: DiskImageOptions = {}): Uint8Array {
  const size = options.sizeBytes ?? DEFAULT_DISK_SIZE;
  if (!Number.isSafeInteger(size) || size < 2 * SECTOR_SIZE || size % SECTOR_SIZE !== 0) {
    throw new GuestOptionsError('sizeBytes', size, 'must be a multiple of 512 and at least 1024');
  }
  const image = new Uint8Array(size);
  image.set(buildBootSector(options), 0);
  return image;
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function ascii(bytes: Uint8Array, offset: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(offset, offset + length));
}

/**
 * Reads the config block of a test-guest boot sector (or of a disk image starting with one).
 * @throws GuestImageError if the bytes are too short, lack the boot signature or the magic.
 */
export function readBootSectorConfig(bytes: Uint8Array): BootSectorConfig {
  if (bytes.length < SECTOR_SIZE) {
    throw new GuestImageError(`need at least ${SECTOR_SIZE} bytes, got ${bytes.length}`);
  }
  if (bytes[SIGNATURE_OFFSET] !== 0x55 || bytes[SIGNATURE_OFFSET + 1] !== 0xaa) {
    throw new GuestImageError('no 0x55 0xAA boot signature at offset 510');
  }
  if (ascii(bytes, CONFIG_OFFSET, 4) !== CONFIG_MAGIC) {
    throw new GuestImageError(`no '${CONFIG_MAGIC}' config block at offset ${CONFIG_OFFSET}`);
  }
  const flags = bytes[CONFIG_FLAGS_OFFSET] ?? 0;
  const intervalMicros = dataView(bytes).getUint32(CONFIG_INTERVAL_OFFSET, true);
  return {
    fillRam: (flags & FLAG_FILL_RAM) !== 0,
    dirtyRam: flags === FLAG_DIRTY_RAM,
    intervalMs: intervalMicros / 1000,
    flags,
    intervalMicros,
  };
}

/**
 * Decodes one 512-byte counter record sector: the counter, or `undefined` when the sector
 * does not start with "SNAP" (the guest has not written it yet).
 */
export function decodeCounterRecord(sector: Uint8Array): number | undefined {
  if (sector.length < RECORD_COUNTER_OFFSET + 4) {
    throw new GuestImageError(`a counter record needs 8 bytes, got ${sector.length}`);
  }
  if (ascii(sector, 0, 4) !== RECORD_MAGIC) return undefined;
  return dataView(sector).getUint32(RECORD_COUNTER_OFFSET, true);
}

/**
 * Reads the counter the guest last wrote to LBA 1 of a raw disk image (the whole image, or
 * at least its first 1024 bytes). `undefined` if the guest has not written a record yet.
 */
export function readCounterFromDisk(image: Uint8Array): number | undefined {
  const start = RECORD_LBA * SECTOR_SIZE;
  if (image.length < start + SECTOR_SIZE) {
    throw new GuestImageError(
      `need at least ${start + SECTOR_SIZE} bytes of the disk image, got ${image.length}`,
    );
  }
  return decodeCounterRecord(image.subarray(start, start + SECTOR_SIZE));
}
