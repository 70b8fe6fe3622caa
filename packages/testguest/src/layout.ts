/**
 * Where things live: in the boot sector, in guest RAM, on the disk and on the serial line.
 * These numbers are the contract between the guest program (`program.ts`) and the host-side
 * helpers, and they are part of the public API (`GUEST_LAYOUT`).
 */

/** Size of a sector and of the boot sector. */
export const SECTOR_SIZE = 512;
/** Where the BIOS loads the boot sector (0000:7C00). */
export const LOAD_ADDRESS = 0x7c00;
/** Offset of the 0x55 0xAA boot signature. */
export const SIGNATURE_OFFSET = 0x1fe;

/** Guest RAM: the dword counter, incremented once per loop iteration. */
export const COUNTER_ADDRESS = 0x500;
/** Guest RAM: the BIOS boot drive number (DL at entry), one byte. */
export const BOOT_DRIVE_ADDRESS = 0x504;
/** Guest RAM: number of 4 KiB pages written by the RAM fill, dword. */
export const FILLED_PAGES_ADDRESS = 0x508;
/** Guest RAM: one 24-byte E820 entry returned by int 15h/E820h. */
export const E820_BUFFER_ADDRESS = 0x600;
/** Guest RAM: the 512-byte buffer written to disk as the counter record. */
export const RECORD_BUFFER_ADDRESS = 0x800;
/** Guest RAM: the stack grows down from here (just below the boot sector). */
export const STACK_TOP = 0x7c00;

/** Boot sector: offset of the 14-byte configuration block the program reads at run time. */
export const CONFIG_OFFSET = 0x1f0;
/** Config block: 4 ASCII bytes identifying a test-guest boot sector. */
export const CONFIG_MAGIC = 'QTG1';
/** Config block: offset of the flags byte (relative to the boot sector). */
export const CONFIG_FLAGS_OFFSET = CONFIG_OFFSET + 4;
/** Config block: offset of the u32 sleep interval in microseconds (int 15h/86h CX:DX). */
export const CONFIG_INTERVAL_OFFSET = CONFIG_OFFSET + 8;
/** Flags bit 0: fill RAM above 1 MiB before the loop starts. */
export const FLAG_FILL_RAM = 0x01;
/**
 * All flag bits: fill RAM above 1 MiB on every loop iteration (the guest shifts the flags byte
 * right arithmetically once per iteration and fills when a 1 falls out; 0xFF never runs out).
 */
export const FLAG_DIRTY_RAM = 0xff;

/** Disk: the LBA the guest rewrites on every iteration. */
export const RECORD_LBA = 1;
/** Disk record: ASCII magic at offset 0. */
export const RECORD_MAGIC = 'SNAP';
/** Disk record: offset of the little-endian u32 counter. */
export const RECORD_COUNTER_OFFSET = 4;

/** COM1 base I/O port. */
export const COM1_PORT = 0x3f8;

/**
 * i440fx (`-machine pc`) ACPI PCI hot-plug registers (QEMU's PIIX4 `acpi-pci-hotplug`):
 * a read of the "down" register gives the slots QEMU asks the OS to eject (a `device_del`
 * in progress), a write of a slot mask to the "eject" register completes the removal. The
 * guest polls them every iteration, so `device_del` of a PCI device completes without an OS.
 * Bus select (0xAE10) stays at its reset value 0, the root bus.
 */
export const ACPI_PCIHP_DOWN_PORT = 0xae04;
export const ACPI_PCIHP_EJECT_PORT = 0xae08;

/** Value printed on the `G=` line at boot; bumped when the layout above changes. */
export const GUEST_FORMAT_VERSION = 1;

/** Default sleep between iterations. */
export const DEFAULT_INTERVAL_MS = 50;
/** Default size of the raw disk image. */
export const DEFAULT_DISK_SIZE = 1024 * 1024;

/**
 * The RAM fill pattern: every dword of the 4 KiB page at physical address `p` (at or above
 * 1 MiB) holds `p * 0x9E3779B1 mod 2^32` (Knuth's multiplicative hash of the page address).
 * The multiplier is odd, so the value is never zero for a non-zero address and no two pages
 * below 4 GiB are equal: zero-page detection and page dedup cannot shrink a snapshot of it.
 * (Within a page the value repeats, so a compressor can; see docs/decisions.md for why the
 * fill is per page rather than per dword.)
 */
export const FILL_MULTIPLIER = 0x9e3779b1;
/** Granularity of the fill pattern. */
export const FILL_PAGE_SIZE = 4096;

/** The value the RAM fill stores at physical address `address` (see `FILL_MULTIPLIER`). */
export function fillPatternAt(address: number): number {
  const page = (address >>> 0) - ((address >>> 0) % FILL_PAGE_SIZE);
  return Math.imul(page, FILL_MULTIPLIER) >>> 0;
}

/** Everything above in one object, for consumers that want to document or assert it. */
export const GUEST_LAYOUT = {
  sectorSize: SECTOR_SIZE,
  loadAddress: LOAD_ADDRESS,
  counterAddress: COUNTER_ADDRESS,
  bootDriveAddress: BOOT_DRIVE_ADDRESS,
  filledPagesAddress: FILLED_PAGES_ADDRESS,
  configOffset: CONFIG_OFFSET,
  configMagic: CONFIG_MAGIC,
  configFlagsOffset: CONFIG_FLAGS_OFFSET,
  configIntervalOffset: CONFIG_INTERVAL_OFFSET,
  flagFillRam: FLAG_FILL_RAM,
  flagDirtyRam: FLAG_DIRTY_RAM,
  recordLba: RECORD_LBA,
  recordMagic: RECORD_MAGIC,
  recordCounterOffset: RECORD_COUNTER_OFFSET,
  com1Port: COM1_PORT,
  acpiPciHotplugDownPort: ACPI_PCIHP_DOWN_PORT,
  acpiPciHotplugEjectPort: ACPI_PCIHP_EJECT_PORT,
  formatVersion: GUEST_FORMAT_VERSION,
  fillMultiplier: FILL_MULTIPLIER,
  fillPageSize: FILL_PAGE_SIZE,
} as const;
