/**
 * Migration as QEMU 7.2 and 10.0 show it on QMP (capabilities, parameters and statistics are
 * those the imitated version's schema has): capabilities and parameters, `migrate` to
 * `unix:`/`tcp:` (the fake really connects and writes a small stream), `query-migrate`,
 * `migrate_cancel`, and the incoming side (`-incoming defer` + `migrate-incoming`, which
 * listens and reads a stream). MIGRATION / MIGRATION_PASS events only with the `events`
 * capability. The stream is QEMU-shaped (QEVM magic, version 3, configuration, ram, timer
 * and globalstate sections, vmdesc trailer) — for `-machine none` a real QEMU loads it, and
 * the fake loads `-machine none` streams from a real QEMU (it reads the saved run state).
 */
import type net from 'node:net';
import type { SchemaTables } from '@qmpkit/qapi/runtime-v1';
import { nodePlatform } from '#node';
import { qmpError } from '../errors.js';
import { needNode } from '../platform/runtime.js';
import type { BlockGraph } from './block.js';
import { type HandlerTable, handler, type ModelHost } from './host.js';
import type { RunState, RunStateName } from './runstate.js';
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
  | 'device'
  | 'completed'
  | 'failed';

const RUNNING_STATES: readonly MigrationStatus[] = [
  'setup',
  'active',
  'cancelling',
  'postcopy-active',
  'device',
];

export class Migration {
  /** Every `MigrationCapability` of the imitated version, in schema order (QEMU's order). */
  readonly capabilities: Map<string, boolean>;
  readonly parameters: Record<string, unknown>;
  status: MigrationStatus = 'none';
  private errorDesc: string | undefined;
  private started = 0;
  private totalTime = 0;
  private bytes = 0;
  private cancelRequested = false;
  /** Incoming side: the URI given on the command line ('defer' for -incoming defer). */
  private incoming: string | undefined;
  private incomingStarted = false;
  private incomingAddress: Record<string, unknown>[] | undefined;
  private incomingServer: net.Server | undefined;
  readonly machineType: string;

  constructor(
    private readonly host: ModelHost,
    private readonly run: RunState,
    private readonly block: BlockGraph,
    options: { incoming?: string; machineType: string },
  ) {
    this.incoming = options.incoming;
    this.machineType = options.machineType;
    this.capabilities = new Map(
      enumValues(host.tables, 'MigrationCapability').map((c) => [c, false]),
    );
    this.parameters = defaultParameters(host.tables);
  }

  /** Starts listening when the fake was created with `-incoming unix:…`. */
  startIncomingFromCommandLine(): void {
    if (this.incoming !== undefined && this.incoming !== 'defer') this.startIncoming(this.incoming);
  }

  close(): void {
    this.incomingServer?.close();
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
    const done = this.status === 'completed';
    const total = done ? this.totalTime : Date.now() - this.started;
    return {
      status: this.status,
      'total-time': total,
      'setup-time': 0,
      downtime: done ? 0 : undefined,
      'expected-downtime': done ? undefined : 300,
      ram: onlySchemaMembers(this.host.tables, 'MigrationStats', {
        transferred: this.host.facts.migrationTransferredCountsStream ? this.bytes : 0,
        remaining: 0,
        total: 0,
        duplicate: 0,
        skipped: 0,
        normal: 0,
        'normal-bytes': 0,
        'dirty-pages-rate': 0,
        mbps: total > 0 ? (this.bytes * 8) / 1000 / total : 0,
        'dirty-sync-count': done ? 2 : 1,
        'postcopy-requests': 0,
        'page-size': 4096,
        'multifd-bytes': 0,
        'pages-per-second': 0,
        'precopy-bytes': 0,
        'downtime-bytes': 0,
        'postcopy-bytes': 0,
        'dirty-sync-missed-zero-copy': 0,
      }),
    };
  }

