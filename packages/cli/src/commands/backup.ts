/**
 * `qmpkit backup full|incremental|list|restore`: backups of a VM started with `qmpkit vm
 * start`. `full` and `incremental` go through the VM's supervisor (it owns QMP) and show the
 * jobs' progress on stderr; Ctrl-C aborts (nothing is kept, the chain is put back). On a
 * stopped VM (no supervisor answers) they run the same push backup on its images through
 * `qemu-storage-daemon` under the VM directory's lock, continuing the same checkpoint chain.
 * `list` and `restore` read the backup directory itself and need no running VM.
 */
import path from 'node:path';
import {
  backupStoppedVm,
  isRestoreTargetError,
  listBackups,
  restore,
  type StoppedBackupResult,
} from '@qmpkit/backup';
import type { BlockJob } from '@qmpkit/machine';
import {
  isRunDirLockedError,
  isStorageDaemonError,
  isStorageDaemonVersionError,
} from '@qmpkit/machine';
import { Option } from 'commander';
import { bytes, ms } from '../demo/report.js';
import { isCliConnectError } from '../errors.js';
import { formatJson } from '../format.js';
import { backupSummary, summedProgress } from '../vm/backup-summary.js';
import { ControlClient } from '../vm/client.js';
import { vmPaths } from '../vm/paths.js';
import type { BackupParams, BackupSummary } from '../vm/protocol.js';
import type { CliCommand, CommandContext } from './command.js';
import { collect, positiveInt } from './command.js';
import { EXIT_INTERRUPTED, progressView, reportFailure } from './snapshot.js';

interface RunFlags {
  dir: string;
  to: string;
  disk?: string[];
  ifBroken?: 'refuse' | 'full';
  pull?: boolean;
  json?: boolean;
  nbdPort?: number;
  nbdHost?: string;
  nbdTlsDir?: string;
  nbdTlsHostname?: string;
  nbdAllowRemote?: boolean;
  nbdPlaintext?: boolean;
  storageDaemon?: string;
}

/** `--pull` on TCP: the export's port and host, TLS, and the two explicit opt-outs. */
const nbdOptions = (): Option[] => [
  new Option(
    '--nbd-port <port>',
    'with --pull: export on this TCP port instead of the unix socket (needs --nbd-tls-dir or --nbd-plaintext)',
  ).argParser(positiveInt('--nbd-port')),
  new Option('--nbd-host <host>', 'with --nbd-port: the address to listen on (default 127.0.0.1)'),
  new Option(
    '--nbd-tls-dir <dir>',
    'with --nbd-port: TLS with the certificates in <dir> (ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem)',
  ),
  new Option(
    '--nbd-tls-hostname <name>',
    "with --nbd-tls-dir: the name the server's certificate must carry (default: the host)",
  ),
  new Option('--nbd-allow-remote', 'with --nbd-port: allow a host that is not loopback'),
  new Option(
    '--nbd-plaintext',
    'with --nbd-port: export without TLS (anyone who reaches the port can read the disks)',
  ),
];

const dirOption = () =>
  new Option('-d, --dir <vm-dir>', 'the VM directory given to `qmpkit vm start`')
    .env('QMPKIT_VM_DIR')
    .makeOptionMandatory();

const toOption = () =>
  new Option('--to <backup-dir>', 'the backup directory (created 0700)').makeOptionMandatory();

const PULL_HELP =
  'pull mode: the VM exports its disks at one instant over NBD (a unix socket in its run dir) and only the dirty extents are read';

