/**
 * The supervisor's control protocol: JSON lines over `<vm-dir>/control.sock`.
 *
 * The server greets with `{"hello":{"protocol":1,"pid":…}}`. A request is
 * `{"id":<n>,"method":"…","params":{…}}` (ids are the client's, per connection). Answers:
 * `{"id":n,"progress":{phase,bytes,totalBytes,percent,elapsedMs}}` (save, load, backup and
 * migrate send as many as they like; migrate's also carry RAM remaining, dirty rate, throughput,
 * passes and expected downtime), then exactly one `{"id":n,"result":…}` or `{"id":n,"error":{name,message,…}}`.
 * `abort {id}` aborts the save, load, backup or migrate that request `id` of the same
 * connection started. After a `migrate` the supervisor serves the VM from the target directory: its
 * control socket moves there and the source directory's goes away.
 */
import type { SnapshotInfo, SnapshotProgress, StrategyKind } from '@qmpkit/snapshots';

export const PROTOCOL_VERSION = 1;

export interface SaveParams {
  readonly name: string;
  readonly live?: boolean;
  /** External: write the stream format even where QEMU has mapped-ram (loads on 7.2 too). */
  readonly portable?: boolean;
  /** External: a template for copy-on-write clones (RAM file + x-ignore-shared). */
  readonly sharedRam?: boolean;
  /** Disks only (no RAM), the guest's filesystems frozen through its agent when it has one. */
  readonly diskOnly?: boolean;
  /** Disk-only: refuse when the guest cannot be frozen (default: a crash-consistent snapshot). */
  readonly requireQuiesce?: boolean;
  readonly overwrite?: boolean;
  readonly strategy?: StrategyKind;
  readonly description?: string;
}

/** A progress line: a snapshot's (`SnapshotProgress`) or a backup's (`phase: 'backup'`). */
export interface OperationProgress {
  readonly phase: string;
  readonly bytes: number;
  readonly totalBytes: number | undefined;
  readonly percent: number | undefined;
  readonly elapsedMs: number;
}

export interface BackupParams {
  readonly kind: 'full' | 'incremental';
  /** The backup directory (absolute: the supervisor's working directory is not the client's). */
  readonly to: string;
  /** Incremental only: `full` takes a full backup when the chain is broken. */
  readonly ifBroken?: 'refuse' | 'full';
  /** Device ids (default: every disk). */
  readonly disks?: readonly string[];
  /** Pull mode: the disks exported over NBD at one instant, read by the supervisor. */
  readonly pull?: boolean;
  /** Push mode: bytes per second each disk's job may copy (default: unlimited). */
  readonly speed?: number;
  /** Pull mode on TCP (loopback unless `allowRemote`, TLS unless `allowPlaintext`). */
  readonly tcp?: {
    readonly port: number;
    readonly host?: string;
    readonly tls?: { readonly dir: string; readonly hostname?: string };
    readonly allowRemote?: boolean;
    readonly allowPlaintext?: boolean;
  };
}

export interface BackupSummary {
  readonly kind: 'full' | 'incremental';
  readonly point: string;
  readonly checkpoint: string;
  readonly to: string;
  readonly totalMs: number;
  readonly disks: readonly {
    readonly device: string;
    readonly copied: number;
    readonly virtualSize: number;
  }[];
  /** Why an incremental became a full (`ifBroken: 'full'`), else null. */
  readonly repaired: readonly string[] | null;
  /**
   * A backup of the directory whose process died (e.g. a killed supervisor), whose leftovers
   * were removed before this one ran; `chain` as in `@qmpkit/backup`'s `InterruptedBackup`.
   */
  readonly interrupted: {
    readonly id: string;
    readonly mode: 'push' | 'pull';
    readonly pid: number;
    readonly chain: 'merged' | 'dropped' | 'untouched';
  } | null;
  /** Set when a stopped VM was backed up through this `qemu-storage-daemon` (CLI only). */
  readonly daemon?: { readonly path: string; readonly version: string };
}

/** `block`: chain maintenance of one disk (see `@qmpkit/machine`'s `ChainJobRequest`). */
export interface BlockParams {
  readonly op: 'commit' | 'stream' | 'mirror';
  readonly disk?: string;
  readonly top?: string;
  readonly base?: string;
  /** mirror: the new image (absolute path). */
  readonly target?: string;
  readonly speed?: number;
}

export interface BlockSummary {
  readonly op: 'commit' | 'stream' | 'mirror';
  readonly disk: string;
  readonly jobId: string;
  /** The disk's chain before and after, base first. */
  readonly before: readonly string[];
  readonly after: readonly string[];
  readonly removed: readonly string[];
  readonly totalMs: number;
  /** The `qemu-storage-daemon` that ran the job (stopped VM only). */
  readonly daemon?: { readonly path: string; readonly version: string };
}

