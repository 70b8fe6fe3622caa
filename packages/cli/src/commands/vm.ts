import { closeSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Option } from 'commander';
import { bytes, ms } from '../demo/report.js';
import { formatJson } from '../format.js';
import { ControlClient, isSupervisorError } from '../vm/client.js';
import { EXAMPLE_DISK, writeExampleConfig } from '../vm/init.js';
import type { StatusResult } from '../vm/protocol.js';
import { startSupervisor } from '../vm/spawn.js';
import { STRATEGIES, supervise } from '../vm/supervisor.js';
import { type CliCommand, type CommandContext, collect, positiveInt } from './command.js';
import { EXIT_INTERRUPTED, progressView, reportFailure } from './snapshot.js';
import { registerTorture } from './vm-torture.js';

interface StartFlags {
  dir: string;
  accel?: string[];
  console?: string[];
  strategy?: (typeof STRATEGIES)[number] | 'auto';
  qemu?: string;
  timeout?: number;
  force?: boolean;
}

interface SuperviseFlags extends StartFlags {
  config?: string;
  notifyFd?: number;
}

const dirOption = () =>
  new Option('-d, --dir <vm-dir>', 'the VM directory (control socket, state file, snapshots)')
    .env('QMPKIT_VM_DIR')
    .makeOptionMandatory();

const strategyOption = () =>
  new Option(
    '--strategy <kind>',
    'snapshot strategy for saves (default: auto, chosen per VM)',
  ).choices(['auto', ...STRATEGIES]);

export function formatStatus(status: StatusResult): string {
  const lines = [
    ['supervisor', `pid ${status.pid}, since ${status.startedAt}`],
    [
      'qemu',
      `pid ${status.qemu.pid}, QEMU ${status.qemu.version}, accelerator ${status.qemu.accel}`,
    ],
    ['run state', status.qemu.runState],
    ['snapshots', `${status.snapshots} (saves use ${status.strategy})`],
    ['busy', status.busy ? `${status.busy.method} '${status.busy.name}'` : '-'],
    ['vm dir', status.dir],
  ];
  return `${lines.map(([k, v]) => `${(k ?? '').padEnd(11)} ${v}`).join('\n')}\n`;
}

async function withClient<T>(dir: string, run: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = await ControlClient.connect(dir);
  try {
    return await run(client);
  } finally {
    client.close();
  }
}

