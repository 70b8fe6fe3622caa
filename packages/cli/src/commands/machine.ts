/**
 * `qmpkit machine diff --qemu A --qemu B --machine TYPE [--json]`: what one versioned machine
 * type gives the guest on two binaries (device properties with compat properties applied,
 * the devices the board creates, the CPU model), and where they differ. Each side is started
 * paused and ended again; nothing runs in the guest.
 *
 * Exit codes: 0 the same; 3 differences found (their count in the output); 1 QEMU ran but
 * refused (a machine type the binary lacks, a configuration it rejects); 2 bad input (not
 * QEMU, usage).
 */
import {
  defaultCacheDir,
  diffMachineType,
  isMachineTypeError,
  isQemuBinaryError,
  isQemuLaunchError,
  type MachineTypeDiff,
  type MachineTypeReport,
} from '@qmpkit/machine';
import { CliUsageError, isCliUsageError } from '../errors.js';
import type { CliIo } from '../io.js';
import type { CliCommand, CommandContext } from './command.js';

/** Exit code when the two binaries give the machine type differently. */
export const MACHINE_DIFFERENCES_EXIT = 3;

interface DiffFlags {
  qemu: string[];
  machine: string;
  json?: boolean;
  cacheDir?: string;
}

function describeSide(label: string, r: MachineTypeReport): string {
  const compat =
    r.compatProps === undefined
      ? 'no compat-props in query-machines'
      : `${r.compatProps.length} compat props, ${r.compatProps.filter((c) => c.instances.length > 0).length} apply to this board, ${r.compatProps.reduce((n, c) => n + c.disagreeing.length, 0)} disagree with the instances`;
  return `${label}: QEMU ${r.binary.version} (${r.binary.path}): ${r.objects.length} devices, CPU ${r.cpuTypes.join(',') || '?'}; method: ${r.method} (${compat})\n`;
}

function printText(io: CliIo, diff: MachineTypeDiff): void {
  io.stdout.write(describeSide('source', diff.source));
  io.stdout.write(describeSide('destination', diff.destination));
  for (const d of diff.differences) io.stdout.write(`${d.kind.padEnd(15)} ${d.message}\n`);
  const notes = diff.onlyOnOneSide.length;
  io.stdout.write(
    `${notes} propert${notes === 1 ? 'y exists' : 'ies exist'} on one side only (new or removed knobs; --json lists them)\n`,
  );
  const n = diff.differences.length;
  io.stdout.write(
    n === 0
      ? `same: ${diff.source.machineType} gives the guest the same machine on both\n`
      : `${n} difference${n === 1 ? '' : 's'} in ${diff.source.machineType}\n`,
  );
}

function fail(error: unknown, io: CliIo, context: CommandContext): void {
  if (isMachineTypeError(error) || isQemuLaunchError(error)) {
    io.stderr.write(`qmpkit: ${error.message}\n`);
    context.exit(1);
    return;
  }
  if (isQemuBinaryError(error) || isCliUsageError(error)) {
    io.stderr.write(`qmpkit: ${error.message}\n`);
    context.exit(2);
    return;
  }
  throw error;
}

export const machineCommand: CliCommand = {
  name: 'machine',
  register(program, context) {
    const { io } = context;
    const machine = program.command('machine').description('machine types across QEMU binaries');
    machine
      .command('diff')
      .description(
        `does a machine type give the guest the same machine on two binaries? exit 0 same, ${MACHINE_DIFFERENCES_EXIT} differences`,
      )
      .requiredOption(
        '--qemu <binary>',
        'give twice: source then destination (a release in the cache such as 10.0, a path, a name on PATH)',
        (value: string, previous: string[] = []) => [...previous, value],
      )
      .requiredOption('--machine <type>', 'versioned machine type, e.g. pc-i440fx-7.2')
      .option('--json', 'print both reports and the differences as JSON')
      .option(
        '--cache-dir <dir>',
        `cache of fetched QEMU releases (default: $QMPKIT_CACHE_DIR, else ${defaultCacheDir()})`,
      )
      .action(async (flags: DiffFlags) => {
        try {
          const [a, b, ...rest] = flags.qemu;
          if (a === undefined || b === undefined || rest.length > 0)
            throw new CliUsageError(
              `--qemu must be given exactly twice (source and destination), got ${flags.qemu.length}`,
            );
          const diff = await diffMachineType(
            a,
            b,
            flags.machine,
            flags.cacheDir === undefined ? {} : { cacheDir: flags.cacheDir },
          );
          if (flags.json) io.stdout.write(`${JSON.stringify(diff, null, 2)}\n`);
          else printText(io, diff);
          context.exit(diff.differences.length === 0 ? 0 : MACHINE_DIFFERENCES_EXIT);
        } catch (error) {
          fail(error, io, context);
        }
      });
  },
};
