/**
 * `qmpkit qemu fetch <release>`: download a QEMU release (e.g. 10.0 from Debian
 * bookworm-backports) into a cache with private apt lists and `dpkg -x`, beside the system's
 * QEMU; `qmpkit qemu which <release|path>`: print how that binary is run.
 */
import {
  defaultCacheDir,
  fetchQemu,
  isQemuBinaryError,
  QEMU_DOWNLOADS,
  type QemuBinary,
  resolveQemuBinary,
} from '@qmpkit/machine';
import type { CliCommand } from './command.js';

interface QemuFlags {
  cacheDir?: string;
  json?: boolean;
}

function describe(binary: QemuBinary): string {
  const lines: [string, string][] = [
    ['version', binary.version],
    ['binary', binary.path],
    ['data dir', binary.dataDir ?? '(built in)'],
    ['module dir', binary.moduleDir ?? '(built in)'],
  ];
  return `${lines.map(([k, v]) => `${k.padEnd(11)} ${v}`).join('\n')}\n`;
}

export const qemuCommand: CliCommand = {
  name: 'qemu',
  register(program, context) {
    const { io } = context;
    const qemu = program
      .command('qemu')
      .description('QEMU binaries beside the system one: fetch a release into a cache, show one');
    const cacheHelp = `cache directory (default: $QMPKIT_CACHE_DIR, else ${defaultCacheDir()})`;
    qemu
      .command('fetch')
      .description(
        `download and unpack a QEMU release without installing it (known: ${Object.keys(QEMU_DOWNLOADS).join(', ')})`,
      )
      .argument('<release>', 'QEMU release, e.g. 10.0')
      .option('--cache-dir <dir>', cacheHelp)
      .option('--json', 'print the resolved binary as JSON')
      .action(async (release: string, flags: QemuFlags) => {
        try {
          const { binary, cached } = await fetchQemu(release, {
            ...(flags.cacheDir ? { cacheDir: flags.cacheDir } : {}),
            onProgress: (line) => io.stderr.write(`${line}\n`),
          });
          if (flags.json) io.stdout.write(`${JSON.stringify(binary, null, 2)}\n`);
          else
            io.stdout.write(
              `${cached ? 'cached' : 'fetched'} QEMU ${binary.version}\n${describe(binary)}`,
            );
        } catch (error) {
          if (!isQemuBinaryError(error)) throw error;
          io.stderr.write(`qmpkit: ${error.message}\n`);
          context.exit(2);
        }
      });
    qemu
      .command('which')
      .description('check a QEMU binary (a fetched release or a path) and print how it is run')
      .argument('<qemu>', 'a release in the cache (10.0), a path, or a name on PATH')
      .option('--cache-dir <dir>', cacheHelp)
      .option('--json', 'print the resolved binary as JSON')
      .action(async (spec: string, flags: QemuFlags) => {
        try {
          const binary = await resolveQemuBinary(spec, {
            ...(flags.cacheDir ? { cacheDir: flags.cacheDir } : {}),
          });
          io.stdout.write(flags.json ? `${JSON.stringify(binary, null, 2)}\n` : describe(binary));
        } catch (error) {
          if (!isQemuBinaryError(error)) throw error;
          io.stderr.write(`qmpkit: ${error.message}\n`);
          context.exit(2);
        }
      });
  },
};