export interface Methods {
  status: { params: Record<string, never>; result: StatusResult };
  save: { params: SaveParams; result: SaveSummary };
  load: { params: LoadParams; result: LoadSummary };
  delete: { params: { readonly name: string }; result: DeleteSummary };
  list: { params: Record<string, never>; result: ListResult };
  stop: { params: Record<string, never>; result: StopResult };
  backup: { params: BackupParams; result: BackupSummary };
  abort: { params: { readonly id: number }; result: { readonly aborted: boolean } };
  migrate: { params: MigrateParams; result: MigrateSummary };
  subscribe: { params: Record<string, never>; result: { readonly ended: string } };
  tree: { params: Record<string, never>; result: TreeResult };
  graph: { params: Record<string, never>; result: BlockGraph };
  block: { params: BlockParams; result: BlockSummary };
  'postcopy-pause': { params: Record<string, never>; result: PostcopyPauseResult };
  'postcopy-recover': { params: PostcopyRecoverParams; result: MigrateSummary };
  /** QMP `stop` / `cont` on the VM (not while another operation runs); the status after it. */
  pause: { params: Record<string, never>; result: StatusResult };
  resume: { params: Record<string, never>; result: StatusResult };
}

/**
 * `postcopy-pause`: the migration under way (`migrate` to a VM directory) is in post-copy and
 * the target runs the guest; the stream is cut (`migrate-pause`), both QEMUs go to
 * `postcopy-paused`. With `recoverAttempts` > 0 the migration recovers on its own over a fresh
 * channel, with 0 it ends with `postcopy-paused` and `postcopy-recover` resumes it.
 */
export interface PostcopyPauseResult {
  /** The target's VM directory. */
  readonly to: string;
  /** Whether the running migration recovers by itself (its `recoverAttempts` > 0). */
  readonly recovers: boolean;
}

/** `postcopy-recover`: resumes a post-copy migration left in `postcopy-paused`. */
export interface PostcopyRecoverParams {
  /**
   * Where the target listens for the resumed stream (`unix:PATH` or `tcp:HOST:PORT`, port 0:
   * any free one); default a fresh socket beside the first, or a fresh port on the same host.
   */
  readonly listen?: string;
  /** `max-postcopy-bandwidth` for the rest, bytes/s (0: unlimited); default unchanged. */
  readonly postcopyBandwidth?: number;
  /** Attempts before giving up again with `postcopy-paused` (default 3). */
  readonly attempts?: number;
}

/**
 * What a `subscribe` request's progress lines carry, until `abort {id}` or the connection
 * closes: every QMP event of the VM, and the status whenever it may have changed (once at
 * the start, after run-state events, when an operation starts or ends).
 */
export type SubscribeNotice =
  | {
      readonly kind: 'event';
      readonly event: {
        readonly event: string;
        readonly data?: unknown;
        readonly timestamp: { readonly seconds: number; readonly microseconds: number };
      };
    }
  | { readonly kind: 'status'; readonly status: StatusResult };

/** A snapshot and the ones taken after it (`tree`). */
export interface SnapshotNode {
  readonly id: string;
  readonly name: string;
  readonly strategy: StrategyKind;
  readonly live: boolean;
  readonly createdAt: string;
  readonly description: string | null;
  readonly vmStateBytes: number;
  readonly children: readonly SnapshotNode[];
}

export interface TreeResult {
  /** Id of the snapshot the VM descends from, or null. */
  readonly current: string | null;
  /** Snapshots without a (known) parent, oldest first, each with its subtree. */
  readonly roots: readonly SnapshotNode[];
}

/** QEMU's block graph (`x-debug-query-block-graph`): backends, jobs and driver nodes. */
export interface BlockGraph {
  readonly nodes: readonly {
    readonly id: number;
    readonly type: 'block-backend' | 'block-job' | 'block-driver';
    readonly name: string;
  }[];
  readonly edges: readonly {
    readonly parent: number;
    readonly child: number;
    readonly name: string;
  }[];
}

