/**
 * The simulated QEMU: run state, block graph, devices, jobs, snapshots, migration and HMP,
 * composed into one table of command handlers.
 */

import { qmpError } from '../errors.js';
import { RawJson } from '../json/values.js';
import { hostPid } from '../platform/runtime.js';
import { DirtyBitmaps } from './bitmaps.js';
import { BlockGraph } from './block.js';
import { BlockJobs } from './blockjobs.js';
import { Devices, type MachineKind } from './devices.js';
import { BlockExports } from './exports.js';
import { Hmp } from './hmp.js';
import type { HandlerTable, ModelHost } from './host.js';
import { Jobs } from './jobs.js';
import { resolveMachineType } from './machine-types.js';
import { Migration } from './migration.js';
import { Objects } from './objects.js';
import { RunState } from './runstate.js';
import { Snapshots } from './snapshots.js';

export interface VmOptions {
  /** `-machine none` (no buses, no devices) or a PC (`pci.0`, `ide.0`/`ide.1`). Default 'pc'. */
  readonly machine?: MachineKind;
  /** Machine type written into migration streams. Default 'none' / the version's `pc` (`pc-i440fx-7.2`). */
  readonly machineType?: string;
  /** Started with `-S`: run state 'prelaunch' until `cont`. */
  readonly paused?: boolean;
  /** Started with `-incoming defer` ('defer') or `-incoming unix:PATH` / `tcp:HOST:PORT`. */
  readonly incoming?: string;
  /** Block nodes present at start (like `-blockdev`), in order. */
  readonly blockdev?: readonly Record<string, unknown>[];
  /** Devices present at start (like `-device`), in order. */
  readonly device?: readonly Record<string, unknown>[];
  /** Size of a saved VM state in internal snapshots. Default 765 (`-machine none`). */
  readonly vmStateSize?: number;
  /** Objects present at start (like `-object`), in order: iothreads, memory backends, secrets. */
  readonly object?: readonly Record<string, unknown>[];
  /** `-machine memory-backend=ID`: that object is the guest RAM (it cannot be deleted). */
  readonly memoryBackend?: string;
  /**
   * Guest RAM a migration copies, in bytes (query-migrate's `ram.total`). Default 0 for
   * `-machine none` (as QEMU reports it) and 128 MiB (QEMU's default `-m`) for a PC.
   */
  readonly ramBytes?: number;
  /**
   * Bytes per second the running guest dirties, in the migration's simulated time (each step
   * is 100 ms): with `max-bandwidth` at or below it a migration never converges. Default 0.
   */
  readonly dirtyRate?: number;
}

export class VmModel {
  readonly run: RunState;
  readonly block: BlockGraph;
  readonly devices: Devices;
  readonly snapshots: Snapshots;
  readonly jobs: Jobs;
  /** Mirror, commit, stream and backup on `jobs`. */
  readonly blockJobs: BlockJobs;
  readonly bitmaps: DirtyBitmaps;
  /** The NBD server and its exports (QMP side only). */
  readonly exports: BlockExports;
  readonly migration: Migration;
  readonly hmp: Hmp;
  readonly objects: Objects;

