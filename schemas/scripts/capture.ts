/**
 * Capture the introspection schema of a QEMU binary into schemas/:
 *   pnpm schemas:capture [--qemu qemu-system-x86_64 | PATH | 10.0] [--out schemas]
 * `--qemu 10.0` takes a release fetched into <repo>/.cache with `pnpm qemu:fetch 10.0` and
 * runs it with its own data and module dirs (machine's `QemuBinary`).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { captureSchema } from '@qmpkit/codegen';
import {
  qemuBinaryArgs,
  qemuBinaryEnv,
  readQemuCacheManifest,
  resolveQemuBinary,
} from '@qmpkit/machine';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const { values } = parseArgs({
  options: {
    qemu: { type: 'string', default: 'qemu-system-x86_64' },
    out: { type: 'string', default: path.join(import.meta.dirname, '..') },
  },
});
try {
  const cacheDir = path.join(repoRoot, '.cache');
  const binary = await resolveQemuBinary(values.qemu, { cacheDir });
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
} catch (error) {
  console.error(`capture failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
