/**
 * Capture the introspection schema of a QEMU binary into schemas/:
 *   pnpm schemas:capture [--qemu qemu-system-x86_64] [--out schemas]
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { captureSchema } from '@qmpkit/codegen';

const { values } = parseArgs({
  options: {
    qemu: { type: 'string', default: 'qemu-system-x86_64' },
    out: { type: 'string', default: path.join(import.meta.dirname, '..') },
  },
});
try {
  const result = await captureSchema(values.qemu, values.out);
  console.log(
    `captured QEMU ${result.version}: ${result.entries} SchemaInfo entries → ${path.relative(process.cwd(), result.dir)}`,
  );
} catch (error) {
  console.error(`capture failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
