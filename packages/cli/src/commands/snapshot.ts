import { existsSync } from 'node:fs';
import { type SnapshotInfo, type SnapshotRecord, SnapshotStore } from '@qmpkit/snapshots';
import { Option } from 'commander';
import { bytes, ms } from '../demo/report.js';
import { CliUsageError, isCliConnectError } from '../errors.js';
import { formatJson } from '../format.js';
import { type CliIo, painter, wantsColor } from '../io.js';
import { createProgress } from '../progress.js';
import { didYouMean } from '../suggest.js';
import { ControlClient, isSupervisorError, type PendingRequest } from '../vm/client.js';
import { vmPaths } from '../vm/paths.js';
import type {
  AbortCheck,
  ListResult,
  LoadSummary,
  OperationProgress,
  SaveSummary,
  WireError,
} from '../vm/protocol.js';
import { STRATEGIES } from '../vm/supervisor.js';
import { renderTree } from '../vm/tree.js';
import type { CliCommand, CommandContext } from './command.js';

/** Exit code of a command ended by Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

interface SaveFlags {
  dir: string;
  live?: boolean;
  portable?: boolean;
  sharedRam?: boolean;
  diskOnly?: boolean;
  requireQuiesce?: boolean;
  overwrite?: boolean;
  strategy?: (typeof STRATEGIES)[number];
  description?: string;
  json?: boolean;
}

const dirOption = () =>
  new Option('-d, --dir <vm-dir>', 'the VM directory given to `qmpkit vm start`')
    .env('QMPKIT_VM_DIR')
    .makeOptionMandatory();

export const snapshotCommand: CliCommand = {
  name: 'snapshot',
  register(program, context) {
    const snapshot = program
      .command('snapshot')
      .description('save, load, list and delete snapshots of a VM started with `qmpkit vm start`');

    snapshot
      .command('save')
      .description(
        'save the running VM (progress on stderr; Ctrl-C aborts, leaving the store unchanged, exit 130)',
      )
      .argument('<name>', 'snapshot name ([A-Za-z0-9][A-Za-z0-9._-]*, up to 64 characters)')
      .addOption(dirOption())
      .option('--live', 'external only: keep the guest running while RAM is saved')
      .option(
        '--portable',
        'external only: write the stream format, which QEMU 7.2 loads too (default on QEMU >= 9.0: mapped-ram)',
      )
      .option(
        '--shared-ram',
        'external only: a template for `qmpkit vm clone`: with the guest RAM in a shared memory-backend-file, leave it out of the stream (x-ignore-shared) and keep a copy of the file, which clones map copy-on-write (otherwise an ordinary save; the result says why)',
      )
      .option(
        '--disk-only',
        'external only: the disks alone (no RAM), the guest keeps running; its filesystems are frozen through its guest agent when it has one; loading it boots from the disks',
      )
      .option(
        '--require-quiesce',
        'with --disk-only: fail instead of taking a crash-consistent snapshot when the guest cannot be frozen',
      )
      .option('--overwrite', 'replace a snapshot of the same name')
      .addOption(
        new Option('--strategy <kind>', "strategy for this save (default: the VM's)").choices([
          ...STRATEGIES,
        ]),
      )
      .option('--description <text>', 'free text kept with the snapshot')
      .option('--json', 'print the result as JSON')
      .action(async (name: string, flags: SaveFlags) => {
        context.exit(
          await runTask(
            context,
            flags.dir,
            'save',
            name,
            flags.json === true,
            (client, onProgress) =>
              client.request(
                'save',
                {
                  name,
                  ...(flags.live ? { live: true } : {}),
                  ...(flags.portable ? { portable: true } : {}),
                  ...(flags.sharedRam ? { sharedRam: true } : {}),
                  ...(flags.diskOnly ? { diskOnly: true } : {}),
                  ...(flags.requireQuiesce ? { requireQuiesce: true } : {}),
                  ...(flags.overwrite ? { overwrite: true } : {}),
                  // Disk-only snapshots are external; another --strategy is refused by it.
                  ...(flags.strategy || flags.diskOnly
                    ? { strategy: flags.strategy ?? ('external' as const) }
                    : {}),
                  ...(flags.description !== undefined ? { description: flags.description } : {}),
                },
                { onProgress },
              ),
          ),
        );
      });

    snapshot
      .command('load')
      .description('bring the VM back to a snapshot (progress on stderr; Ctrl-C aborts, exit 130)')
      .argument('<name>', 'snapshot name')
      .addOption(dirOption())
      .option(
        '--qemu <binary|version>',
        'load on this QEMU (a path, a name on PATH or a release fetched with `qmpkit qemu fetch`); the VM runs on it afterwards',
      )
      .option(
        '--force',
        'skip the compatibility check (probe) of a load on another binary than the save',
      )
      .option('--json', 'print the result as JSON')
      .action(
        async (
          name: string,
          flags: { dir: string; json?: boolean; qemu?: string; force?: boolean },
        ) => {
          context.exit(
            await runTask(
              context,
              flags.dir,
              'load',
              name,
              flags.json === true,
              (client, onProgress) =>
                client.request(
                  'load',
                  {
                    name,
                    ...(flags.qemu !== undefined ? { qemu: flags.qemu } : {}),
                    ...(flags.force === true ? { force: true } : {}),
                  },
                  { onProgress },
                ),
            ),
          );
        },
      );

    snapshot
      .command('delete')
      .description('delete a snapshot (external layers others build on are merged first)')
      .argument('<name>', 'snapshot name')
      .addOption(dirOption())
      .action(async (name: string, flags: { dir: string }) => {
        const { io } = context;
        const client = await ControlClient.connect(flags.dir);
        try {
          const result = await client.call('delete', { name });
          io.stdout.write(
            `deleted '${result.name}' (${result.strategy}) in ${ms(result.totalMs)}${result.merged.length > 0 ? `; merged ${result.merged.length} layer(s) into their children` : ''}\n`,
          );
          context.exit(0);
        } catch (error) {
          context.exit(reportFailure(io, 'delete', name, error));
        } finally {
          client.close();
        }
      });

    snapshot
      .command('list')
      .description(
        'the snapshot tree (each under the one it was taken after; * marks the current one); reads the store on disk when no supervisor runs',
      )
      .addOption(dirOption())
      .option('--json', 'print {current, snapshots} as JSON')
      .action(async (flags: { dir: string; json?: boolean }) => {
        const { io } = context;
        const list = await readList(io, flags.dir);
        if (flags.json) io.stdout.write(`${formatJson(list, io.stdout.isTTY === true)}\n`);
        else
          io.stdout.write(
            renderTree(list.snapshots, list.current, {
              paint: painter(wantsColor(io.stdout, io.env)),
            }),
          );
      });
  },
};

/** From the supervisor when one runs, else straight from the manifest (read-only). */
async function readList(io: CliIo, dir: string): Promise<ListResult> {
  try {
    const client = await ControlClient.connect(dir, { timeout: 2000 });
    try {
      return await client.call('list', {});
    } finally {
      client.close();
    }
  } catch (error) {
    if (!isCliConnectError(error)) throw error;
  }
  const paths = vmPaths(dir);
  if (!existsSync(paths.dir)) throw new CliUsageError(`--dir ${paths.dir}: no such VM directory`);
  const manifest = `${paths.snapshots}/manifest.json`;
  io.stderr.write(`qmpkit: no supervisor runs at ${paths.dir}; read ${manifest}\n`);
  if (!existsSync(manifest)) return { current: null, snapshots: [] };
  const store = await SnapshotStore.open(paths.snapshots);
  return { current: store.manifest.current, snapshots: store.snapshots().map(infoOf) };
}