export const vmCommand: CliCommand = {
  name: 'vm',
  register(program, context) {
    const vm = program
      .command('vm')
      .description(
        'run a VM under a qmpkit supervisor (it owns QEMU and the snapshot store; see `qmpkit snapshot`)',
      );

    registerTorture(vm, context);

    vm.command('init')
      .description(
        'write a commented example configuration for `vm start` (exit 1 if the file exists, unless --force)',
      )
      .argument('[file]', 'where to write it', 'vm.jsonc')
      .option('--force', 'replace the file if it exists')
      .action(async (file: string, flags: { force?: boolean }) => {
        await writeExampleConfig(file, flags.force === true);
        const disk = path.join(path.dirname(file), EXAMPLE_DISK);
        context.io.stdout.write(
          `wrote ${file}\nnext: qemu-img create -f qcow2 ${disk} 1G\n      qmpkit vm start ${file} --dir VM_DIR\n`,
        );
      });

    vm.command('start')
      .description(
        "start the VM of a qmpkit-devices configuration under a detached supervisor; returns when it is ready (exit 2 with QEMU's error otherwise). Without <config>: start again from <vm-dir>/state.json",
      )
      .argument('[config]', 'a qmpkit-devices configuration (JSON, `toJSON` of a VmConfig)')
      .addOption(dirOption())
      .option(
        '--accel <name>',
        'accelerator, repeatable in order of preference (overrides the configuration)',
        collect,
      )
      .option(
        '--console <chardev>',
        "keep this chardev's output (its unread text goes into snapshots), repeatable",
        collect,
      )
      .addOption(strategyOption())
      .option('--qemu <binary>', 'qemu-system binary (default qemu-system-x86_64)')
      .option(
        '--force',
        'start on images that are frozen layers of external snapshots (those snapshots then load a changed disk)',
      )
      .addOption(
        new Option(
          '--timeout <ms>',
          'how long to wait for the VM to be ready (default 120000)',
        ).argParser(positiveInt('--timeout')),
      )
      .action(async (config: string | undefined, flags: StartFlags) => {
        context.exit(await runStart(context, config, flags));
      });

    vm.command('stop')
      .description('stop the VM (QMP quit, then signals) and its supervisor')
      .addOption(dirOption())
      .action(async (flags: { dir: string }) => {
        const exit = await withClient(flags.dir, (client) => client.call('stop', {}));
        context.io.stdout.write(
          `stopped (QEMU ${exit.signal !== null ? `signal ${exit.signal}` : `exit code ${exit.code}`})\n`,
        );
      });

    vm.command('status')
      .description(
        'supervisor and QEMU pids, QEMU version, accelerator, run state (exit 2 when no supervisor runs)',
      )
      .addOption(dirOption())
      .option('--json', 'print the status as JSON')
      .action(async (flags: { dir: string; json?: boolean }) => {
        const status = await withClient(flags.dir, (client) => client.call('status', {}));
        context.io.stdout.write(
          flags.json ? `${formatJson(status, false)}\n` : formatStatus(status),
        );
      });

    vm.command('migrate')
      .description(
        "live-migrate the running VM into a new QEMU whose VM directory is --to (progress on stderr; Ctrl-C cancels: the VM keeps running where it was, exit 130). The supervisor then serves the VM from --to; the old directory's state file says where it went",
      )
      .addOption(dirOption())
      .requiredOption('--to <vm-dir>', 'the VM directory to move to (created; must hold no VM)')
      .option('--qemu <binary>', "the target's QEMU (default: the one the VM runs on)")
      .option('--tcp', 'stream over TCP on 127.0.0.1 instead of a unix socket')
      .addOption(
        new Option(
          '--disks <mode>',
          'shared: both QEMUs open the same images; copy: mirror them over NBD into <to>/disks',
        ).choices(['shared', 'copy']),
      )
      .option('--json', 'print the summary as JSON')
      .action(async (flags: MigrateFlags) => {
        context.exit(await runMigrate(context, flags));
      });

    vm.command('supervise', { hidden: true })
      .description('the supervisor process itself (started by `vm start`)')
      .addOption(dirOption())
      .option('--config <file>')
      .option('--accel <name>', '', collect)
      .option('--console <chardev>', '', collect)
      .addOption(strategyOption())
      .option('--qemu <binary>')
      .addOption(new Option('--notify-fd <fd>').argParser(positiveInt('--notify-fd')))
      .action(async (flags: SuperviseFlags) => {
        context.exit(await runSupervise(context, flags));
      });
  },
};

interface MigrateFlags {
  dir: string;
  to: string;
  qemu?: string;
  tcp?: boolean;
  disks?: 'shared' | 'copy';
  json?: boolean;
}

/**
 * `vm migrate`: a `migrate` request to the supervisor with a progress view. The first Ctrl-C
 * asks the supervisor to cancel and waits for its answer (the VM runs on in --dir); a second
 * one stops waiting.
 */
