/**
 * `qmpkit vmstate dump --qemu <binary|release> --machine <type> [--out FILE]`: QEMU's
 * `-dump-vmstate` for one machine type; `qmpkit vmstate diff SRC DST [--json] [--reverse]
 * [--machine TYPE]`: would DST load a stream from SRC? SRC and DST are dump files or binaries
 * (a release such as `10.0`, a path, a name on `PATH`; then `--machine` is needed).
 *
 * Exit codes: 0 compatible; 3 problems found; 1 QEMU ran but gave no dump (e.g. it lacks the
 * machine type); 2 bad input (unreadable dump, not QEMU, dumps of two architectures, usage).
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import {
  defaultCacheDir,
  diffVmstate,
  dumpVmstate,
  isQemuBinaryError,
  isVmstateArchitectureError,
  isVmstateDumpError,
  isVmstateRunError,
  parseVmstateDump,
  type VmstateDump,
  type VmstateProblem,
} from '@qmpkit/machine';
import { CliUsageError, isCliUsageError } from '../errors.js';
import type { CliIo } from '../io.js';
import type { CliCommand, CommandContext } from './command.js';

interface DumpFlags {
  qemu: string;
  machine: string;
  out?: string;
  cacheDir?: string;
}

interface DiffFlags {
  json?: boolean;
  reverse?: boolean;
  machine?: string;
  cacheDir?: string;
}

/** Exit code when the comparison found problems. */
export const VMSTATE_PROBLEMS_EXIT = 3;

/** Whether `spec` is a file holding a dump (JSON text) rather than a binary. */
async function isDumpFile(spec: string): Promise<boolean> {
  const info = await stat(spec).catch((error: NodeJS.ErrnoException) => {
    // A spec that is no file (a release, a name on PATH) is a binary; other errors surface.
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
    throw error;
  });
  if (info === undefined || !info.isFile()) return false;
  const head = await readFile(spec).then((b) => b.subarray(0, 64).toString('latin1'));
  // ELF executables and scripts are binaries; anything else is read as a dump (and refused
  // with a typed error when it is not one).
  return !head.startsWith('\x7fELF') && !head.startsWith('#!');
}

async function load(
  spec: string,
  machine: string | undefined,
  cacheDir: string | undefined,
): Promise<VmstateDump> {
  if (await isDumpFile(spec)) return parseVmstateDump(await readFile(spec, 'utf8'), spec);
  if (machine === undefined)
    throw new CliUsageError(`${spec} is a binary, not a dump file: --machine TYPE is required`);
  const result = await dumpVmstate(spec, machine, cacheDir === undefined ? {} : { cacheDir });
  return result.dump;
}

function formatProblem(p: VmstateProblem): string {
  const where = [p.section, p.description, p.field].filter((x) => x !== undefined).join(' › ');
  return `${p.kind.padEnd(19)} ${where}: ${p.message}`;
}

/** Maps the typed errors of a dump or a diff to the CLI's exit codes; rethrows others. */
function fail(error: unknown, io: CliIo, context: CommandContext): void {
  if (isVmstateRunError(error)) {
    io.stderr.write(`qmpkit: ${error.message}\n`);
    context.exit(1);
    return;
  }
  if (
    isQemuBinaryError(error) ||
    isVmstateDumpError(error) ||
    isVmstateArchitectureError(error) ||
    isCliUsageError(error)
  ) {
    io.stderr.write(`qmpkit: ${error instanceof Error ? error.message : String(error)}\n`);
    context.exit(2);
    return;
  }
  throw error;
}

export const vmstateCommand: CliCommand = {
  name: 'vmstate',
  register(program, context) {
    const { io } = context;
    const vmstate = program
      .command('vmstate')
      .description("device state metadata (QEMU's -dump-vmstate): dump it, compare two QEMUs");
    const cacheHelp = `cache of fetched QEMU releases (default: $QMPKIT_CACHE_DIR, else ${defaultCacheDir()})`;
    vmstate
      .command('dump')
      .description('write the vmstate dump of a QEMU binary for one machine type')
      .requiredOption('--qemu <binary>', 'a release in the cache (10.0), a path, or a name on PATH')
      .requiredOption('--machine <type>', 'versioned machine type, e.g. pc-i440fx-7.2')
      .option('--out <file>', 'write the dump there instead of standard output')
      .option('--cache-dir <dir>', cacheHelp)
      .action(async (flags: DumpFlags) => {
        try {
          const { text, dump, binary } = await dumpVmstate(
            flags.qemu,
            flags.machine,
            flags.cacheDir === undefined ? {} : { cacheDir: flags.cacheDir },
          );
          if (flags.out === undefined) io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
          else {
            await writeFile(flags.out, text);
            io.stderr.write(
              `wrote ${dump.sections.size} sections of QEMU ${binary.version} (${dump.machine}) to ${flags.out}\n`,
            );
          }
        } catch (error) {
          fail(error, io, context);
        }
      });
    vmstate
      .command('diff')
      .description(
        `would DST load device state sent by SRC? exit 0 compatible, ${VMSTATE_PROBLEMS_EXIT} problems found`,
      )
      .argument('<src>', 'source: a dump file, or a binary (then --machine)')
      .argument('<dst>', 'destination: a dump file, or a binary (then --machine)')
      .option('--json', 'print { "problems": [ … ] }')
      .option('--reverse', 'compare DST → SRC instead')
      .option('--machine <type>', 'machine type to dump a binary for')
      .option('--cache-dir <dir>', cacheHelp)
      .action(async (src: string, dst: string, flags: DiffFlags) => {
        try {
          const source = await load(src, flags.machine, flags.cacheDir);
          const destination = await load(dst, flags.machine, flags.cacheDir);
          const { problems } = diffVmstate(source, destination, {
            reverse: flags.reverse === true,
          });
          if (flags.json) io.stdout.write(`${JSON.stringify({ problems }, null, 2)}\n`);
          else {
            const [from, to] = flags.reverse ? [dst, src] : [src, dst];
            for (const p of problems) io.stdout.write(`${formatProblem(p)}\n`);
            io.stdout.write(
              problems.length === 0
                ? `compatible: ${from} → ${to}\n`
                : `${problems.length} problem${problems.length === 1 ? '' : 's'}: ${from} → ${to}\n`,
            );
          }
          context.exit(problems.length === 0 ? 0 : VMSTATE_PROBLEMS_EXIT);
        } catch (error) {
          fail(error, io, context);
        }
      });
  },
};
