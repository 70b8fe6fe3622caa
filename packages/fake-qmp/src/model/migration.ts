/**
 * Migration as QEMU 7.2 and 10.0 show it on QMP (capabilities, parameters and statistics are
 * those the imitated version's schema has): capabilities and parameters, `migrate` to
 * `unix:`/`tcp:` (the fake really connects and writes a small stream; `file:` and 10.0's
 * `channels` where the schema has them), `query-migrate` with RAM progress, `migrate_cancel`,
 * `pause-before-switchover` + `migrate-continue`, `return-path`, and the incoming side
 * (`-incoming defer` + `migrate-incoming`, which listens and reads a stream) — so two fakes
 * migrate to each other, or a fake and a real QEMU with `-machine none`.
 *
 * The state sequence and events are QEMU's (checked against both versions by the contract
 * scenarios): source `setup`, MIGRATION_PASS 1, `active`, a pass per bitmap sync, STOP,
 * [`pre-switchover`], [`device`], the last pass, `completed`; target `setup`, `active`,
 * [RESUME], `completed`. MIGRATION / MIGRATION_PASS only with the `events` capability.
 * Progress is counted in steps (MIGRATION_STEP_MS of simulated time each), never wall time.
 * No Node here: channels come from the platform (`#node`'s `channelNet`: Node's `net`, or an
 * in-memory network of the page's fakes), bytes are `Uint8Array`s (`migration-stream.ts`).
 */
import type { SchemaTables } from '@qmpkit/qapi/runtime-v1';
import { channelNet } from '#node';
import { qmpError } from '../errors.js';
import type {
  ByteChannel,
  ByteChannelEvents,
  ChannelAddress,
  ChannelListener,
} from '../platform/types.js';
import type { BlockGraph } from './block.js';
import { type HandlerTable, handler, type ModelHost } from './host.js';
import {
  concatBytes,
  parseStream,
  ReturnPathReader,
  returnPathShut,
  streamHead,
  streamMachineType,
  streamTail,
} from './migration-stream.js';
import type { RunState } from './runstate.js';
import { commandTakes, enumValues, onlySchemaMembers } from './schema.js';

/**
 * `query-migrate-parameters` of a fresh QEMU, every parameter 7.2 or 10.0 has; each version
 * answers with those its `MigrationParameters` has (7.2: the compress-* and block-incremental
 * ones, 10.0: direct-io, mode, zero-page-detection, …).
 */
function defaultParameters(tables: SchemaTables): Record<string, unknown> {
  return onlySchemaMembers(tables, 'MigrationParameters', {
    'announce-initial': 50,
    'announce-max': 550,
    'announce-rounds': 5,
    'announce-step': 100,
    'compress-level': 1,
    'compress-threads': 8,
    'compress-wait-thread': true,
    'decompress-threads': 2,
    'throttle-trigger-threshold': 50,
    'cpu-throttle-initial': 20,
    'cpu-throttle-increment': 10,
    'cpu-throttle-tailslow': false,
    'tls-creds': '',
    'tls-hostname': '',
    'tls-authz': '',
    'max-bandwidth': 134217728,
    'downtime-limit': 300,
    'x-checkpoint-delay': 20000,
    'block-incremental': false,
    'multifd-channels': 2,
    'xbzrle-cache-size': 67108864,
    'max-postcopy-bandwidth': 0,
    'max-cpu-throttle': 99,
    'multifd-compression': 'none',
    'multifd-zlib-level': 1,
    'multifd-zstd-level': 1,
    'multifd-qatzip-level': 1,
    'avail-switchover-bandwidth': 0,
    'vcpu-dirty-limit': 1,
    'x-vcpu-dirty-limit-period': 1000,
    mode: 'normal',
    'zero-page-detection': 'multifd',
    'direct-io': false,
  });
}

type MigrationStatus =
  | 'none'
  | 'setup'
  | 'cancelling'
  | 'cancelled'
  | 'active'
  | 'postcopy-active'
  | 'pre-switchover'
  | 'device'
  | 'completed'
  | 'failed';

const RUNNING_STATES: readonly MigrationStatus[] = [
  'setup',
  'active',
  'cancelling',
  'postcopy-active',
  'pre-switchover',
  'device',
];