export interface MigrateParams {
  /**
   * The VM directory the VM moves to (created; must hold no VM), or the address of a QEMU that
   * `qmpkit vm receive` started elsewhere (`tcp:HOST:PORT`, `unix:PATH`).
   */
  readonly to: string;
  /**
   * TLS credentials (`tls-creds-x509` layout), absolute path: the client's to an address; to a
   * VM directory both ends' (the target's server and the source's client certificate).
   */
  readonly tlsDir?: string;
  /**
   * Allow post-copy (to an address the receiver must too); `immediate` switches as soon as RAM
   * moves instead of when pre-copy does not converge.
   */
  readonly postcopy?: boolean | 'immediate';
  /** `max-bandwidth` of the stream, bytes/s (default 16 GiB/s). */
  readonly maxBandwidth?: number;
  /** `max-postcopy-bandwidth` after the switch, bytes/s (default: QEMU's, unlimited). */
  readonly postcopyBandwidth?: number;
  /**
   * To a VM directory: recovery attempts when the link breaks during post-copy (default 3); 0:
   * none, the migration ends with `postcopy-paused` (both QEMUs kept) for `postcopy-recover`.
   */
  readonly recoverAttempts?: number;
  /** The target's QEMU (default: the one the VM runs on). */
  readonly qemu?: string;
  /** `unix` (default, a socket in the target's run dir) or `tcp` (127.0.0.1). */
  readonly transport?: 'unix' | 'tcp';
  /** `shared` (default: both QEMUs open the same images) or `copy` (mirrored over NBD into `<to>/disks`). */
  readonly disks?: 'copy' | 'shared';
}

export interface MigrateSummary {
  /** The VM directory the supervisor now serves. */
  readonly dir: string;
  readonly totalMs: number;
  /** STOP on the source → RESUME on the target (QEMU's event timestamps). */
  readonly downtimeMs: number | null;
  /** The source QEMU's own `downtime`. */
  readonly qemuDowntimeMs: number | null;
  /** RAM bytes sent. */
  readonly bytes: number;
  /** The target QEMU; null when the VM went to an address (a QEMU this side does not own). */
  readonly qemu: { readonly pid: number; readonly version: string } | null;
  /** Whether the hand-over went through post-copy. */
  readonly postcopy: boolean;
  /** The convergence controller's decisions, as log lines. */
  readonly decisions: readonly string[];
}

/** A migration's progress line (`{"id":n,"progress":…}` of a `migrate` request). */
export interface MigrateProgressLine {
  readonly phase: string;
  /** RAM bytes sent so far, of `totalBytes`. */
  readonly bytes: number;
  readonly totalBytes: number | undefined;
  readonly percent: number | undefined;
  readonly elapsedMs: number;
  readonly remaining: number;
  readonly dirtyRate: number;
  readonly throughput: number;
  readonly iterations: number;
  readonly expectedDowntimeMs: number | null;
  /** `disks: 'copy'`: each disk mirror's bytes copied (`offset`) of `len`, and whether it is ready. */
  readonly disks?: readonly {
    readonly node: string;
    readonly offset: number;
    readonly len: number;
    readonly ready: boolean;
  }[];
  /** Post-copy recovery (phases `postcopy-paused`, `recovering`): the attempt, of how many, why the last failed. */
  readonly recovery?: {
    readonly attempt: number;
    readonly of: number;
    readonly lastError?: string;
  };
}

/** What `progress` lines of a request of method `M` carry. */
export type ProgressOf<M extends Method> = M extends 'migrate'
  ? MigrateProgressLine
  : M extends 'backup' | 'block'
    ? OperationProgress
    : M extends 'subscribe'
      ? SubscribeNotice
      : SnapshotProgress;

export type Method = keyof Methods;
export const METHODS: readonly Method[] = [
  'status',
  'save',
  'load',
  'delete',
  'list',
  'stop',
  'abort',
  'migrate',
  'backup',
  'subscribe',
  'tree',
  'graph',
  'block',
  'postcopy-pause',
  'postcopy-recover',
  'pause',
  'resume',
];

export interface StatusResult {
  readonly dir: string;
  /** The supervisor's pid. */
  readonly pid: number;
  readonly startedAt: string;
  readonly qemu: {
    readonly pid: number;
    readonly version: string;
    readonly accel: string;
    /** `query-status` (`running`, `paused`, `postmigrate`, …), or the machine's status when QEMU is gone. */
    readonly runState: string;
  };
  /** The strategy saves use unless a save names one. */
  readonly strategy: StrategyKind;
  /** The save, load or delete in progress. */
  readonly busy: { readonly method: Method; readonly name: string } | null;
  readonly snapshots: number;
  /**
   * A post-copy migration to another VM directory whose link broke and that was not recovered:
   * both QEMUs are alive and paused, `postcopy-recover` resumes it (the target holds the guest).
   */
  readonly postcopyPaused?: { readonly to: string };
}

export interface SaveSummary {
  readonly name: string;
  readonly strategy: StrategyKind;
  readonly totalMs: number;
  readonly downtimeMs: number | null;
  readonly bytes: number;
  readonly live: boolean;
  /** Disk-only saves: `filesystem` (frozen by the agent) or `crash`. */
  readonly consistency?: string;
  /** `--shared-ram` saves: the RAM file kept for clones, or why RAM went into the stream. */
  readonly sharedRam?:
    | { readonly used: true; readonly ramBytes: number }
    | { readonly used: false; readonly reason: string; readonly detail: string };
}

