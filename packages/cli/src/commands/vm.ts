import { closeSync, writeSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { type PreparedCloneSet, prepareClones } from '@qmpkit/snapshots';
import { InvalidArgumentError, Option } from 'commander';
import { bytes, ms } from '../demo/report.js';
import { formatJson } from '../format.js';
import { ControlClient, isSupervisorError } from '../vm/client.js';
import { EXAMPLE_DISK, writeExampleConfig } from '../vm/init.js';
import { checkSocketPath, vmPaths } from '../vm/paths.js';
import type { MigrateProgressLine, StatusResult } from '../vm/protocol.js';
import { startSupervisor } from '../vm/spawn.js';
import { STRATEGIES, supervise } from '../vm/supervisor.js';
import {
  type CliCommand,
  type CommandContext,
  collect,
  nonNegativeInt,
  positiveInt,
} from './command.js';
import {
  compatLine,
  EXIT_INTERRUPTED,
  type ProgressLike,
  progressView,
  reportFailure,
} from './snapshot.js';
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
  incoming?: string;
  fromState?: string;
  tlsDir?: string;
  postcopy?: boolean;
  machineType?: string;
  clone?: string;
  disks?: 'copy';
  diskSize?: Record<string, number>;
}

/**
 * `--disk-size NODE=SIZE` (repeatable): SIZE in bytes or with a binary suffix (K, M, G, T),
 * as `qemu-img info` shows a disk's virtual size.
 */