  constructor(
    private readonly host: ModelHost,
    options: VmOptions,
    private readonly data: { schemaWire: string; commandNames: readonly string[]; target: string },
  ) {
    const machine = options.machine ?? 'pc';
    const initial =
      options.incoming !== undefined ? 'inmigrate' : options.paused ? 'prelaunch' : 'running';
    this.run = new RunState(host, initial, options.paused !== true, machine === 'pc');
    this.block = new BlockGraph(host);
    this.devices = new Devices(host, this.block, machine, this.run);
    this.snapshots = new Snapshots(host, this.block, this.run, {
      ...(options.vmStateSize !== undefined ? { vmStateSize: options.vmStateSize } : {}),
    });
    this.jobs = new Jobs(host, this.block, this.run, this.snapshots);
    this.blockJobs = new BlockJobs(host, this.block, this.jobs);
    this.bitmaps = new DirtyBitmaps(this.block);
    this.exports = new BlockExports(host, this.block);
    this.migration = new Migration(host, this.run, this.block, {
      ...(options.incoming !== undefined ? { incoming: options.incoming } : {}),
      machineType:
        options.machineType ??
        (machine === 'none'
          ? 'none'
          : resolveMachineType(`${host.version.qemu.major}.${host.version.qemu.minor}`, 'pc')),
      machine,
      ...(options.ramBytes !== undefined ? { ramBytes: options.ramBytes } : {}),
      ...(options.dirtyRate !== undefined ? { dirtyRate: options.dirtyRate } : {}),
    });
    this.objects = new Objects(host);
    for (const args of options.object ?? []) this.objects.add(args);
    if (options.memoryBackend !== undefined) {
      const ram = this.objects.find(options.memoryBackend);
      if (!ram) throw qmpError(`Memory backend '${options.memoryBackend}' not found`);
      ram.usedBy = 'machine';
    }
    this.hmp = new Hmp(this.run, this.snapshots, this.objects, host.version);
    for (const args of options.blockdev ?? []) this.block.add(args as { driver: string });
    for (const args of options.device ?? []) this.devices.add(args, true);
    // QEMU's cleanup after `quit` closes every export (its BLOCK_EXPORT_DELETED events come
    // before the reply; 7.2 oldest first, 10.0 newest first): measured on qemu-system and
    // qemu-storage-daemon 7.2 and 10.0.
    this.run.onQuit.push(() => this.exports.closeAll());
    // After an outgoing migration the block nodes are inactive until `cont`.
    this.run.onStart.push(() => {
      for (const node of this.block.all()) node.inactive = false;
      return undefined;
    });
  }

  start(): void {
    this.migration.startIncomingFromCommandLine();
  }

  close(): void {
    this.migration.close();
  }

  handlers(): HandlerTable {
    const table: HandlerTable = new Map();
    this.run.handlers(table);
    this.block.handlers(table);
    this.devices.handlers(table);
    this.jobs.handlers(table);
    this.blockJobs.handlers(table);
    this.bitmaps.handlers(table);
    this.exports.handlers(table);
    this.migration.handlers(table);
    this.hmp.handlers(table);
    this.objects.handlers(table);
    const devicesQomList = table.get('qom-list')!;
    table.set('qom-list', (args, context) => {
      const objects = this.objects.qomList(String((args as { path?: unknown }).path));
      return objects ?? devicesQomList(args, context);
    });
    const { version } = this.host;
    table.set('query-version', () => ({ qemu: { ...version.qemu }, package: version.package }));
    let schema: RawJson | undefined;
    table.set('query-qmp-schema', () => {
      schema ??= new RawJson(this.data.schemaWire);
      return schema;
    });
    table.set('query-commands', () => this.data.commandNames.map((name) => ({ name })));
    table.set('query-name', () => ({}));
    table.set('query-uuid', () => ({ UUID: '00000000-0000-0000-0000-000000000000' }));
    table.set('query-target', () => ({ arch: this.data.target }));
    table.set('query-kvm', () => ({ enabled: false, present: true }));
    table.set('query-yank', () => [{ type: 'migration' }]);
    table.set('query-fdsets', () => []);
    table.set('query-mice', () => []);
    table.set('query-cpus-fast', () =>
      this.devices.machine === 'none'
        ? []
        : [
            {
              'cpu-index': 0,
              'qom-path': '/machine/unattached/device[0]',
              'thread-id': hostPid,
              props: { 'core-id': 0, 'thread-id': 0, 'socket-id': 0 },
              target: 'x86_64',
            },
          ],
    );
    table.set('qom-get', () => {
      throw qmpError('qmpkit fake-qmp does not model qom-get');
    });
    return table;
  }
}
