/**
 * `qmpkit vm init`: the commented example configuration, and writing it without ever
 * replacing a file the user has unless told to.
 */
import { writeFile } from 'node:fs/promises';
import { VmInitError } from '../errors.js';

/** The image file the example boots from, relative to the configuration file. */
export const EXAMPLE_DISK = 'disk.qcow2';

/**
 * A small PC that `qmpkit vm start` accepts as written once its disk image exists. JSON
 * with comments (read by `readVmConfig`); every value is one `@qmpkit/devices` knows.
 */
export const EXAMPLE_CONFIG = `// A qmpkit VM configuration: JSON with comments (// and /* */) and trailing commas.
// Start it with:   qmpkit vm start THIS_FILE --dir VM_DIR
// The VM directory holds the supervisor's control socket, state file, log and snapshots.
{
  // The document header: leave these two as they are.
  "format": "qmpkit-devices/vm-config",
  "version": 1,
  "config": {
    // A versioned machine type keeps the guest's hardware (and its snapshots) stable
    // across QEMU upgrades. "pc-q35-7.2" is the PCIe alternative.
    "machine": { "type": "pc-i440fx-7.2" },
    // Accelerators in order of preference: KVM when /dev/kvm is usable, else TCG
    // (emulation, slower). \`vm start --accel NAME\` overrides this list.
    "accel": ["kvm", "tcg"],
    // Sizes are in bytes: 134217728 is 128 MiB.
    "memory": { "size": 134217728 },
    "smp": { "cpus": 1 },
    // The first serial port's output goes nowhere here; \`vm start --console ser0\`
    // keeps it (and its unread text goes into snapshots).
    "chardevs": [{ "id": "ser0", "backend": { "type": "null", "data": {} } }],
    // Block nodes, from the host file up. A relative file name is resolved against the
    // directory of this configuration file. Create the image first, e.g.:
    //   qemu-img create -f qcow2 ${EXAMPLE_DISK} 1G
    // (a blank disk starts fine; the firmware then finds nothing to boot).
    "blockdevs": [
      { "driver": "file", "node-name": "disk0-file", "filename": "${EXAMPLE_DISK}" },
      { "driver": "qcow2", "node-name": "disk0", "file": "disk0-file" },
    ],
    // Guest devices: the disk on the first IDE bus (booted first) and a serial port.
    "devices": [
      { "driver": "ide-hd", "id": "boot0", "drive": "disk0", "bus": "ide.0", "bootindex": 0 },
      { "driver": "isa-serial", "id": "com1", "chardev": "ser0" },
    ],
  },
}
`;

/**
 * Writes the example to `file`. Without `force` an existing file is left alone and a
 * `VmInitError` (code `EEXIST`) says so; the check and the write are one `open` (`wx`), so
 * a file that appears in between is not replaced either.
 */
export async function writeExampleConfig(file: string, force: boolean): Promise<void> {
  try {
    await writeFile(file, EXAMPLE_CONFIG, { flag: force ? 'w' : 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'EEXIST'
        ? `${file} exists; not replacing it (use --force to overwrite)`
        : `cannot write ${file}: ${error instanceof Error ? error.message : String(error)}`;
    throw new VmInitError(file, code, reason, { cause: error });
  }
}