export function parseDiskSize(value: string, previous: Record<string, number> | undefined) {
  const m = /^([^=]+)=(\d+)([KMGT]?)i?B?$/i.exec(value.trim());
  const scale = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 } as const;
  const size =
    m === null
      ? Number.NaN
      : Number(m[2]) * scale[(m[3] ?? '').toUpperCase() as keyof typeof scale];
  if (m === null || !Number.isSafeInteger(size) || size <= 0)
    throw new InvalidArgumentError('expected NODE=SIZE, e.g. boot=64M (bytes, or K/M/G/T)');
  return { ...previous, [m[1] ?? '']: size };
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
    ...(status.postcopyPaused !== undefined
      ? [
          [
            'post-copy',
            `paused: the target in ${status.postcopyPaused.to} holds the guest (qmpkit vm postcopy recover --dir ${status.dir})`,
          ],
        ]
      : []),
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

    for (const [verb, what] of [
      ['pause', 'pause the guest (QMP stop) through its supervisor'],
      [
        'resume',
        'resume a paused guest (QMP cont), e.g. one that arrived by `vm receive` but was not resumed',
      ],
    ] as const)
      vm.command(verb)
        .description(what)
        .addOption(dirOption())
        .option('--json', 'print the status after it as JSON')
        .action(async (flags: { dir: string; json?: boolean }) => {
          const status = await withClient(flags.dir, (client) => client.call(verb, {}));
          context.io.stdout.write(
            flags.json ? `${formatJson(status, false)}\n` : formatStatus(status),
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
      .requiredOption(
        '--to <vm-dir|address>',
        "the VM directory to move to (created; must hold no VM), or the address `qmpkit vm receive` printed (tcp:HOST:PORT, unix:PATH): then success is the source QEMU's own `completed` over return-path, the receiver confirms the guest runs, and this supervisor ends",
      )
      .option('--qemu <binary>', "the target's QEMU (default: the one the VM runs on)")
      .option('--tcp', 'stream over TCP on 127.0.0.1 instead of a unix socket')
      .option(
        '--tls-dir <dir>',
        'TLS credentials for RAM and disk copy: to an address ca-cert.pem, client-cert.pem, client-key.pem; to a VM directory also server-cert.pem and server-key.pem (both ends run here)',
      )
      .option('--postcopy', 'switch to post-copy when pre-copy does not converge')
      .option(
        '--postcopy-immediate',
        'switch to post-copy as soon as RAM moves (implies --postcopy): the target runs the guest from then on',
      )
      .addOption(
        new Option('--max-bandwidth <bytes/s>', 'limit of the stream (default 16 GiB/s)').argParser(
          positiveInt('--max-bandwidth'),
        ),
      )
      .addOption(
        new Option(
          '--postcopy-bandwidth <bytes/s>',
          "limit of the stream after the switch to post-copy (default QEMU's: unlimited; pages the target faults on go first)",
        ).argParser(nonNegativeInt('--postcopy-bandwidth')),
      )
      .addOption(
        new Option(
          '--recover-attempts <n>',
          'to a VM directory: when the link breaks during post-copy, how often a fresh channel is tried (default 3); 0: none, both QEMUs stay paused for `qmpkit vm postcopy recover`',
        ).argParser(nonNegativeInt('--recover-attempts')),
      )
      .addOption(
        new Option(
          '--disks <mode>',
          'shared: both QEMUs open the same images; copy: mirror them over NBD into <to>/disks, or to an address into the images `vm receive --disks copy` exports there (progress shows disk bytes while they copy)',
        ).choices(['shared', 'copy']),
      )
      .option('--json', 'print the summary as JSON')
      .action(async (flags: MigrateFlags) => {
        context.exit(await runMigrate(context, flags));
      });

    const postcopy = vm
      .command('postcopy')
      .description(
        'control the post-copy phase of a `vm migrate` to a VM directory (after the switch the target runs the guest and the source holds the pages not yet sent: neither QEMU may be killed)',
      );
    postcopy
      .command('pause')
      .description(
        'cut the stream of the migration under way (migrate-pause) once it is in post-copy and the target runs the guest; both QEMUs go to postcopy-paused. With --recover-attempts 0 on the migrate it ends there and `vm postcopy recover` resumes it; else it recovers on a fresh channel by itself. Refused (exit 1, PostcopyStateError) in any other state',
      )
      .addOption(dirOption())
      .option('--json', 'print the result as JSON')
      .action(async (flags: { dir: string; json?: boolean }) => {
        context.exit(await runPostcopyPause(context, flags));
      });
    postcopy
      .command('recover')
      .description(
        "resume a post-copy migration whose link broke and that ended in postcopy-paused: the target listens again (migrate-recover), the source resumes into it (migrate with resume) and sends the rest; then the supervisor serves the VM from the target's directory. Refused (exit 1, PostcopyStateError) when no post-copy of this VM is paused; a failed resume leaves both paused (try again)",
      )
      .addOption(dirOption())
      .option(
        '--to <address>',
        'where the target listens for the resumed stream: unix:PATH or tcp:HOST:PORT (port 0: any free one); default a fresh socket beside the first, or a fresh port on the same host',
      )
      .addOption(
        new Option(
          '--postcopy-bandwidth <bytes/s>',
          'limit of the resumed stream (0: unlimited; default unchanged)',
        ).argParser(nonNegativeInt('--postcopy-bandwidth')),
      )
      .addOption(
        new Option('--attempts <n>', 'attempts before giving up (default 3)').argParser(
          positiveInt('--attempts'),
        ),
      )
      .option('--json', 'print the summary as JSON')
      .action(async (flags: RecoverFlags) => {
        context.exit(await runPostcopyRecover(context, flags));
      });

    vm.command('upgrade')
      .description(
        "restart the running VM on another QEMU through a snapshot: a save with the VM's strategy in the portable format (external state files as the migration stream, never mapped-ram, so both older and newer binaries load it), then a load of it on --qemu after the compatibility check (the probe: the same configuration migrated into --qemu on scratch images; a refusal leaves the VM untouched). The snapshot stays: `qmpkit snapshot load <name> --qemu <old>` goes back",
      )
      .addOption(dirOption())
      .requiredOption(
        '--qemu <binary|version>',
        'the QEMU to run on (a path, a name on PATH or a release fetched with `qmpkit qemu fetch`)',
      )
      .option(
        '--name <snapshot>',
        'name of the snapshot taken for the move (default upgrade-<time>)',
      )
      .option('--force', 'skip the compatibility check')
      .option('--json', 'print {from, to, save, load} as JSON')
      .action(async (flags: UpgradeFlags) => {
        context.exit(await runUpgrade(context, flags));
      });

    vm.command('receive')
      .description(
        'start a QEMU that receives a live migration (the same configuration and pinned machine type, -incoming) under a supervisor for --dir; prints the address to give `qmpkit vm migrate --to` on the source, then waits until the guest runs here (exit 0; the supervisor serves the VM from --dir) or the migration fails (exit 2, the QEMU is gone). Ctrl-C gives up waiting',
      )
      .argument(
        '<config|vm-dir>',
        "the guest's configuration file, or a VM directory whose state.json holds it with the pinned machine type (e.g. the source's, copied over)",
      )
      .addOption(dirOption())
      .option(
        '--listen <address>',
        'tcp:HOST:PORT (port 0: any free one) or unix:PATH',
        'tcp:127.0.0.1:0',
      )
      .option(
        '--tls-dir <dir>',
        'TLS credentials (ca-cert.pem, server-cert.pem, server-key.pem); the source must use TLS',
      )
      .option('--postcopy', 'allow post-copy (needs userfaultfd here)')
      .addOption(
        new Option(
          '--disks <mode>',
          'copy: receive the disks too — fresh images in <dir>/disks (sizes from --disk-size), exported writable over NBD on the --listen host (TLS with --tls-dir); the address printed then names both ports (tcp:HOST:PORT,nbd=PORT) and the source must migrate with --disks copy. Needs a tcp: address',
        ).choices(['copy']),
      )
      .option(
        '--disk-size <node=size>',
        "with --disks copy: a writable disk's virtual size, the source's (`qemu-img info` there), e.g. boot=64M; repeat per disk. The source refuses a different size before it copies anything",
        parseDiskSize,
      )
      .option(
        '--machine-type <type>',
        "the source's pinned machine type (e.g. pc-i440fx-7.2), when the configuration names an alias",
      )
      .option('--console <chardev>', "keep this chardev's output, repeatable", collect)
      .option('--qemu <binary>', 'qemu-system binary (default qemu-system-x86_64)')
      .addOption(
        new Option(
          '--timeout <ms>',
          'how long the start may take until listening (default 120000)',
        ).argParser(positiveInt('--timeout')),
      )
      .action(async (source: string, flags: ReceiveFlags) => {
        context.exit(await runReceive(context, source, flags));
      });

    vm.command('clone')
      .description(
        "start N clones of a VM's external snapshot, each a VM of its own under its own detached supervisor (own VM directory, qcow2 overlays over the snapshot's frozen disks), loaded from the snapshot's state; a snapshot saved with `snapshot save --shared-ram` gives them its RAM file copy-on-write. Returns when all run and prints each clone's directory: every `vm`/`snapshot` verb takes it as --dir (stop one with `qmpkit vm stop --dir CLONE_DIR`). Refused inputs exit 1 with nothing created; when a clone does not start (exit 2) or on Ctrl-C (exit 130), the clones of the call are stopped and their directories removed",
      )
      .argument('<vm-dir>', 'the VM directory whose snapshot store holds the snapshot')
      .addOption(
        new Option('--count <n>', 'how many clones')
          .argParser(positiveInt('--count'))
          .makeOptionMandatory(),
      )
      .option('--snapshot <tag>', "the snapshot (default: the store's current one)")
      .option('--into <dir>', 'where the clone directories go (default <vm-dir>/clones)')
      .option(
        '--prefix <name>',
        'clone directories are <prefix>-1…<prefix>-N (default: the snapshot name)',
      )
      .addOption(
        new Option(
          '--ram <mode>',
          "shared: map the snapshot's RAM file copy-on-write (default); copy: each clone its own copy",
        ).choices(['shared', 'copy']),
      )
      .option('--paused', 'leave the clones paused after the load')
      .option('--qemu <binary>', 'qemu-system binary (default: the one that saved the snapshot)')
      .option('--json', 'print the clones as JSON')
      .action(async (vmDir: string, flags: CloneFlags) => {
        context.exit(await runClone(context, vmDir, flags));
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
      .option('--incoming <address>')
      .option('--from-state <file>')
      .option('--tls-dir <dir>')
      .option('--postcopy')
      .option('--machine-type <type>')
      .option('--clone <file>')
      .addOption(new Option('--disks <mode>').choices(['copy']))
      .option('--disk-size <node=size>', '', parseDiskSize)
      .action(async (flags: SuperviseFlags) => {
        context.exit(await runSupervise(context, flags));
      });
  },
};

interface CloneFlags {
  count: number;
  snapshot?: string;
  into?: string;
  prefix?: string;
  ram?: 'shared' | 'copy';
  paused?: boolean;
  qemu?: string;
  json?: boolean;
}

/** How many clone supervisors start at once (each a node process and a QEMU). */
const CLONE_CONCURRENCY = 4;

/**
 * `vm clone`: `prepareClones` makes each clone's directory (overlays, `clone.json`), then each
 * clone starts under a detached supervisor of its own, like `vm start` (the supervisor loads
 * the snapshot's state instead of booting), so every verb on a running VM works on a clone
 * (`--dir <clone dir>`) and the clones do not depend on this process. When any clone does not
 * start (or Ctrl-C), the clones of this call are stopped and their directories removed.
 */
async function runClone(
  context: CommandContext,
  vmDir: string,
  flags: CloneFlags,
): Promise<number> {
  const { io } = context;
  const paths = vmPaths(vmDir);
  const started = performance.now();
  let set: PreparedCloneSet;
  try {
    set = await prepareClones(paths.snapshots, flags.snapshot, {
      count: flags.count,
      into: flags.into ?? path.join(paths.dir, 'clones'),
      ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
      ...(flags.ram !== undefined ? { ram: flags.ram } : {}),
      ...(flags.paused === true ? { resume: false } : {}),
      ...(flags.qemu !== undefined ? { qemu: flags.qemu } : {}),
    });
  } catch (error) {
    io.stderr.write(`qmpkit: vm clone ${vmDir}: ${describeError(error)}\n`);
    return 1;
  }
  // The supervisors' control sockets must fit (checked before any starts).
  try {
    for (const c of set.clones) checkSocketPath(vmPaths(c.dir));
  } catch (error) {
    await set.discard();
    io.stderr.write(`qmpkit: vm clone ${vmDir}: ${describeError(error)}\n`);
    return 2;
  }

  const running: { dir: string; status: StatusResult }[] = [];
  const cancels = new Set<() => void>();
  let failure: { dir: string; error: unknown } | undefined;
  let interrupted = false;
  const off = io.onInterrupt(() => {
    interrupted = true;
    for (const cancel of cancels) cancel();
  });
  const queue = [...set.clones];
  const worker = async () => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      if (failure !== undefined || interrupted) return;
      let cancel: (() => void) | undefined;
      try {
        const status = await startSupervisor({
          dir: next.dir,
          clone: next.spec,
          env: { ...process.env, ...io.env },
          onCancel: (c) => {
            cancel = c;
            cancels.add(c);
          },
        });
        running.push({ dir: next.dir, status });
      } catch (error) {
        failure ??= { dir: next.dir, error };
      } finally {
        if (cancel !== undefined) cancels.delete(cancel);
      }
    }
  };
  try {
    await Promise.all(
      Array.from({ length: Math.min(CLONE_CONCURRENCY, set.clones.length) }, worker),
    );
  } finally {
    off();
  }
  if (failure !== undefined || interrupted) {
    await Promise.all(running.map((r) => stopClone(r.dir, r.status.pid)));
    await set.discard();
    const why = interrupted
      ? 'interrupted'
      : `clone ${failure?.dir} did not start: ${describeError(failure?.error)}`;
    // The outcome on a line of its own (the reason may end in QEMU's stderr), naming the
    // clones that had started, so a reader sees at once that nothing of the call is left.
    const stopped = running
      .map((r) => path.basename(r.dir))
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    io.stderr.write(
      `qmpkit: vm clone ${vmDir}: ${why}\nqmpkit: vm clone ${vmDir}: ${stopped.length === 0 ? 'no clone of this call had started' : `the ${stopped.length} clone${stopped.length === 1 ? '' : 's'} started by this call (${stopped.join(', ')}) ${stopped.length === 1 ? 'was' : 'were'} stopped`}; every clone directory removed\n`,
    );
    return interrupted ? EXIT_INTERRUPTED : 2;
  }
  running.sort((a, b) => a.dir.localeCompare(b.dir, 'en', { numeric: true }));
  const totalMs = performance.now() - started;
  const rows = running.map((r) => ({
    dir: r.dir,
    pid: r.status.pid,
    qemuPid: r.status.qemu.pid,
    runState: r.status.qemu.runState,
  }));
  if (flags.json === true)
    io.stdout.write(
      `${formatJson({ snapshot: set.snapshot.name, ram: set.ram, totalMs, clones: rows }, false)}\n`,
    );
  else {
    io.stdout.write(
      `${rows.length} clone${rows.length === 1 ? '' : 's'} of '${set.snapshot.name}' in ${ms(totalMs)} (RAM: ${set.ram})\n`,
    );
    for (const r of rows)
      io.stdout.write(`${r.dir}  supervisor pid ${r.pid}  qemu pid ${r.qemuPid}  ${r.runState}\n`);
  }
  return 0;
}

/**
 * Stops a clone this call started (it is removed next, so its outcome only goes to its log)
 * and waits until its supervisor has exited: it answers `stop` once QEMU has ended and only
 * then closes its socket and exits, and its directory must not be removed under it nor the
 * report say "stopped" while it still runs. Bounded: a supervisor that has not exited 10 s
 * after its answer is killed (its QEMU has ended by then).
 */
async function stopClone(dir: string, supervisorPid: number): Promise<void> {
  try {
    await withClient(dir, (client) => client.call('stop', {}));
  } catch {
    // Its supervisor ended already (it stops QEMU with itself); nothing else can be done here.
  }
  const deadline = Date.now() + 10_000;
  while (pidExists(supervisorPid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(supervisorPid, 'SIGKILL');
      } catch {
        // It exited in the meantime.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Whether a process `pid` exists (signal 0: checked, not sent). */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `Name (reason): message` of a typed error, so the class shows on the terminal. */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const reason = (error as { reason?: unknown }).reason;
  return `${error.name}${typeof reason === 'string' ? ` (${reason})` : ''}: ${error.message}`;
}

interface MigrateFlags {
  dir: string;
  to: string;
  qemu?: string;
  tcp?: boolean;
  tlsDir?: string;
  postcopy?: boolean;
  postcopyImmediate?: boolean;
  maxBandwidth?: number;
  postcopyBandwidth?: number;
  recoverAttempts?: number;
  disks?: 'shared' | 'copy';
  json?: boolean;
}

interface ReceiveFlags {
  dir: string;
  listen: string;
  tlsDir?: string;
  postcopy?: boolean;
  machineType?: string;
  disks?: 'copy';
  diskSize?: Record<string, number>;
  console?: string[];
  qemu?: string;
  timeout?: number;
}

/**
 * `vm receive`: a supervisor whose QEMU waits for a live migration. The address goes to stdout
 * as soon as it listens (`listening on URI`), the outcome when the guest runs here.
 */
async function runReceive(
  context: CommandContext,
  source: string,
  flags: ReceiveFlags,
): Promise<number> {
  const { io } = context;
  const asDir = await stat(source).then(
    (s) => s.isDirectory(),
    () => false,
  );
  let unsubscribe = () => {};
  try {
    const status = await startSupervisor({
      dir: flags.dir,
      ...(asDir ? {} : { config: source }),
      ...(flags.console !== undefined ? { consoles: flags.console } : {}),
      ...(flags.qemu !== undefined ? { qemu: flags.qemu } : {}),
      ...(flags.timeout !== undefined ? { timeout: flags.timeout } : {}),
      incoming: {
        listen: flags.listen,
        ...(asDir ? { fromState: path.join(source, 'state.json') } : {}),
        ...(flags.tlsDir !== undefined ? { tlsDir: flags.tlsDir } : {}),
        ...(flags.postcopy === true ? { postcopy: true } : {}),
        ...(flags.machineType !== undefined ? { machineType: flags.machineType } : {}),
        ...(flags.disks === 'copy'
          ? { disks: 'copy' as const, diskSizes: flags.diskSize ?? {} }
          : {}),
      },
      onListening: (uri) => {
        io.stdout.write(
          `listening on ${uri}\non the source: qmpkit vm migrate --dir SOURCE_DIR --to ${uri}${flags.tlsDir !== undefined ? ' --tls-dir CLIENT_TLS_DIR' : ''}${flags.postcopy === true ? ' --postcopy' : ''}${flags.disks === 'copy' ? ' --disks copy' : ''}\n`,
        );
      },
      onCancel: (cancel) => {
        unsubscribe = io.onInterrupt(() => {
          io.stderr.write('qmpkit: interrupted: no longer waiting for the guest\n');
          cancel();
        });
      },
    });
    io.stdout.write(
      `received: the guest ${status.qemu.runState === 'running' ? 'runs' : `is ${status.qemu.runState}`} in ${status.dir} (QEMU ${status.qemu.version}, pid ${status.qemu.pid})\n`,
    );
    return 0;
  } catch (error) {
    return reportFailure(io, 'receive into', flags.dir, error);
  } finally {
    unsubscribe();
  }
}

/**
 * A post-copy whose link broke, in the phase's words: `postcopy-paused (link broken)`, then
 * `recovering (attempt 2/3, last: …)` while a fresh channel is set up.
 */
function recoveryPhase(p: MigrateProgressLine): string {
  const r = p.recovery;
  if (p.phase === 'postcopy-paused')
    return r === undefined
      ? 'postcopy-paused (link broken)'
      : `postcopy-paused (link broken, ${r.attempt}/${r.of} recovery attempts failed)`;
  if (p.phase !== 'recovering' || r === undefined) return p.phase;
  const last = r.lastError === undefined ? '' : `, last: ${r.lastError.slice(0, 80)}`;
  return `recovering (attempt ${r.attempt}/${r.of}${last})`;
}

/**
 * What the progress view draws of a migration: while the disk mirrors copy (`disks: 'copy'`,
 * phase `mirroring`) their bytes summed, with how many are ready; from then on RAM, with the
 * disks' state in the phase's words (they keep mirroring the guest's writes until the switch).
 */
export function migrateProgress(line: MigrateProgressLine): ProgressLike {
  const p = { ...line, phase: recoveryPhase(line) };
  const disks = p.disks ?? [];
  if (disks.length === 0) return p.phase === line.phase ? line : p;
  const ready = disks.filter((d) => d.ready).length;
  const of = `${ready}/${disks.length} disk${disks.length === 1 ? '' : 's'} ready`;
  if (p.phase === 'mirroring') {
    const copied = disks.reduce((sum, d) => sum + d.offset, 0);
    const total = disks.reduce((sum, d) => sum + d.len, 0);
    return {
      phase: `mirroring (${of})`,
      bytes: copied,
      totalBytes: total > 0 ? total : undefined,
      percent: total > 0 ? Math.min(100, (100 * copied) / total) : undefined,
    };
  }
  return { ...p, phase: `${p.phase} (${of})` };
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
      to: /^(tcp|unix):/.test(flags.to) ? flags.to : path.resolve(flags.to),
      ...(flags.tlsDir !== undefined ? { tlsDir: path.resolve(flags.tlsDir) } : {}),
      ...(flags.postcopyImmediate === true
        ? { postcopy: 'immediate' as const }
        : flags.postcopy === true
          ? { postcopy: true }
          : {}),
      ...(flags.maxBandwidth !== undefined ? { maxBandwidth: flags.maxBandwidth } : {}),
      ...(flags.postcopyBandwidth !== undefined
        ? { postcopyBandwidth: flags.postcopyBandwidth }
        : {}),
      ...(flags.recoverAttempts !== undefined ? { recoverAttempts: flags.recoverAttempts } : {}),
      ...(flags.qemu !== undefined ? { qemu: flags.qemu } : {}),
      ...(flags.tcp === true ? { transport: 'tcp' as const } : {}),
      ...(flags.disks !== undefined ? { disks: flags.disks } : {}),
    },
    { onProgress: (p) => view.update(migrateProgress(p)) },
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
        outcome.qemu === null
          ? `migrated to ${outcome.dir}${outcome.postcopy ? ' (post-copy)' : ''}: the source QEMU reported completed over return-path, ${ms(outcome.totalMs)}, ${bytes(outcome.bytes)} of RAM sent; the VM runs there now (this supervisor has ended)\n`
          : `migrated to ${outcome.dir}: QEMU ${outcome.qemu.version} (pid ${outcome.qemu.pid}), ${ms(outcome.totalMs)}, guest downtime ${ms(outcome.downtimeMs ?? undefined)}, ${bytes(outcome.bytes)} of RAM sent\n`,
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
    if (
      isSupervisorError(error) &&
      error.remote.name === 'LiveMigrationError' &&
      error.remote.reason === 'postcopy-paused'
    ) {
      io.stderr.write(
        `qmpkit: migrate to '${flags.to}': ${error.remote.message}\nqmpkit: both QEMUs are kept; resume with: qmpkit vm postcopy recover --dir ${flags.dir}\n`,
      );
      return 1;
    }
    return reportFailure(io, 'migrate to', flags.to, error);
  } finally {
    unsubscribe();
    client.close();
  }
}

interface RecoverFlags {
  dir: string;
  to?: string;
  postcopyBandwidth?: number;
  attempts?: number;
  json?: boolean;
}

/** `vm postcopy pause`: a `postcopy-pause` request; the migrate request reports how it goes on. */
async function runPostcopyPause(
  context: CommandContext,
  flags: { dir: string; json?: boolean },
): Promise<number> {
  const { io } = context;
  try {
    const result = await withClient(flags.dir, (client) => client.call('postcopy-pause', {}));
    io.stdout.write(
      flags.json === true
        ? `${formatJson(result, false)}\n`
        : `post-copy stream to ${result.to} cut: ${result.recovers ? 'the migration recovers on a fresh channel by itself' : `both QEMUs are paused; resume with: qmpkit vm postcopy recover --dir ${flags.dir}`}\n`,
    );
    return 0;
  } catch (error) {
    return reportFailure(io, 'postcopy pause of', flags.dir, error);
  }
}

/** `vm postcopy recover`: a `postcopy-recover` request; the VM is then served from the target. */
async function runPostcopyRecover(context: CommandContext, flags: RecoverFlags): Promise<number> {
  const { io } = context;
  try {
    const summary = await withClient(flags.dir, (client) =>
      client.call('postcopy-recover', {
        ...(flags.to !== undefined
          ? {
              listen: flags.to.startsWith('unix:')
                ? `unix:${path.resolve(flags.to.slice('unix:'.length))}`
                : flags.to,
            }
          : {}),
        ...(flags.postcopyBandwidth !== undefined
          ? { postcopyBandwidth: flags.postcopyBandwidth }
          : {}),
        ...(flags.attempts !== undefined ? { attempts: flags.attempts } : {}),
      }),
    );
    io.stdout.write(
      flags.json === true
        ? `${formatJson(summary, false)}\n`
        : `post-copy recovered: the VM runs in ${summary.dir} (QEMU ${summary.qemu?.version ?? '?'}, pid ${summary.qemu?.pid ?? '?'}), ${ms(summary.totalMs)}\n`,
    );
    return 0;
  } catch (error) {
    return reportFailure(io, 'postcopy recover of', flags.dir, error);
  }
}

interface UpgradeFlags {
  dir: string;
  qemu: string;
  name?: string;
  force?: boolean;
  json?: boolean;
}

/** `vm upgrade`: save, then load on `--qemu` (see its description). */
async function runUpgrade(context: CommandContext, flags: UpgradeFlags): Promise<number> {
  const { io } = context;
  const name = flags.name ?? `upgrade-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const client = await ControlClient.connect(flags.dir);
  try {
    const from = (await client.call('status', {})).qemu.version;
    let step: 'save' | 'load' = 'save';
    try {
      const save = await client.call('save', { name, portable: true });
      step = 'load';
      const load = await client.call('load', {
        name,
        qemu: flags.qemu,
        ...(flags.force === true ? { force: true } : {}),
      });
      for (const warning of load.warnings) io.stderr.write(`qmpkit: warning: ${warning}\n`);
      if (flags.json === true)
        io.stdout.write(`${formatJson({ from, to: load.qemu.version, save, load }, false)}\n`);
      else {
        io.stdout.write(
          `upgraded: QEMU ${from} → ${load.qemu.version} through snapshot '${name}' (${save.strategy}; save ${ms(save.totalMs)}, load ${ms(load.totalMs)})\n`,
        );
        if (load.compat) io.stdout.write(`${compatLine(load.compat)}\n`);
        io.stdout.write(
          `back: qmpkit snapshot load ${name} --dir ${flags.dir} --qemu <the previous binary>\n`,
        );
      }
      return 0;
    } catch (error) {
      return reportFailure(io, step, name, error);
    }
  } finally {
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
    ...(flags.clone !== undefined ? { clone: flags.clone } : {}),
    ...(flags.incoming !== undefined
      ? {
          incoming: {
            listen: flags.incoming,
            ...(flags.fromState !== undefined ? { fromState: flags.fromState } : {}),
            ...(flags.tlsDir !== undefined ? { tlsDir: flags.tlsDir } : {}),
            ...(flags.postcopy === true ? { postcopy: true } : {}),
            ...(flags.machineType !== undefined ? { machineType: flags.machineType } : {}),
            ...(flags.disks === 'copy'
              ? { disks: 'copy' as const, diskSizes: flags.diskSize ?? {} }
              : {}),
          },
        }
      : {}),
    log: (line) => context.io.stdout.write(`${new Date().toISOString()} ${line}\n`),
    notify: (message) => {
      notified = true;
      if (fd === undefined) {
        context.io.stdout.write(`${formatJson(message, false)}\n`);
        return;
      }
      try {
        writeSync(fd, `${JSON.stringify(message)}\n`);
        // A receiving supervisor reports `listening` first and its outcome later.
        if (!('listening' in message)) closeSync(fd);
      } catch {
        // `vm start` gave up waiting; the log has it.
      }
    },
  });
  return exit === undefined || !notified ? 2 : 0;
}
