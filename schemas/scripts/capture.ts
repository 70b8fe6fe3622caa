/**
 * Capture the introspection schema of a QEMU binary into schemas/:
 *   pnpm schemas:capture [--qemu qemu-system-x86_64 | PATH | 10.0] [--out schemas]
 *   pnpm schemas:capture --storage-daemon [--qemu qemu-storage-daemon | PATH | 10.0]
 * `--qemu 10.0` takes a release fetched into <repo>/.cache with `pnpm qemu:fetch 10.0` and
 * runs it with its own data and module dirs (machine's `QemuBinary`). `--storage-daemon`
 * captures a `qemu-storage-daemon` (its own, smaller schema) into `schemas/qsd-<ver>/`.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { captureSchema, captureStorageDaemonSchema } from '@qmpkit/codegen';
import {
  qemuBinaryArgs,
  qemuBinaryEnv,
  readQemuCacheManifest,
  resolveQemuBinary,
  resolveStorageDaemon,
  storageDaemonEnv,
} from '@qmpkit/machine';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const { values } = parseArgs({
  options: {
    qemu: { type: 'string' },
    'storage-daemon': { type: 'boolean', default: false },
    out: { type: 'string', default: path.join(import.meta.dirname, '..') },
  },
});
try {
  const cacheDir = path.join(repoRoot, '.cache');
  if (values['storage-daemon']) {
    const daemon = await resolveStorageDaemon(values.qemu, { cacheDir });
    const manifest =
      daemon.source === 'cache' ? readQemuCacheManifest(cacheDir, daemon.release) : undefined;
    const result = await captureStorageDaemonSchema(daemon.path, values.out, {
      env: storageDaemonEnv(daemon),
      ...(manifest
        ? {
            fetchedWith: `qmpkit qemu fetch ${manifest.release} (Debian ${manifest.suite}: qemu-utils ${manifest.version})`,
          }
        : {}),
    });
    console.log(
      `captured qemu-storage-daemon ${result.version}: ${result.entries} SchemaInfo entries → ${path.relative(process.cwd(), result.dir)}`,
    );
  } else {
    const binary = await resolveQemuBinary(values.qemu ?? 'qemu-system-x86_64', { cacheDir });
    const manifest =
      binary.source === 'cache' ? readQemuCacheManifest(cacheDir, binary.release) : undefined;
    const result = await captureSchema(binary.path, values.out, {
      args: qemuBinaryArgs(binary),
      env: qemuBinaryEnv(binary),
      ...(manifest
        ? {
            fetchedWith: `qmpkit qemu fetch ${manifest.release} (Debian ${manifest.suite}: ${manifest.packages.map((p) => `${p.name} ${p.version}`).join(', ')})`,
          }
        : {}),
    });
    console.log(
      `captured QEMU ${result.version}: ${result.entries} SchemaInfo entries → ${path.relative(process.cwd(), result.dir)}`,
    );
  }
} catch (error) {
  console.error(`capture failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