  /** The stream a migration writes (see the module comment). */
  stream(): Buffer {
    const parts: Buffer[] = [];
    const u8 = (n: number) => Buffer.from([n]);
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const u64 = (n: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(n);
      return b;
    };
    const idstr = (s: string) => Buffer.concat([u8(s.length), Buffer.from(s, 'latin1')]);
    const machine = Buffer.from(this.machineType, 'latin1');
    parts.push(Buffer.from('QEVM', 'latin1'), u32(3));
    parts.push(u8(0x07), u32(machine.length), machine); // configuration
    // ram: section start, total size 0 | MEM_SIZE, EOS; part with EOS; footers.
    parts.push(
      u8(0x01),
      u32(2),
      idstr('ram'),
      u32(0),
      u32(4),
      u64(4n),
      u64(0x10n),
      u8(0x7e),
      u32(2),
    );
    parts.push(u8(0x03), u32(2), u64(0x10n), u8(0x7e), u32(2));
    parts.push(u8(0x04), u32(0), idstr('timer'), u32(0), u32(2), u64(0n), u64(0n), u64(0n));
    parts.push(u8(0x7e), u32(0));
    const state = Buffer.alloc(100);
    const runstate = this.run.status === 'postmigrate' ? 'paused' : this.run.status;
    state.write(runstate, 'latin1');
    parts.push(
      u8(0x04),
      u32(4),
      idstr('globalstate'),
      u32(0),
      u32(1),
      u32(runstate.length + 1),
      state,
    );
    parts.push(u8(0x7e), u32(4));
    parts.push(u8(0x00)); // QEMU_VM_EOF
    const vmdesc = Buffer.from(
      JSON.stringify({ page_size: 4096, devices: [], 'qmpkit-fake-qmp': { runstate } }),
      'latin1',
    );
    parts.push(u8(0x06), u32(vmdesc.length), vmdesc);
    return Buffer.concat(parts);
  }