async function runMigrate(context: CommandContext, flags: MigrateFlags): Promise<number> {
  const { io } = context;
  const client = await ControlClient.connect(flags.dir);
  const view = progressView(io, `migrate to ${flags.to}`);
  let interrupts = 0;
  let giveUp: (() => void) | undefined;
  const gaveUp = new Promise<'gave-up'>((resolve) => {
    giveUp = () => resolve('gave-up');
  });
  const request = client.request(
    'migrate',
    {
      to: path.resolve(flags.to),
      ...(flags.qemu !== undefined ? { qemu: flags.qemu } : {}),
      ...(flags.tcp === true ? { transport: 'tcp' as const } : {}),
      ...(flags.disks !== undefined ? { disks: flags.disks } : {}),
    },
    { onProgress: (p) => view.update(p) },
  );
  const unsubscribe = io.onInterrupt(() => {
    interrupts += 1;
    if (interrupts === 1) {
      view.stop();
      io.stderr.write(
        'qmpkit: interrupted: cancelling the migration (Ctrl-C again to stop waiting)\n',
      );
      // The answer to the migrate request says how the cancel ended.
      client.request('abort', { id: request.id }).result.catch(() => {});
    } else giveUp?.();
  });
  try {
    const outcome = await Promise.race([request.result, gaveUp]);
    if (outcome === 'gave-up') {
      io.stderr.write(
        `qmpkit: stopped waiting; the supervisor finishes the cancel (qmpkit vm status --dir ${flags.dir})\n`,
      );
      return EXIT_INTERRUPTED;
    }
    view.finish();
    if (flags.json === true) io.stdout.write(`${formatJson(outcome, false)}\n`);
    else {
      for (const d of outcome.decisions) io.stderr.write(`convergence: ${d}\n`);
      io.stdout.write(
        `migrated to ${outcome.dir}: QEMU ${outcome.qemu.version} (pid ${outcome.qemu.pid}), ${ms(outcome.totalMs)}, guest downtime ${ms(outcome.downtimeMs ?? undefined)}, ${bytes(outcome.bytes)} of RAM sent\n`,
      );
    }
    return 0;
  } catch (error) {
    view.stop();
    if (
      isSupervisorError(error) &&
      error.remote.name === 'LiveMigrationError' &&
      error.remote.reason === 'aborted'
    ) {
      io.stderr.write(
        `qmpkit: migration cancelled; the VM runs on in ${flags.dir} (${String(error.remote.phase)})\n`,
      );
      return EXIT_INTERRUPTED;
    }
    return reportFailure(io, 'migrate to', flags.to, error);
  } finally {
    unsubscribe();
    client.close();
  }
}

async function runStart(
  context: CommandContext,
  config: string | undefined,
  flags: StartFlags,
): Promise<number> {
  const { io } = context;
  let interrupted = false;
  let unsubscribe = () => {};
  try {
    const status = await startSupervisor({
      dir: flags.dir,
      ...(config !== undefined ? { config } : {}),
      ...(flags.accel ? { accel: flags.accel } : {}),
      ...(flags.console ? { consoles: flags.console } : {}),
      ...(flags.strategy ? { strategy: flags.strategy } : {}),
      ...(flags.qemu ? { qemu: flags.qemu } : {}),
      ...(flags.timeout ? { timeout: flags.timeout } : {}),
      ...(flags.force ? { force: true } : {}),
      env: { ...process.env, ...io.env },
      onCancel: (cancel) => {
        unsubscribe = io.onInterrupt(() => {
          interrupted = true;
          cancel();
        });
      },
    });
    io.stdout.write(
      `VM started: QEMU ${status.qemu.version} (pid ${status.qemu.pid}, accelerator ${status.qemu.accel}, ${status.qemu.runState}); supervisor pid ${status.pid}; snapshots use ${status.strategy}\n`,
    );
    return 0;
  } catch (error) {
    if (!interrupted) throw error;
    io.stderr.write('qmpkit: interrupted; the supervisor stopped QEMU and exited\n');
    return EXIT_INTERRUPTED;
  } finally {
    unsubscribe();
  }
}

async function runSupervise(context: CommandContext, flags: SuperviseFlags): Promise<number> {
  const fd = flags.notifyFd;
  let notified = false;
  const exit = await supervise({
    dir: flags.dir,
    ...(flags.config !== undefined ? { config: flags.config } : {}),
    ...(flags.accel ? { accel: flags.accel } : {}),
    ...(flags.console ? { consoles: flags.console } : {}),
    ...(flags.strategy ? { strategy: flags.strategy } : {}),
    ...(flags.qemu ? { qemu: flags.qemu } : {}),
    log: (line) => context.io.stdout.write(`${new Date().toISOString()} ${line}\n`),
    notify: (message) => {
      notified = true;
      if (fd === undefined) {
        context.io.stdout.write(`${formatJson(message, false)}\n`);
        return;
      }
      try {
        writeSync(fd, `${JSON.stringify(message)}\n`);
        closeSync(fd);
      } catch {
        // `vm start` gave up waiting; the log has it.
      }
    },
  });
  return exit === undefined || !notified ? 2 : 0;
}