/** States `migrate_cancel` acts on (QEMU's `migration_is_running` minus cancelling). */
const CANCELLABLE: readonly MigrationStatus[] = [
  'setup',
  'active',
  'postcopy-active',
  'pre-switchover',
  'device',
];

/**
 * Simulated milliseconds one migration step stands for. Progress is counted in steps, not in
 * wall time: each step (`FakeTiming.migrationMs` of real time) sends `max-bandwidth` × 100 ms
 * of RAM, so `query-migrate` numbers follow from the steps taken alone and tests are exact.
 */
export const MIGRATION_STEP_MS = 100;

const PAGE = 4096;

/** Where the outgoing stream goes: a channel (socket) or a file. */
interface Sink {
  write(data: Uint8Array): void;
  /** No more data; `done` when it is out (a file: at once). */
  end(): void;
  destroy(): void;
}

/** A `SocketAddress` from a `unix:`/`tcp:` URI. */
function channelAddress(uri: string): ChannelAddress | undefined {
  if (uri.startsWith('unix:')) return { type: 'unix', path: uri.slice(5) };
  if (uri.startsWith('tcp:')) {
    const rest = uri.slice(4);
    const colon = rest.lastIndexOf(':');
    if (colon < 0) return undefined;
    const host = rest.slice(0, colon).replace(/^\[|\]$/g, '');
    return { type: 'inet', host, port: Number(rest.slice(colon + 1)) };
  }
  return undefined;
}