  /** Reads the run state saved in a stream; an error text when it is not a migration stream. */
  static parseStream(data: Buffer): { runstate: RunStateName } | string {
    if (data.length === 0) return 'empty';
    if (data.length < 8 || data.readUInt32BE(0) !== 0x5145564d) return 'Not a migration stream';
    if (data.readUInt32BE(4) !== 3) return 'Unsupported migration stream version';
    const marker = Buffer.from('\x0bglobalstate', 'latin1');
    const at = data.indexOf(marker);
    if (at < 0) return 'load of migration failed: Invalid argument';
    const fieldAt = at + marker.length + 8;
    if (fieldAt + 4 > data.length) return 'load of migration failed: Input/output error';
    const size = data.readUInt32BE(fieldAt);
    const text = data.toString('latin1', fieldAt + 4, fieldAt + 4 + size).replace(/\0.*$/s, '');
    return { runstate: (text || 'running') as RunStateName };
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
      const code = (error as NodeJS.ErrnoException).code;
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
    this.cancelRequested = false;
    this.started = Date.now();
    this.bytes = 0;
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
      this.totalTime = Date.now() - this.started;
      this.setStatus('failed');
      throw qmpError(invalid);
    }
    this.host.later(0, () => this.connectAndSend(uri));
  }

  private fail(desc: string): void {
    this.errorDesc = desc;
    this.totalTime = Date.now() - this.started;
    this.setStatus('failed');
  }

  private connectAndSend(uri: string): void {
    if (nodePlatform === undefined) {
      this.fail('qmpkit fake-qmp in a page cannot migrate over a socket');
      return;
    }
    const { net } = nodePlatform;
    let socket: net.Socket;
    let target: string;
    if (uri.startsWith('unix:')) {
      target = uri.slice(5);
      socket = net.connect(target);
    } else if (uri.startsWith('tcp:')) {
      const rest = uri.slice(4);
      const colon = rest.lastIndexOf(':');
      const host = rest.slice(0, colon).replace(/^\[|\]$/g, '');
      target = rest;
      socket = net.connect({ host, port: Number(rest.slice(colon + 1)) });
    } else if (uri.startsWith('file:')) {
      const file = uri.slice(5);
      this.transfer({
        end: (data, done) => {
          this.host.storage.write(file, 0, data);
          done();
        },
      });
      return;
    } else {
      this.fail(`qmpkit fake-qmp does not model '${uri.split(':')[0]}:' migration`);
      return;
    }
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (this.status === 'setup') {
        const reason =
          error.code === 'ENOENT'
            ? 'No such file or directory'
            : error.code === 'ECONNREFUSED'
              ? 'Connection refused'
              : error.message;
        this.fail(`Failed to connect to '${target}': ${reason}`);
      } else if (this.status === 'active') {
        this.fail('Unable to write to socket: Broken pipe');
      }
    });
    socket.once('connect', () => this.transfer(socket));
    this.cancelSocket = socket;
  }

  /** The connected (or created) target takes the stream; the VM stops and ends in postmigrate. */
  private transfer(sink: { end(data: Buffer, done: () => void): void }): void {
    const step = this.host.timing.migrationMs;
    this.pass(1);
    this.setStatus('active');
    this.host.later(step, () => {
      if (this.cancelRequested || this.status !== 'active') return;
      const data = this.stream();
      this.bytes = data.length;
      const wasRunning = this.run.running;
      if (wasRunning) this.run.stopVm('finish-migrate');
      else this.run.status = 'finish-migrate';
      if (this.host.facts.migrationDeviceState) this.setStatus('device');
      this.pass(2);
      sink.end(data, () => {
        this.totalTime = Date.now() - this.started;
        this.run.status = 'postmigrate';
        for (const node of this.block.all()) node.inactive = true;
        this.setStatus('completed');
      });
    });
  }

  private cancelSocket: net.Socket | undefined;

  private cancel(): void {
    if (this.status !== 'setup' && this.status !== 'active') return;
    this.cancelRequested = true;
    this.setStatus('cancelling');
    this.cancelSocket?.destroy();
    this.host.later(0, () => {
      this.totalTime = Date.now() - this.started;
      this.setStatus('cancelled');
    });
  }

  /** `file:` incoming (QEMU ≥ 8.2): reads the whole file as the stream. */
  private startIncomingFile(file: string): void {
    this.setStatus('setup');
    const reason = this.host.storage.openError(file);
    if (reason !== undefined) throw qmpError(`Could not open '${file}': ${reason}`);
    this.incomingStarted = true;
    const size = this.host.storage.stat(file)?.size ?? 0;
    // Storage returns Uint8Array now (Node-free); this file's stream code still reads Buffers.
    const bytes = this.host.storage.read(file, 0, size);
    const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.host.later(0, () => {
      this.setStatus('active');
      this.finishIncoming(data);
    });
  }

  private startIncoming(uri: string): void {
    if (!uri.startsWith('unix:') && !uri.startsWith('tcp:')) {
      throw qmpError(`qmpkit fake-qmp does not model incoming '${uri.split(':')[0]}:' migration`);
    }
    const { net } = needNode(nodePlatform, 'incoming migration');
    this.incomingStarted = true;
    const server = net.createServer((socket) => {
      server.close();
      this.setStatus('active');
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.on('error', () => {});
      socket.on('end', () => this.finishIncoming(Buffer.concat(chunks)));
    });
    this.incomingServer = server;
    if (uri.startsWith('unix:')) {
      const path = uri.slice(5);
      server.listen(path);
      this.incomingAddress = [{ path, type: 'unix' }];
    } else {
      const rest = uri.slice(4);
      const colon = rest.lastIndexOf(':');
      const host = rest.slice(0, colon).replace(/^\[|\]$/g, '');
      const port = rest.slice(colon + 1);
      server.listen({ host, port: Number(port) });
      this.incomingAddress = [{ host, port, type: 'inet' }];
    }
    this.setStatus('setup');
  }

  private finishIncoming(data: Buffer): void {
    const parsed = Migration.parseStream(data);
    if (typeof parsed === 'string') {
      if (parsed === 'empty') return; // QEMU waits forever on an empty stream
      this.setStatus('failed');
      // A real QEMU exits with status 1 after a failed incoming migration.
      this.host.later(0, () => this.host.exit(1));
      return;
    }
    const resume = this.run.autostart && parsed.runstate === 'running';
    this.run.status = 'paused';
    if (resume) this.run.startVm();
    this.setStatus('completed');
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
      handler<{ uri: string }>((args) => {
        this.migrate(args.uri);
      }),
    );
    table.set('migrate_cancel', () => {
      this.cancel();
    });
    table.set(
      'migrate-incoming',
      handler<{ uri: string }>((args) => {
        if (this.incomingStarted) throw qmpError('The incoming migration has already been started');
        if (this.incoming === undefined || this.run.status !== 'inmigrate')
          throw qmpError("'-incoming' was not specified on the command line");
        // A failed file: start leaves QEMU 10.0 in 'setup' for good.
        if (this.status === 'setup') throw qmpError('Illegal migration incoming state: setup');
        const file = args.uri.startsWith('file:') && this.fileMigration;
        if (!file && !/^(tcp|unix|vsock|rdma|exec|fd):/.test(args.uri)) {
          // With `channels` (QEMU ≥ 8.2) the URI is parsed into a channel before 'setup';
          // 7.2 entered 'setup' first.
          if (!commandTakes(this.host.tables, 'migrate-incoming', 'channels')) {
            this.setStatus('setup');
            this.status = 'none';
          }
          throw qmpError(`unknown migration protocol: ${args.uri}`);
        }
        if (file) {
          this.startIncomingFile(args.uri.slice(5));
          return;
        }
        this.startIncoming(args.uri);
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
