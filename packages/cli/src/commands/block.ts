/**
 * `qmpkit block commit|stream|mirror --dir VMDIR`: maintenance of a disk's image chain. On a
 * running VM (its supervisor answers) the job runs in QEMU through the supervisor, which owns
 * QMP; on a stopped VM it runs on the images through `qemu-storage-daemon` under the VM
 * directory's lock, and the state file gets the new chain. Progress on stderr like `backup`.
 */
import path from 'node:path';
import {
  chainJobOnStoppedVm,
  isChainJobError,
  isRunDirLockedError,
  isStorageDaemonError,
  isStorageDaemonVersionError,
} from '@qmpkit/machine';
import { Option } from 'commander';
import { ms } from '../demo/report.js';
import { isCliConnectError } from '../errors.js';
import { formatJson } from '../format.js';
import { ControlClient, isSupervisorError } from '../vm/client.js';
import { vmPaths } from '../vm/paths.js';
import type { BlockParams, BlockSummary } from '../vm/protocol.js';
import type { CliCommand, CommandContext } from './command.js';
import { progressView } from './snapshot.js';

interface BlockFlags {
  dir: string;
  disk?: string;
  top?: string;
  base?: string;
  to?: string;
  speed?: string;
  storageDaemon?: string;
  json?: boolean;
}

type Op = BlockParams['op'];

const dirOption = () =>
  new Option('-d, --dir <vm-dir>', 'the VM directory given to `qmpkit vm start`')
    .env('QMPKIT_VM_DIR')
    .makeOptionMandatory();

export const blockCommand: CliCommand = {
  name: 'block',
  register(program, context) {
    const block = program
      .command('block')
      .description(
        "maintain a disk's image chain: through the supervisor of a running VM, or with qemu-storage-daemon on a stopped one",
      );
    const common = (name: Op, description: string) =>
      block
        .command(name)
        .description(description)
        .addOption(dirOption())
        .option('--disk <device-id>', 'the disk (default: the only one)')
        .option('--speed <bytes-per-second>', 'rate limit of the job')
        .option(
          '--storage-daemon <qemu-storage-daemon>',
          "stopped VM: the daemon to run (a path, or a release fetched with `qmpkit qemu fetch`; default: the one of the VM's QEMU release)",
        )
        .option('--json', 'print the result as JSON');
    common('commit', 'merge layers down: the active layer (default) or --top, into --base')
      .option(
        '--top <node>',
        'top of the range (default: the active layer; the disk then uses the base)',
      )
      .option('--base <node>', 'the layer receiving the data (default: the bottom)')
      .action(async (flags: BlockFlags) => context.exit(await runBlock(context, flags, 'commit')));
    common('stream', 'pull the layers below the active one into it')
      .option('--base <node>', 'stop at this layer (default: pull everything)')
      .action(async (flags: BlockFlags) => context.exit(await runBlock(context, flags, 'stream')));
    common('mirror', 'copy the disk into a new image and move the disk onto it')
      .addOption(new Option('--to <image>', 'the new qcow2 image').makeOptionMandatory())
      .action(async (flags: BlockFlags) => context.exit(await runBlock(context, flags, 'mirror')));
  },
};

function paramsOf(flags: BlockFlags, op: Op): BlockParams {
  const speed = flags.speed === undefined ? undefined : Number(flags.speed);
  return {
    op,
    ...(flags.disk !== undefined ? { disk: flags.disk } : {}),
    ...(flags.top !== undefined ? { top: flags.top } : {}),
    ...(flags.base !== undefined ? { base: flags.base } : {}),
    ...(flags.to !== undefined ? { target: path.resolve(flags.to) } : {}),
    ...(speed !== undefined ? { speed } : {}),
  };
}

async function runBlock(context: CommandContext, flags: BlockFlags, op: Op): Promise<number> {
  const { io } = context;
  const params = paramsOf(flags, op);
  if (params.speed !== undefined && !(params.speed >= 0)) {
    io.stderr.write(`qmpkit: block ${op}: --speed must be a number of bytes per second\n`);
    return 2;
  }
  let client: ControlClient | undefined;
  try {
    client = await ControlClient.connect(flags.dir);
  } catch (error) {
    // No supervisor: the VM is stopped (or managed elsewhere, which the lock below tells).
    if (!isCliConnectError(error)) throw error;
  }
  const view = progressView(io, `${op}${client === undefined ? ' (stopped VM)' : ''}`);
  const started = performance.now();
  try {
    let result: BlockSummary;
    if (client !== undefined) {
      result = await client.request('block', params, { onProgress: (p) => view.update(p) }).result;
    } else {
      const paths = vmPaths(flags.dir);
      const done = await chainJobOnStoppedVm({
        stateFile: paths.stateFile,
        runDir: paths.runDir,
        request: params,
        ...(flags.storageDaemon !== undefined ? { qemu: flags.storageDaemon } : {}),
        logger: {
          warn: (message) => io.stderr.write(`qmpkit: block ${op}: warning: ${message}\n`),
        },
        onJob: (job) =>
          void (async () => {
            for await (const u of job.progress({ intervalMs: 500 }))
              if (u.kind === 'progress')
                view.update({
                  phase: op,
                  bytes: u.offset,
                  totalBytes: u.len,
                  percent: u.len > 0 ? (100 * u.offset) / u.len : undefined,
                });
          })().catch(() => undefined), // progress is a courtesy: the job's result says how it ended
      });
      result = { ...done, totalMs: performance.now() - started };
    }
    view.finish();
    if (flags.json === true) io.stdout.write(`${formatJson(result, false)}\n`);
    else
      io.stdout.write(
        `${op} of ${result.disk} in ${ms(result.totalMs)}: ${result.before.join(' ← ')}  →  ${result.after.join(' ← ')}\n`,
      );
    return 0;
  } catch (error) {
    view.stop();
    const remote = isSupervisorError(error) ? error.remote : undefined;
    const name = remote?.name ?? (error instanceof Error ? error.name : 'Error');
    const message = remote?.message ?? (error instanceof Error ? error.message : String(error));
    io.stderr.write(`qmpkit: block ${op}: ${name}: ${message}\n`);
    // Refused before anything ran (bad names, one layer, a VM someone else manages, no daemon
    // of the VM's QEMU or an unusable --storage-daemon): 2.
    const refused =
      name === 'ChainJobError' ||
      name === 'ProtocolError' ||
      isChainJobError(error) ||
      isRunDirLockedError(error) ||
      isStorageDaemonVersionError(error) ||
      (isStorageDaemonError(error) &&
        (error.reason === 'not-found' || error.reason === 'bad-binary'));
    return refused ? 2 : 1;
  } finally {
    client?.close();
  }
}