export const backupCommand: CliCommand = {
  name: 'backup',
  register(program, context) {
    const backup = program
      .command('backup')
      .description(
        'full and incremental backups of the disks of a VM started with `qmpkit vm start`, and restore',
      );

    backup
      .command('full')
      .description('back up every disk at one instant; starts a new checkpoint chain')
      .addOption(dirOption())
      .addOption(toOption())
      .option('--disk <device-id>', 'only this disk (repeatable; default: every disk)', collect)
      .option('--pull', PULL_HELP)
      .option('--json', 'print the result as JSON')
      .action(async (flags: RunFlags) => {
        context.exit(await runBackup(context, flags, 'full'));
      });

    backup
      .command('incremental')
      .description('back up what every disk wrote since the last point of --to')
      .addOption(dirOption())
      .addOption(toOption())
      .option('--disk <device-id>', 'only this disk (repeatable; default: every disk)', collect)
      .option('--pull', PULL_HELP)
      .addOption(
        new Option(
          '--if-broken <what>',
          'when the checkpoint chain is broken: refuse (default) or take a full backup',
        ).choices(['refuse', 'full']),
      )
      .option('--json', 'print the result as JSON')
      .action(async (flags: RunFlags) => {
        context.exit(await runBackup(context, flags, 'incremental'));
      });

    // The TCP/TLS options of `--pull`, and the daemon of a stopped VM, on both verbs.
    for (const verb of backup.commands)
      if (verb.name() === 'full' || verb.name() === 'incremental') {
        for (const option of nbdOptions()) verb.addOption(option);
        verb.addOption(
          new Option(
            '--storage-daemon <qemu-storage-daemon>',
            "stopped VM: the daemon to run (a path, or a release fetched with `qmpkit qemu fetch`; default: the one of the VM's QEMU release)",
          ),
        );
      }

    backup
      .command('list')
      .description('the points of a backup directory (no VM needed)')
      .addOption(toOption())
      .option('--json', 'print the points as JSON')
      .action(async (flags: { to: string; json?: boolean }) => {
        const { io } = context;
        try {
          const points = await listBackups(flags.to);
          if (flags.json === true) io.stdout.write(`${formatJson(points, false)}\n`);
          else if (points.length === 0) io.stdout.write('no backups\n');
          else
            for (const p of points) {
              const copied = p.disks.reduce((sum, d) => sum + d.copied, 0);
              io.stdout.write(
                `${p.id}  ${p.kind.padEnd(11)}  ${p.completedAt}  ${p.disks.map((d) => d.device).join(',')}  ${bytes(copied)} copied\n`,
              );
            }
          context.exit(0);
        } catch (error) {
          io.stderr.write(`qmpkit: backup list: ${(error as Error).message}\n`);
          context.exit(1);
        }
      });

    backup
      .command('restore')
      .description('write the disks of a point as images into a new or empty directory')
      .requiredOption('--from <backup-dir>', 'the backup directory')
      .requiredOption('--to <dir>', 'where the disk images go (new or empty)')
      .option('--point <id>', 'the point (default: the last one)')
      .addOption(new Option('--format <format>', 'image format').choices(['qcow2', 'raw']))
      .action(
        async (flags: { from: string; to: string; point?: string; format?: 'qcow2' | 'raw' }) => {
          const { io } = context;
          try {
            const result = await restore({
              from: flags.from,
              to: flags.to,
              ...(flags.point !== undefined ? { point: flags.point } : {}),
              ...(flags.format !== undefined ? { format: flags.format } : {}),
            });
            for (const d of result.disks) io.stdout.write(`${d.device}: ${d.file}\n`);
            io.stdout.write(`restored point ${result.point.id} (${result.point.kind})\n`);
            context.exit(0);
          } catch (error) {
            io.stderr.write(`qmpkit: backup restore: ${(error as Error).message}\n`);
            context.exit(isRestoreTargetError(error) ? 2 : 1);
          }
        },
      );
  },
};

async function runBackup(
  context: CommandContext,
  flags: RunFlags,
  kind: 'full' | 'incremental',
): Promise<number> {
  const { io } = context;
  const to = path.resolve(flags.to);
  const params: BackupParams = {
    kind,
    to,
    ...(flags.ifBroken !== undefined ? { ifBroken: flags.ifBroken } : {}),
    ...(flags.disk !== undefined ? { disks: flags.disk } : {}),
    ...(flags.pull === true ? { pull: true } : {}),
  };
  const tcp = pullTcp(flags);
  if (tcp === 'misused') {
    io.stderr.write(
      'qmpkit: --nbd-host, --nbd-tls-dir, --nbd-tls-hostname, --nbd-allow-remote and --nbd-plaintext need --nbd-port, and --nbd-port needs --pull\n',
    );
    return 2;
  }
  if (tcp !== undefined) Object.assign(params, { tcp });
  const label = `${kind} backup${flags.pull === true ? ' (pull)' : ''}`;
  let client: ControlClient;
  try {
    client = await ControlClient.connect(flags.dir);
  } catch (error) {
    // No supervisor: the VM is stopped (or managed elsewhere, which the lock tells).
    if (!isCliConnectError(error)) throw error;
    return backupStopped(context, flags, kind, to);
  }
  const view = progressView(io, label);
  let interrupted = false;
  const request = client.request('backup', params, { onProgress: (p) => view.update(p) });
  const unsubscribe = io.onInterrupt(() => {
    if (interrupted) return;
    interrupted = true;
    view.stop();
    io.stderr.write(`qmpkit: interrupted: aborting the ${label}\n`);
    client.request('abort', { id: request.id }).result.catch(() => {
      // The backup's own answer says how it ended.
    });
  });
  try {
    const result = await request.result;
    view.finish();
    printSummary(context, flags, result);
    return 0;
  } catch (error) {
    view.stop();
    const code = reportFailure(io, 'backup', `${kind} to ${to}`, error);
    return interrupted ? EXIT_INTERRUPTED : code;
  } finally {
    unsubscribe();
    client.close();
  }
}

function printSummary(context: CommandContext, flags: RunFlags, result: BackupSummary): void {
  const { io } = context;
  // On stderr in both modes: the repair happened whatever the output format.
  const cut = result.interrupted;
  if (cut !== null)
    io.stderr.write(
      `qmpkit: backup ${cut.id} (${cut.mode}) of process ${cut.pid} had been interrupted; its leftovers were removed (checkpoint chain: ${cut.chain})\n`,
    );
  if (flags.json === true) io.stdout.write(`${formatJson(result, false)}\n`);
  else {
    const disks = result.disks.map((d) => `${d.device} ${bytes(d.copied)}`).join(', ');
    const daemon = result.daemon === undefined ? '' : ` (stopped VM, ${result.daemon.path})`;
    io.stdout.write(
      `${result.kind} backup ${result.point} in ${ms(result.totalMs)}: ${disks} copied${daemon}\n`,
    );
    if (result.repaired !== null)
      io.stderr.write(`qmpkit: a full backup was taken instead: ${result.repaired.join('; ')}\n`);
  }
}

