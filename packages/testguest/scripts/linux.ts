/**
 * Build the Linux test guest into <repo>/.cache/linux-guest/<key>/ (cached):
 *   pnpm testguest:linux [--agent bookworm|bookworm-backports] [--compression none|gzip] [--refresh]
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { DebianSuite } from '@qmpkit/debian';
import { buildLinuxGuest } from '../src/linux/build.js';

const repoRoot = path.resolve(import.meta.dirname, '../../..');
const { values } = parseArgs({
  options: {
    agent: { type: 'string', default: 'bookworm' },
    compression: { type: 'string', default: 'none' },
    refresh: { type: 'boolean', default: false },
  },
});
try {
  const started = performance.now();
  const guest = await buildLinuxGuest({
    cacheDir: path.join(repoRoot, '.cache'),
    agentSuite: values.agent as DebianSuite,
    compression: values.compression as 'none' | 'gzip',
    refresh: values.refresh,
    onProgress: (line) => console.error(line),
  });
  const m = guest.manifest;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `${guest.cached ? 'cached' : `built in ${seconds} s`}: kernel ${m.kernelRelease} (${(m.kernelBytes / 1e6).toFixed(1)} MB), initrd ${(m.initrdBytes / 1e6).toFixed(1)} MB (${m.compression}), qemu-ga from ${m.agentSuite} ${m.packages.find((p) => p.name === 'qemu-guest-agent')?.version}`,
  );
  console.log(`  modules: ${m.modules.join(' ')}`);
  console.log(`  libraries: ${m.libraries.join(' ')}`);
  console.log(`  ${path.relative(process.cwd(), guest.dir)}`);
} catch (error) {
  console.error(`testguest:linux: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