const addressText = (a: ChannelAddress): string =>
  a.type === 'unix' ? a.path : `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;

/** QEMU's text for an errno code of a failed connect/bind. */
function errnoText(code: string, message: string): string {
  switch (code) {
    case 'ENOENT':
      return 'No such file or directory';
    case 'ECONNREFUSED':
      return 'Connection refused';
    case 'EADDRINUSE':
      return 'Address already in use';
    case 'EACCES':
      return 'Permission denied';
    default:
      return message;
  }
}

/** A 10.0 `channels` list (one `main` channel) as the URI it stands for. */
function channelUri(channels: readonly Record<string, unknown>[]): string {
  if (channels.length !== 1) throw qmpError('Channel list has more than one entries');
  const addr = (channels[0]?.addr ?? {}) as Record<string, unknown>;
  if (addr.transport === 'socket' && addr.type === 'unix') return `unix:${String(addr.path)}`;
  if (addr.transport === 'socket' && addr.type === 'inet')
    return `tcp:${String(addr.host)}:${String(addr.port)}`;
  if (addr.transport === 'file') return `file:${String(addr.filename)}`;
  return `${String(addr.transport)}:`;
}

/**
 * Progress of the outgoing RAM, advanced one step at a time: pass 1 sends all of RAM, every
 * later pass what the guest dirtied during the one before, until the rest fits in
 * `downtime-limit` at `max-bandwidth` — then the switch-over sends it with the VM stopped.
 */
interface RamProgress {
  total: number;
  remaining: number;
  /** RAM bytes sent (pages), before and during the switch-over. */
  precopy: number;
  downtimeBytes: number;
  /** Bytes the guest dirtied in the current pass (sent in the next). */
  dirtied: number;
  syncs: number;
  steps: number;
  /** Simulated ms of the switch-over (`downtime`). */
  downtimeMs: number;
}

export class Migration {
  /** Every `MigrationCapability` of the imitated version, in schema order (QEMU's order). */
  readonly capabilities: Map<string, boolean>;
  readonly parameters: Record<string, unknown>;
  status: MigrationStatus = 'none';
  /**
   * Bytes of guest RAM a migration copies (`ram.total`): `VmOptions.ramBytes`, by default 0
   * for `-machine none` (as QEMU reports) and 128 MiB for a PC.
   */
  ramBytes: number;
  /** Bytes per simulated second the guest dirties while it runs (`VmOptions.dirtyRate`). */
  dirtyRate: number;
  private errorDesc: string | undefined;
  private ram: RamProgress = newProgress(0);
  private streamBytes = 0;
  private sink: Sink | undefined;
  /** The run state before the switch-over stopped the VM (restored on cancel or failure). */
  private vmWasRunning = false;
  /** Resumes the switch-over parked at `pre-switchover`. */
  private continueSwitchover: (() => void) | undefined;
  /** Incoming side: the URI given on the command line ('defer' for -incoming defer). */
  private incoming: string | undefined;
  private incomingStarted = false;
  private incomingAddress: Record<string, unknown>[] | undefined;
  private incomingListener: ChannelListener | undefined;
  private incomingChannel: ByteChannel | undefined;
  readonly machineType: string;

  constructor(
    private readonly host: ModelHost,
    private readonly run: RunState,
    private readonly block: BlockGraph,
    options: {
      incoming?: string;
      machineType: string;
      machine: 'none' | 'pc';
      ramBytes?: number;
      dirtyRate?: number;
    },
  ) {
    this.incoming = options.incoming;
    this.machineType = options.machineType;
    this.ramBytes = options.ramBytes ?? (options.machine === 'none' ? 0 : 128 * 1024 * 1024);
    this.dirtyRate = options.dirtyRate ?? 0;
    this.capabilities = new Map(
      enumValues(host.tables, 'MigrationCapability').map((c) => [c, false]),
    );
    this.parameters = defaultParameters(host.tables);
  }

  /** Starts listening when the fake was created with `-incoming unix:…` / `tcp:…`. */
  startIncomingFromCommandLine(): void {
    if (this.incoming === undefined || this.incoming === 'defer') return;
    this.startIncoming(this.incoming).catch(() => {
      // QEMU exits (status 1, the reason on stderr) when its -incoming address cannot be
      // used; so does the fake — the exit code is what a caller sees of it.
      this.host.later(0, () => this.host.exit(1));
    });
  }

  close(): void {
    this.incomingListener?.close();
    this.incomingChannel?.destroy();
    this.sink?.destroy();
  }

  private get events(): boolean {
    return this.capabilities.get('events') === true;
  }

  private setStatus(status: MigrationStatus): void {
    this.status = status;
    if (this.events) this.host.emit('MIGRATION', { status });
  }

  private pass(n: number): void {
    if (this.events) this.host.emit('MIGRATION_PASS', { pass: n });
  }

  private get bandwidth(): number {
    const b = Number(this.parameters['max-bandwidth'] ?? 0);
    return b > 0 ? b : Number.MAX_SAFE_INTEGER;
  }

  /** `expected-downtime` in ms: what is left, at `max-bandwidth`. */
  private expectedDowntime(): number {
    return Math.ceil((this.ram.remaining * 1000) / this.bandwidth);
  }

  private info(): Record<string, unknown> {
    // The incoming side (also a file: start that failed and left 'setup' behind).
    if (this.incomingStarted || (this.run.status === 'inmigrate' && this.status === 'setup')) {
      if (this.status === 'setup' && this.incomingAddress)
        return {
          ...(this.host.facts.incomingSetupStatusShown ? { status: 'setup' } : {}),
          'socket-address': this.incomingAddress,
        };
      return { status: this.status === 'none' ? undefined : this.status };
    }
    if (this.status === 'none') return {};
    if (this.status === 'failed') return { status: 'failed', 'error-desc': this.errorDesc };
    if (this.status === 'cancelled') return { status: 'cancelled', 'error-desc': this.errorDesc };
    const done = this.status === 'completed';
    const ram = this.ram;
    const total = ram.steps * MIGRATION_STEP_MS + (done ? ram.downtimeMs : 0);
    const sent = ram.precopy + ram.downtimeBytes;
    const transferred =
      sent + (this.host.facts.migrationTransferredCountsStream ? this.streamBytes : 0);
    return {
      status: this.status,
      'total-time': total,
      'setup-time': 0,
      downtime: done ? ram.downtimeMs : undefined,
      'expected-downtime': done ? undefined : this.expectedDowntime(),
      ram: onlySchemaMembers(this.host.tables, 'MigrationStats', {
        transferred,
        remaining: ram.remaining,
        total: ram.total,
        duplicate: 0,
        skipped: 0,
        normal: sent / PAGE,
        'normal-bytes': sent,
        'dirty-pages-rate': this.run.running ? Math.floor(this.dirtyRate / PAGE) : 0,
        mbps: total > 0 ? (transferred * 8) / 1000 / total : 0,
        'dirty-sync-count': ram.syncs,
        'postcopy-requests': 0,
        'page-size': PAGE,
        'multifd-bytes': 0,
        'pages-per-second': total > 0 ? Math.floor((sent / PAGE / total) * 1000) : 0,
        'precopy-bytes': ram.precopy,
        'downtime-bytes': ram.downtimeBytes,
        'postcopy-bytes': 0,
        'dirty-sync-missed-zero-copy': 0,
      }),
    };
  }

  private uriError(uri: string): string | undefined {
    if (/^(tcp|unix|vsock|rdma|exec|fd):/.test(uri)) return undefined;
    // `file:` migration exists where the schema's MigrationAddressType has it (QEMU ≥ 8.2).
    if (uri.startsWith('file:') && this.fileMigration) return undefined;
    return "Parameter 'uri' expects a valid migration protocol";
  }

  private get fileMigration(): boolean {
    return enumValues(this.host.tables, 'MigrationAddressType').includes('file');
  }

  /** Creates (truncates) a `file:` target like QEMU, or says why it cannot. */
  private createFile(file: string): string | undefined {
    try {
      this.host.storage.create(file, 0);
      return undefined;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      const reason =
        code === 'EISDIR'
          ? 'Is a directory'
          : code === 'ENOENT'
            ? 'No such file or directory'
            : code === 'EACCES'
              ? 'Permission denied'
              : (error as Error).message;
      return `Could not create '${file}': ${reason}`;
    }
  }

  private migrate(uri: string): void {
    if (RUNNING_STATES.includes(this.status))
      throw qmpError("There's a migration process in progress");
    if (this.run.status === 'inmigrate')
      throw qmpError('Guest is waiting for an incoming migration');
    if (this.run.status === 'postmigrate')
      throw qmpError("Can't migrate the vm that was paused due to previous migration");
    this.errorDesc = undefined;
    this.continueSwitchover = undefined;
    this.ram = newProgress(this.ramBytes);
    this.streamBytes = 0;
    this.setStatus('setup');
    // QEMU reads the URI after entering 'setup': a bad one fails the migration too.
    const invalid =
      this.uriError(uri) ??
      (uri.startsWith('fd:')
        ? `File descriptor named '${uri.slice(3)}' has not been found`
        : uri.startsWith('file:')
          ? this.createFile(uri.slice(5))
          : undefined);
    if (invalid !== undefined) {
      this.setStatus('failed');
      throw qmpError(invalid);
    }
    this.host.later(0, () => this.connect(uri));
  }

  private fail(desc: string): void {
    this.errorDesc = desc;
    this.sink?.destroy();
    this.sink = undefined;
    this.setStatus('failed');
  }

  private connect(uri: string): void {
    if (this.status !== 'setup') return; // cancelled before it connected
    const returnPath = this.capabilities.get('return-path') === true;
    if (uri.startsWith('file:')) {
      const file = uri.slice(5);
      let offset = 0;
      this.sink = {
        write: (data) => {
          this.host.storage.write(file, offset, data);
          offset += data.length;
        },
        end: () => this.completed(),
        destroy: () => {},
      };
      this.start(false);
      return;
    }
    const address = channelAddress(uri);
    if (address === undefined) {
      this.fail(`qmpkit fake-qmp does not model '${uri.split(':')[0]}:' migration`);
      return;
    }
    const target = addressText(address);
    const shut = new ReturnPathReader((failed) => this.targetShut(failed));
    let shutSeen = false;
    const channel = channelNet.connect(address, {
      connect: () => {
        if (this.status === 'setup') this.start(returnPath);
      },
      data: (chunk) => {
        if (returnPath) shut.push(chunk);
      },
      end: () => {
        shutSeen = true;
        this.targetGone(returnPath);
      },
      error: (code, message) => {
        if (this.status === 'setup')
          this.fail(`Failed to connect to '${target}': ${errnoText(code, message)}`);
        else if (!shutSeen) this.targetGone(returnPath);
      },
    });
    this.sink = {
      write: (data) => channel.write(data),
      // Without a return path the stream is done once written; with one, the target's SHUT
      // (or its end) decides.
      end: () => {
        channel.end();
        if (!returnPath) this.completed();
      },
      destroy: () => channel.destroy(),
    };
  }

  /** The channel is up: the stream's head goes out, pass 1 begins. */
  private start(returnPath: boolean): void {
    const head = streamHead(this.machineType, { returnPath });
    this.streamBytes += head.length;
    this.sink?.write(head);
    this.ram.syncs = 1;
    this.pass(1);
    this.setStatus('active');
    this.host.later(this.host.timing.migrationMs, () => this.step());
  }

  /** Threshold for the switch-over: what `downtime-limit` allows at `max-bandwidth`. */
  private get threshold(): number {
    return (this.bandwidth * Number(this.parameters['downtime-limit'] ?? 300)) / 1000;
  }

  /** A dirty-bitmap sync: a new pass, what the guest dirtied is now to be sent. */
  private sync(): void {
    const ram = this.ram;
    ram.syncs++;
    this.pass(ram.syncs);
    ram.remaining += ram.dirtied;
    ram.dirtied = 0;
  }

  /**
   * One iteration (QEMU's `migration_iteration_run`): when the rest looks small enough, sync
   * to count what the guest dirtied and switch over if it still fits `downtime-limit`;
   * otherwise send one step's worth.
   */
  private step(): void {
    if (this.status !== 'active') return;
    const ram = this.ram;
    if (ram.remaining <= this.threshold) {
      // Nothing pending at all (no RAM, nothing dirtied): QEMU completes without a sync.
      if (ram.remaining + ram.dirtied > 0) this.sync();
      if (ram.remaining <= this.threshold) {
        this.switchover();
        return;
      }
    }
    const budget = Math.floor((this.bandwidth * MIGRATION_STEP_MS) / 1000 / PAGE) * PAGE;
    const sent = Math.min(ram.remaining, Math.max(PAGE, budget));
    ram.remaining -= sent;
    ram.precopy += sent;
    ram.steps++;
    if (this.run.running)
      ram.dirtied = Math.min(
        ram.total,
        ram.dirtied + Math.floor((this.dirtyRate * MIGRATION_STEP_MS) / 1000 / PAGE) * PAGE,
      );
    // The pass is over: a bitmap sync finds what the guest dirtied meanwhile.
    if (ram.remaining === 0) this.sync();
    this.host.later(this.host.timing.migrationMs, () => this.step());
  }

  /** Stops the VM; waits at `pre-switchover` when asked to, then sends the rest. */
  private switchover(): void {
    this.vmWasRunning = this.run.running;
    if (this.vmWasRunning) this.run.stopVm('finish-migrate');
    else this.run.status = 'finish-migrate';
    const rest = () => {
      this.continueSwitchover = undefined;
      const pause = this.capabilities.get('pause-before-switchover') === true;
      if (pause || this.host.facts.migrationDeviceState) this.setStatus('device');
      const ram = this.ram;
      ram.syncs++;
      this.pass(ram.syncs);
      ram.downtimeBytes = ram.remaining + ram.dirtied;
      ram.remaining = 0;
      ram.dirtied = 0;
      ram.downtimeMs = Math.ceil((ram.downtimeBytes * 1000) / this.bandwidth);
      const tail = streamTail(this.vmWasRunning ? 'running' : 'paused');
      this.streamBytes += tail.length;
      this.sink?.write(tail);
      this.sink?.end();
    };
    if (this.capabilities.get('pause-before-switchover') === true) {
      this.continueSwitchover = rest;
      this.setStatus('pre-switchover');
      return;
    }
    rest();
  }

  /** The whole stream is out (and, with a return path, the target said it loaded it). */
  private completed(): void {
    if (this.status !== 'device' && this.status !== 'active') return;
    this.sink = undefined;
    this.run.status = 'postmigrate';
    for (const node of this.block.all()) node.inactive = true;
    this.setStatus('completed');
  }

  /** The target's SHUT on the return path. */
  private targetShut(failed: boolean): void {
    if (!failed) {
      this.completed();
      return;
    }
    this.sourceFailed(this.host.facts.migrationTargetGoneDesc);
  }

  /**
   * The target closed the channel: a failure while the stream still flows, and after it with a
   * return path (no SHUT came). Without one the source has already completed.
   */
  private targetGone(returnPath: boolean): void {
    const flowing = this.status === 'active' || this.status === 'pre-switchover';
    if (flowing || (this.status === 'device' && returnPath))
      this.sourceFailed(this.host.facts.migrationTargetGoneDesc);
  }

  /** A migration that failed after it started: the source's guest runs on (QEMU restarts it). */
  private sourceFailed(desc: string): void {
    const restart = this.run.status === 'finish-migrate';
    this.fail(desc);
    if (restart) this.restoreVm();
  }

  /** After a cancel or failure: the guest runs again if the migration stopped it. */
  private restoreVm(): void {
    if (this.run.status !== 'finish-migrate') return;
    if (this.vmWasRunning) {
      this.run.status = 'paused';
      this.run.startVm();
    } else this.run.status = 'postmigrate';
  }

  private cancel(): void {
    if (!CANCELLABLE.includes(this.status)) return;
    const connected = this.status !== 'setup';
    this.continueSwitchover = undefined;
    this.setStatus('cancelling');
    this.sink?.destroy();
    this.sink = undefined;
    this.host.later(0, () => {
      this.restoreVm();
      if (connected) this.errorDesc = this.host.facts.migrationCancelErrorDesc;
      this.setStatus('cancelled');
    });
  }

  private migrateContinue(state: string): void {
    if (this.status !== state) throw qmpError(`Migration not in expected state: ${this.status}`);
    // Only pre-switchover waits for a continue (QEMU ignores it elsewhere).
    const go = this.continueSwitchover;
    if (go) this.host.later(0, go);
  }

  /** `file:` incoming (QEMU ≥ 8.2): reads the whole file as the stream. */
  private startIncomingFile(file: string): void {
    this.setStatus('setup');
    const reason = this.host.storage.openError(file);
    if (reason !== undefined) throw qmpError(`Could not open '${file}': ${reason}`);
    this.incomingStarted = true;
    const size = this.host.storage.stat(file)?.size ?? 0;
    const data = this.host.storage.read(file, 0, size);
    this.host.later(0, () => {
      this.setStatus('active');
      this.finishIncoming(data, undefined);
    });
  }

  private async startIncoming(uri: string): Promise<void> {
    const address = channelAddress(uri);
    if (address === undefined)
      throw qmpError(`qmpkit fake-qmp does not model incoming '${uri.split(':')[0]}:' migration`);
    this.incomingStarted = true;
    let listener: ChannelListener;
    try {
      listener = await channelNet.listen(address, (channel) => this.acceptIncoming(channel));
    } catch (error) {
      this.incomingStarted = false;
      const { code, message } = error as { code: string; message: string };
      throw qmpError(`Failed to bind socket: ${errnoText(code, message)}`);
    }
    this.incomingListener = listener;
    this.incomingAddress =
      address.type === 'unix'
        ? [{ path: address.path, type: 'unix' }]
        : [
            {
              host: address.host,
              port: String(listener.port ?? address.port),
              ...(/^\d+\.\d+\.\d+\.\d+$/.test(address.host) ? { ipv4: true } : {}),
              ...(address.host.includes(':') ? { ipv6: true } : {}),
              type: 'inet',
            },
          ];
    this.setStatus('setup');
  }

  /** One source connects (the listener closes, as QEMU's does); the stream is read to its end. */
  private acceptIncoming(channel: ByteChannel): ByteChannelEvents {
    this.incomingListener?.close();
    this.incomingListener = undefined;
    this.incomingChannel = channel;
    this.setStatus('active');
    const chunks: Uint8Array[] = [];
    let ended = false;
    let typeChecked = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.finishIncoming(concatBytes(chunks), channel);
    };
    return {
      data: (chunk) => {
        if (ended) return;
        chunks.push(chunk.slice());
        if (typeChecked) return;
        // QEMU checks the configuration section first and gives up at once on a mismatch.
        const type = streamMachineType(concatBytes(chunks));
        if (type === undefined) return;
        typeChecked = true;
        if (type !== '' && type !== this.machineType) {
          ended = true;
          this.loadFailed(channel);
        }
      },
      end,
      error: end,
    };
  }

  private finishIncoming(data: Uint8Array, channel: ByteChannel | undefined): void {
    const parsed = parseStream(data);
    if (typeof parsed === 'string') {
      if (parsed === 'empty') return; // QEMU waits forever on an empty stream
      this.loadFailed(channel);
      return;
    }
    if (parsed.machineType !== this.machineType) {
      this.loadFailed(channel);
      return;
    }
    const resume = this.run.autostart && parsed.runstate === 'running';
    this.run.status = 'paused';
    if (resume) this.run.startVm();
    this.setStatus('completed');
    if (channel) {
      if (parsed.returnPath) channel.write(returnPathShut(false));
      channel.end();
    }
    this.incomingChannel = undefined;
  }

  /**
   * The target could not load the stream (cut short, another machine type — QEMU's "Machine
   * type received is …"): `failed`, SHUT(failed) on the return path, and exit status 1.
   */
  private loadFailed(channel: ByteChannel | undefined): void {
    this.setStatus('failed');
    if (channel) {
      channel.write(returnPathShut(true));
      channel.end();
    }
    this.incomingChannel = undefined;
    // A real QEMU exits with status 1 after a failed incoming migration.
    this.host.later(0, () => this.host.exit(1));
  }

  handlers(table: HandlerTable): void {
    table.set('query-migrate', () => this.info());
    table.set('query-migrate-capabilities', () =>
      [...this.capabilities].map(([capability, state]) => ({ capability, state })),
    );
    table.set(
      'migrate-set-capabilities',
      handler<{ capabilities: { capability: string; state: boolean }[] }>((args) => {
        if (RUNNING_STATES.includes(this.status))
          throw qmpError("There's a migration process in progress");
        for (const { capability, state } of args.capabilities)
          this.capabilities.set(capability, state);
      }),
    );
    table.set('query-migrate-parameters', () => ({ ...this.parameters }));
    table.set(
      'migrate-set-parameters',
      handler<Record<string, unknown>>((args) => {
        const problem = checkParameters(args, this.parameters);
        if (problem !== undefined) throw qmpError(problem);
        for (const [key, value] of Object.entries(args)) {
          if (value === undefined) continue;
          this.parameters[key] = key.startsWith('tls-') && value === null ? '' : value;
        }
      }),
    );
    table.set(
      'migrate',
      handler<{ uri?: string; channels?: Record<string, unknown>[] }>((args) => {
        if (args.uri !== undefined && args.channels !== undefined)
          throw qmpError("need either 'uri' or 'channels' argument");
        if (args.channels !== undefined) {
          this.migrate(channelUri(args.channels));
          return;
        }
        if (args.uri === undefined) throw qmpError("need either 'uri' or 'channels' argument");
        this.migrate(args.uri);
      }),
    );
    table.set('migrate_cancel', () => {
      this.cancel();
    });
    table.set(
      'migrate-continue',
      handler<{ state: string }>((args) => {
        this.migrateContinue(args.state);
      }),
    );
    table.set(
      'migrate-incoming',
      handler<{ uri?: string; channels?: Record<string, unknown>[] }>((args) => {
        const uri =
          args.channels !== undefined ? channelUri(args.channels) : String(args.uri ?? '');
        if (this.incomingStarted) throw qmpError('The incoming migration has already been started');
        if (this.incoming === undefined || this.run.status !== 'inmigrate')
          throw qmpError("'-incoming' was not specified on the command line");
        // A failed file: start leaves QEMU 10.0 in 'setup' for good.
        if (this.status === 'setup') throw qmpError('Illegal migration incoming state: setup');
        const file = uri.startsWith('file:') && this.fileMigration;
        if (!file && !/^(tcp|unix|vsock|rdma|exec|fd):/.test(uri)) {
          // With `channels` (QEMU ≥ 8.2) the URI is parsed into a channel before 'setup';
          // 7.2 entered 'setup' first.
          if (!commandTakes(this.host.tables, 'migrate-incoming', 'channels')) {
            this.setStatus('setup');
            this.status = 'none';
          }
          throw qmpError(`unknown migration protocol: ${uri}`);
        }
        if (file) {
          this.startIncomingFile(uri.slice(5));
          return;
        }
        return this.startIncoming(uri);
      }),
    );
    table.set('migrate-recover', () => {
      throw qmpError('Migrate recover can only be run when postcopy is paused.');
    });
    table.set('migrate-pause', () => {
      throw qmpError('migrate-pause is currently only supported during postcopy-active state');
    });
    table.set('getfd', () => {
      throw qmpError('No file descriptor supplied via SCM_RIGHTS');
    });
    table.set('add-fd', () => {
      throw qmpError('No file descriptor supplied via SCM_RIGHTS');
    });
  }
}

function newProgress(total: number): RamProgress {
  return {
    total,
    remaining: total,
    precopy: 0,
    downtimeBytes: 0,
    dirtied: 0,
    syncs: 0,
    steps: 0,
    downtimeMs: 0,
  };
}

/** QEMU 7.2's `migrate_params_check` (values as the unsigned integers QEMU stores). */
function checkParameters(
  args: Record<string, unknown>,
  current: Record<string, unknown>,
): string | undefined {
  const u = (key: string): number | undefined => {
    const v = args[key];
    if (typeof v !== 'number') return undefined;
    return v < 0 ? Number.POSITIVE_INFINITY : v;
  };
  const expects = (name: string, what: string) => `Parameter '${name}' expects ${what}`;
  const range = (key: string, name: string, lo: number, hi: number, what: string) => {
    const v = u(key);
    return v !== undefined && (v < lo || v > hi) ? expects(name, what) : undefined;
  };
  const initial = u('cpu-throttle-initial') ?? (current['cpu-throttle-initial'] as number);
  const maxThrottle = u('max-cpu-throttle');
  const xbzrle = u('xbzrle-cache-size');
  return (
    range('compress-level', 'compress_level', 0, 9, 'a value between 0 and 9') ??
    range('compress-threads', 'compress_threads', 1, 255, 'a value between 1 and 255') ??
    range('decompress-threads', 'decompress_threads', 1, 255, 'a value between 1 and 255') ??
    range(
      'throttle-trigger-threshold',
      'throttle_trigger_threshold',
      1,
      100,
      'an integer in the range of 1 to 100',
    ) ??
    range(
      'cpu-throttle-initial',
      'cpu_throttle_initial',
      1,
      99,
      'an integer in the range of 1 to 99',
    ) ??
    range(
      'cpu-throttle-increment',
      'cpu_throttle_increment',
      1,
      99,
      'an integer in the range of 1 to 99',
    ) ??
    range(
      'max-bandwidth',
      'max_bandwidth',
      0,
      2 ** 64 - 1,
      'an integer in the range of 0 to SIZE_MAX bytes/second',
    ) ??
    range(
      'downtime-limit',
      'downtime_limit',
      0,
      2000 * 1000,
      'an integer in the range of 0 to (2000 * 1000) ms',
    ) ??
    range('multifd-channels', 'multifd_channels', 1, 255, 'a value between 1 and 255') ??
    range('multifd-zlib-level', 'multifd_zlib_level', 0, 9, 'a value between 0 and 9') ??
    range('multifd-zstd-level', 'multifd_zstd_level', 0, 20, 'a value between 0 and 20') ??
    (xbzrle !== undefined &&
    (xbzrle < 4096 || (xbzrle & (xbzrle - 1)) !== 0 || !Number.isFinite(xbzrle))
      ? expects('xbzrle_cache_size', 'a power of two no less than the target page size')
      : undefined) ??
    (maxThrottle !== undefined && (maxThrottle < initial || maxThrottle > 99)
      ? expects('max_cpu_throttle', 'an integer in the range of cpu_throttle_initial to 99')
      : undefined) ??
    range('announce-initial', 'announce_initial', 0, 100000, 'a value between 0 and 100000') ??
    range('announce-max', 'announce_max', 0, 100000, 'a value between 0 and 100000') ??
    range('announce-rounds', 'announce_rounds', 0, 1000, 'a value between 0 and 1000') ??
    range('announce-step', 'announce_step', 1, 10000, 'a value between 0 and 10000')
  );
}