/** A manifest record without what only the store needs (console text, configuration). */
function infoOf(record: SnapshotRecord): SnapshotInfo {
  const {
    consoles: _consoles,
    config: _config,
    devices: _devices,
    vmstate: _vmstate,
    ...info
  } = record;
  return info;
}

interface TaskSummary {
  readonly name: string;
  readonly strategy: string;
  readonly totalMs: number;
  readonly downtimeMs: number | null;
  readonly bytes: number;
  /** Loads only. */
  readonly qemu?: LoadSummary['qemu'];
  readonly compat?: LoadSummary['compat'];
  readonly warnings?: readonly string[];
}

/** The compatibility line of a load on another binary than the save. */
export function compatLine(compat: NonNullable<LoadSummary['compat']>): string {
  switch (compat.check) {
    case 'forced':
      return 'compatibility: not checked (--force)';
    case 'none':
      return 'compatibility: not checked (the saving binary is gone and no vmstate dump of it was kept)';
    case 'static':
      return `compatibility: ${compat.verdict} (static check only, no probe ran: the saving binary is gone)${compat.flaggedSections.length > 0 ? `; flagged: ${compat.flaggedSections.join(', ')}` : ''}`;
    case 'probe':
      return `compatibility: ${compat.verdict} (probe loaded the state)${compat.flaggedSections.length > 0 ? `; statically flagged: ${compat.flaggedSections.join(', ')}, of which the probe loaded ${compat.flaggedButLoaded.length}` : ''}`;
  }
}