/**
 * A push backup of a stopped VM through `qemu-storage-daemon` (`backupStoppedVm`): the same
 * progress, output and Ctrl-C as through the supervisor. Refusals before anything ran (a VM
 * another process manages, no daemon of its QEMU, `--pull`) exit 2.
 */
async function backupStopped(
  context: CommandContext,
  flags: RunFlags,
  kind: 'full' | 'incremental',
  to: string,
): Promise<number> {
  const { io } = context;
  if (flags.pull === true) {
    io.stderr.write(
      'qmpkit: backup --pull needs the running VM (its supervisor exports the disks); the VM is not running: leave out --pull to back it up with qemu-storage-daemon\n',
    );
    return 2;
  }
  const label = `${kind} backup (stopped VM)`;
  const view = progressView(io, label);
  const done = new Map<string, { offset: number; len: number }>();
  const report = () => view.update({ phase: 'backup', ...summedProgress(done) });
  const abort = new AbortController();
  const unsubscribe = io.onInterrupt(() => {
    if (abort.signal.aborted) return;
    view.stop();
    io.stderr.write(`qmpkit: interrupted: aborting the ${label}\n`);
    abort.abort(new Error('interrupted'));
  });
  const paths = vmPaths(flags.dir);
  const started = performance.now();
  try {
    const result: StoppedBackupResult = await backupStoppedVm({
      kind,
      dir: to,
      stateFile: paths.stateFile,
      runDir: paths.runDir,
      signal: abort.signal,
      ...(flags.disk !== undefined ? { disks: flags.disk } : {}),
      ...(flags.ifBroken !== undefined ? { ifBroken: flags.ifBroken } : {}),
      ...(flags.storageDaemon !== undefined ? { storageDaemon: flags.storageDaemon } : {}),
      logger: {
        warn: (message) => io.stderr.write(`qmpkit: backup ${kind}: warning: ${message}\n`),
      },
      onJobs: (jobs: readonly { device: string; job: BlockJob }[]) => {
        for (const { device, job } of jobs)
          void (async () => {
            for await (const u of job.progress({ intervalMs: 500 })) {
              if (u.kind !== 'progress') continue;
              done.set(device, { offset: u.offset, len: u.len });
              report();
            }
          })().catch(() => undefined); // progress is a courtesy: the backup's result says how it ended
      },
    });
    view.finish();
    for (const l of result.leftovers)
      io.stderr.write(
        `qmpkit: backup ${kind}: warning: ${l instanceof Error ? l.message : String(l)}\n`,
      );
    printSummary(context, flags, {
      ...backupSummary(result, to, performance.now() - started),
      daemon: result.daemon,
    });
    return 0;
  } catch (error) {
    view.stop();
    const name = error instanceof Error ? error.name : 'Error';
    const message = error instanceof Error ? error.message : String(error);
    io.stderr.write(`qmpkit: backup ${kind} to ${to} (stopped VM): ${name}: ${message}\n`);
    if (abort.signal.aborted) return EXIT_INTERRUPTED;
    const refused =
      isRunDirLockedError(error) ||
      isStorageDaemonVersionError(error) ||
      (isStorageDaemonError(error) &&
        (error.reason === 'not-found' || error.reason === 'bad-binary'));
    return refused ? 2 : 1;
  } finally {
    unsubscribe();
  }
}

/** The `tcp` of a pull backup from the `--nbd-*` flags; `misused` when one lacks its base. */
function pullTcp(flags: RunFlags): BackupParams['tcp'] | 'misused' {
  const dependent =
    flags.nbdHost !== undefined ||
    flags.nbdTlsDir !== undefined ||
    flags.nbdTlsHostname !== undefined ||
    flags.nbdAllowRemote === true ||
    flags.nbdPlaintext === true;
  if (flags.nbdPort === undefined) return dependent ? 'misused' : undefined;
  if (flags.pull !== true) return 'misused';
  if (flags.nbdTlsHostname !== undefined && flags.nbdTlsDir === undefined) return 'misused';
  return {
    port: flags.nbdPort,
    ...(flags.nbdHost !== undefined ? { host: flags.nbdHost } : {}),
    ...(flags.nbdTlsDir !== undefined
      ? {
          tls: {
            // Absolute: the supervisor's working directory is not the client's.
            dir: path.resolve(flags.nbdTlsDir),
            ...(flags.nbdTlsHostname !== undefined ? { hostname: flags.nbdTlsHostname } : {}),
          },
        }
      : {}),
    ...(flags.nbdAllowRemote === true ? { allowRemote: true } : {}),
    ...(flags.nbdPlaintext === true ? { allowPlaintext: true } : {}),
  };
}
