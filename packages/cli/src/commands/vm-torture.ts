/**
 * `qmpkit vm torture CONFIG --cycles N [--qemu A --restore-qemu B] [--counter CHARDEV]
 * [--json]`: save/load torture of a configuration (see `tortureVm` in `@qmpkit/machine`).
 * Each cycle stops the VM, saves its device state into a file, starts a fresh QEMU (on B for
 * odd cycles when given), loads, compares the `query-*` view of every device, the disk images
 * and (with `--counter`) the guest's counter, and continues.
 *
 * Exit codes: 0 every cycle exact; 3 a divergence (cycle and device printed); 1 QEMU failed
 * outside a cycle's checks (did not start, a save failed); 2 bad input (configuration, not
 * QEMU, usage).
 */

import { isConfigFormatError, isConfigValidationError } from '@qmpkit/devices';
import {
  isMigrationError,
  isQemuBinaryError,
  isQemuLaunchError,
  type QemuBinary,
  resolveQemuBinary,
  tortureVm,
} from '@qmpkit/machine';
import { type Command, Option } from 'commander';
import { readVmConfig } from '../vm/config.js';
import { type CommandContext, positiveInt } from './command.js';

/** Exit code when a cycle diverged. */
export const TORTURE_DIVERGED_EXIT = 3;

interface TortureFlags {
  cycles: number;
  qemu?: string;
  restoreQemu?: string;
  counter?: string;
  json?: boolean;
  cacheDir?: string;
}

async function binary(spec: string, cacheDir: string | undefined): Promise<QemuBinary | string> {
  // A release (`10.0`) lives in the cache; paths and names on PATH are launch's to resolve.
  return /^\d+\.\d+$/.test(spec)
    ? resolveQemuBinary(spec, cacheDir === undefined ? {} : { cacheDir })
    : spec;
}

export function registerTorture(vm: Command, context: CommandContext): void {
  const { io } = context;
  vm.command('torture')
    .description(
      `save/load torture: N × stop, save device state, restart, load, compare, continue; exit 0 exact, ${TORTURE_DIVERGED_EXIT} diverged`,
    )
    .argument('<config>', 'a qmpkit-devices configuration (JSON with comments)')
    .addOption(
      new Option('--cycles <n>', 'how many cycles').argParser(positiveInt('--cycles')).default(20),
    )
    .option('--qemu <binary>', 'binary to boot on (a release such as 10.0, a path, a name on PATH)')
    .option('--restore-qemu <binary>', 'binary odd cycles restore on (even ones on --qemu)')
    .option(
      '--counter <chardev>',
      "check the test guest's counter (printed on this chardev, kept at RAM 0x500)",
    )
    .option('--json', 'print the result as JSON')
    .option('--cache-dir <dir>', 'cache of fetched QEMU releases')
    .action(async (file: string, flags: TortureFlags) => {
      try {
        const config = await readVmConfig(file);
        const qemu = await binary(flags.qemu ?? 'qemu-system-x86_64', flags.cacheDir);
        const restore =
          flags.restoreQemu === undefined
            ? undefined
            : await binary(flags.restoreQemu, flags.cacheDir);
        const result = await tortureVm({
          config,
          cycles: flags.cycles,
          qemu,
          ...(restore === undefined ? {} : { restoreQemu: restore }),
          ...(flags.counter === undefined ? {} : { counter: { chardev: flags.counter } }),
          onCycle: (c) => {
            if (!flags.json)
              io.stderr.write(
                `cycle ${c.cycle}: ${c.from} → ${c.to} exact (${c.ms} ms${c.counter === undefined ? '' : `, counter ${c.counter}`})\n`,
              );
          },
        });
        if (flags.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        else if (result.divergence === undefined)
          io.stdout.write(`${result.cycles.length} cycles exact (accelerator ${result.accel})\n`);
        else
          io.stdout.write(
            `diverged at cycle ${result.divergence.cycle}, device ${result.divergence.device}: ${result.divergence.message}\n`,
          );
        context.exit(result.ok ? 0 : TORTURE_DIVERGED_EXIT);
      } catch (error) {
        if (
          isConfigFormatError(error) ||
          isConfigValidationError(error) ||
          isQemuBinaryError(error) ||
          (error as NodeJS.ErrnoException).code === 'ENOENT'
        ) {
          io.stderr.write(`qmpkit: ${(error as Error).message}\n`);
          context.exit(2);
          return;
        }
        if (isQemuLaunchError(error) || isMigrationError(error)) {
          io.stderr.write(`qmpkit: ${error.message}\n`);
          context.exit(1);
          return;
        }
        throw error;
      }
    });
}