/** Progress on stderr: a bar on a terminal; otherwise a line per phase and per quarter. */
/** What a progress line needs for the view (a snapshot's or a migration's). */
export interface ProgressLike {
  readonly phase: string;
  readonly bytes: number;
  readonly totalBytes: number | undefined;
  readonly percent: number | undefined;
}

export function progressView(
  io: CliIo,
  label: string,
): { update(p: ProgressLike): void; finish(): void; stop(): void } {
  if (io.stderr.isTTY === true) {
    const bar = createProgress(io, { label });
    return {
      update(p) {
        if (p.totalBytes !== undefined && p.totalBytes > 0) bar.update(p.bytes, p.totalBytes);
        const amount =
          p.totalBytes !== undefined ? `${bytes(p.bytes)}/${bytes(p.totalBytes)}` : bytes(p.bytes);
        bar.status(`${p.phase} ${p.bytes > 0 || p.totalBytes !== undefined ? amount : ''}`.trim());
      },
      finish: () => bar.finish(),
      stop: () => bar.stop(),
    };
  }
  let phase = '';
  let quarter = -1;
  let last: ProgressLike | undefined;
  return {
    update(p) {
      last = p;
      const q = p.percent === undefined ? -1 : Math.floor(p.percent / 25);
      if (p.phase === phase && q <= quarter) return;
      if (p.phase !== phase) quarter = -1;
      phase = p.phase;
      quarter = Math.max(quarter, q);
      const amount =
        p.percent !== undefined
          ? ` ${p.percent.toFixed(0)}% (${bytes(p.bytes)} of ${bytes(p.totalBytes)})`
          : '';
      io.stderr.write(`${label}: ${p.phase}${amount}\n`);
    },
    finish() {
      // The last report is usually short of 100% (the work ends between two reports): a log
      // that says the work ended must say 100%, once.
      if (last?.percent === undefined || quarter >= 4) return;
      quarter = 4;
      const total = last.totalBytes ?? last.bytes;
      io.stderr.write(`${label}: ${last.phase} 100% (${bytes(total)} of ${bytes(total)})\n`);
    },
    stop() {},
  };
}

/**
 * A save or load: progress while it runs, the summary at the end. The first Ctrl-C asks the
 * supervisor to abort and waits for its answer (the store is checked there); a second one
 * stops waiting.
 */