export interface LoadParams {
  readonly name: string;
  /** Load on this QEMU (path, name on PATH or a release in the cache); the VM runs on it then. */
  readonly qemu?: string;
  /** Skip the compatibility check of a load on another binary than the save. */
  readonly force?: boolean;
}

export interface LoadSummary {
  readonly name: string;
  readonly strategy: StrategyKind;
  readonly totalMs: number;
  readonly downtimeMs: number | null;
  readonly bytes: number;
  readonly verified: string | null;
  /** The QEMU the VM runs on after the load. */
  readonly qemu: { readonly version: string; readonly path: string | null };
  /**
   * The compatibility check of a load on another binary than the save (`@qmpkit/snapshots`'
   * `LoadCompatibility`), or null on the saving binary.
   */
  readonly compat: {
    readonly check: 'probe' | 'static' | 'none' | 'forced';
    readonly verdict: 'ok' | 'warn' | 'refuse' | null;
    readonly flaggedSections: readonly string[];
    readonly flaggedButLoaded: readonly string[];
  } | null;
  readonly warnings: readonly string[];
}

export interface DeleteSummary {
  readonly name: string;
  readonly strategy: StrategyKind;
  readonly totalMs: number;
  readonly merged: readonly string[];
  readonly removed: readonly string[];
}

export interface ListResult {
  /** Id of the snapshot the VM descends from (last saved or loaded). */
  readonly current: string | null;
  readonly snapshots: readonly SnapshotInfo[];
}

export interface StopResult {
  readonly code: number | null;
  readonly signal: string | null;
}

/**
 * What the supervisor found after an aborted save or load: the store's entry for the name
 * before and after (same id: unchanged) and QEMU's run state.
 */
export interface AbortCheck {
  readonly before: string | null;
  readonly after: string | null;
  readonly runState: string;
}

/** An error as it crosses the socket: the class name, message and the error's own fields. */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly [field: string]: unknown;
}

export interface Request {
  readonly id: number;
  readonly method: string;
  readonly params?: unknown;
}

export type Response =
  | { readonly hello: { readonly protocol: number; readonly pid: number } }
  | {
      readonly id: number;
      readonly progress:
        | SnapshotProgress
        | MigrateProgressLine
        | OperationProgress
        | SubscribeNotice;
    }
  | { readonly id: number; readonly result: unknown }
  | { readonly id: number; readonly error: WireError };

/** Any thrown value as a `WireError` (own enumerable fields kept, `cause` as its message). */
export function toWireError(error: unknown, extra: Record<string, unknown> = {}): WireError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), ...extra };
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(error)) {
    if (key === 'cause') continue;
    try {
      JSON.stringify(value);
      fields[key] = value;
    } catch {
      fields[key] = String(value);
    }
  }
  const cause = error.cause instanceof Error ? { cause: error.cause.message } : {};
  return { ...fields, ...cause, ...extra, name: error.name, message: error.message };
}

/**
 * Splits a byte stream into JSON lines and calls `onValue` for each parsed line (a line
 * that is not JSON calls `onBad`). Lines are capped at 1 MiB: a peer that sends more without
 * a newline is broken.
 */
export function lineReader(
  onValue: (value: unknown) => void,
  onBad: (problem: string) => void,
): (chunk: Buffer | string) => void {
  let buffered = '';
  return (chunk) => {
    buffered += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    for (;;) {
      const newline = buffered.indexOf('\n');
      if (newline < 0) break;
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        onBad(`not JSON: ${line.slice(0, 80)}`);
        continue;
      }
      onValue(value);
    }
    if (buffered.length > 1024 * 1024) {
      buffered = '';
      onBad('line longer than 1 MiB');
    }
  };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A request line as the supervisor takes it: a numeric `id` and a `method` name. */
export function isRequest(value: unknown): value is Request {
  return isRecord(value) && typeof value.id === 'number' && typeof value.method === 'string';
}

/**
 * An error as it arrived: a record of any shape becomes a `WireError` (a missing `name` or
 * `message` is filled in, every other field kept), so a reply with an odd error is still an error.
 */
export function asWireError(value: Record<string, unknown>): WireError {
  return {
    ...value,
    name: typeof value.name === 'string' ? value.name : 'Error',
    message: typeof value.message === 'string' ? value.message : JSON.stringify(value),
  };
}

/** The `ready` line of a starting supervisor: a `StatusResult`, checked field by field. */
export function isStatusResult(value: unknown): value is StatusResult {
  return (
    isRecord(value) &&
    typeof value.dir === 'string' &&
    typeof value.pid === 'number' &&
    typeof value.startedAt === 'string' &&
    typeof value.strategy === 'string' &&
    typeof value.snapshots === 'number' &&
    isRecord(value.qemu) &&
    typeof value.qemu.pid === 'number' &&
    typeof value.qemu.version === 'string' &&
    typeof value.qemu.runState === 'string'
  );
}