async function runTask(
  context: CommandContext,
  dir: string,
  method: 'save' | 'load',
  name: string,
  json: boolean,
  send: (
    client: ControlClient,
    onProgress: (p: OperationProgress) => void,
  ) => PendingRequest<TaskSummary>,
): Promise<number> {
  const { io } = context;
  const client = await ControlClient.connect(dir);
  const view = progressView(io, `${method} ${name}`);
  let interrupts = 0;
  let giveUp: (() => void) | undefined;
  const gaveUp = new Promise<'gave-up'>((resolve) => {
    giveUp = () => resolve('gave-up');
  });
  const request = send(client, (p) => view.update(p));
  const unsubscribe = io.onInterrupt(() => {
    interrupts += 1;
    if (interrupts === 1) {
      view.stop();
      io.stderr.write(
        `qmpkit: interrupted: aborting the ${method} of '${name}' (Ctrl-C again to stop waiting)\n`,
      );
      // The snapshot request's own answer says how the abort ended (or that the supervisor is
      // gone).
      client.request('abort', { id: request.id }).result.catch(() => {});
    } else giveUp?.();
  });
  try {
    const outcome = await Promise.race([request.result, gaveUp]);
    if (outcome === 'gave-up') {
      io.stderr.write(
        `qmpkit: stopped waiting; the supervisor finishes the abort (qmpkit snapshot list --dir ${dir})\n`,
      );
      return EXIT_INTERRUPTED;
    }
    view.finish();
    for (const warning of outcome.warnings ?? []) io.stderr.write(`qmpkit: warning: ${warning}\n`);
    if (json) io.stdout.write(`${formatJson(outcome, false)}\n`);
    else {
      const verb = method === 'save' ? 'saved' : 'loaded';
      io.stdout.write(
        'consistency' in outcome && typeof outcome.consistency === 'string'
          ? `${verb} '${outcome.name}': ${outcome.strategy}, disks only (${outcome.consistency}-consistent), ${ms(outcome.totalMs)}\n`
          : `${verb} '${outcome.name}': ${outcome.strategy}, ${ms(outcome.totalMs)} (guest downtime ${ms(outcome.downtimeMs ?? undefined)}), ${bytes(outcome.bytes)} of VM state${outcome.qemu ? `; QEMU ${outcome.qemu.version}` : ''}\n`,
      );
      if (outcome.compat) io.stdout.write(`${compatLine(outcome.compat)}\n`);
      const shared = 'sharedRam' in outcome ? (outcome as SaveSummary).sharedRam : undefined;
      if (shared !== undefined)
        io.stdout.write(
          shared.used
            ? `RAM file kept for clones: ${bytes(shared.ramBytes)} (qmpkit vm clone maps it copy-on-write)\n`
            : `RAM saved in the stream, not as a file (${shared.reason}): ${shared.detail}\n`,
        );
    }
    if (interrupts > 0)
      io.stderr.write(`qmpkit: the ${method} had finished before the abort arrived\n`);
    return 0;
  } catch (error) {
    view.stop();
    return reportFailure(io, method, name, error);
  } finally {
    unsubscribe();
    client.close();
  }
}

/** Prints a failed request's error and returns its exit code. */
export function reportFailure(io: CliIo, method: string, name: string, error: unknown): number {
  if (!isSupervisorError(error)) {
    const message = error instanceof Error ? error.message : String(error);
    io.stderr.write(
      `qmpkit: ${method} '${name}': ${message}; the outcome is unknown (qmpkit vm status / snapshot list)\n`,
    );
    return 1;
  }
  const remote: WireError = error.remote;
  switch (remote.name) {
    case 'SnapshotAbortedError': {
      const check = remote.check as AbortCheck | undefined;
      const store =
        check === undefined
          ? 'the store is unchanged'
          : check.before === check.after
            ? check.after === null
              ? `the store is unchanged ('${name}' does not exist)`
              : `the store is unchanged ('${name}' is the one from before)`
            : `the store's '${name}' changed (${check.before} → ${check.after})`;
      io.stderr.write(
        `qmpkit: ${method} of '${name}' aborted; ${store}; the VM is ${check?.runState ?? 'in an unknown state'}\n`,
      );
      return EXIT_INTERRUPTED;
    }
    case 'SnapshotNotFoundError': {
      const known = Array.isArray(remote.known) ? remote.known.map(String) : [];
      const hint = didYouMean(name, known);
      io.stderr.write(
        `qmpkit: no snapshot '${name}'${hint ? `; ${hint}` : ''}${known.length > 0 ? ` (snapshots: ${known.join(', ')})` : ' (there are no snapshots)'}\n`,
      );
      return 1;
    }
    case 'SnapshotExistsError':
      io.stderr.write(
        `qmpkit: snapshot '${name}' already exists${remote.where === 'image' ? ' (as a tag in the disk image)' : ''}; use --overwrite to replace it\n`,
      );
      return 1;
    case 'ProtocolError':
      io.stderr.write(`qmpkit: ${remote.message}\n`);
      return 2;
    default:
      if (remote.snapshotCannotLoad === true) {
        // The "cannot load here" hierarchy: its reason first; a refusal touched nothing, a
        // load that failed after touching the VM (`touched`) says so.
        io.stderr.write(
          `qmpkit: ${method} '${name}' ${remote.touched === true ? 'failed' : 'refused'} (${String(remote.reason)}): ${remote.message}\n`,
        );
        return 1;
      }
      io.stderr.write(`qmpkit: ${method} '${name}': ${remote.name}: ${remote.message}\n`);
      return 1;
  }
}
