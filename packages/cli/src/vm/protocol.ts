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
}

export interface Methods {
  status: { params: Record<string, never>; result: StatusResult };
  save: { params: SaveParams; result: SaveSummary };
  load: { params: { readonly name: string }; result: LoadSummary };
  delete: { params: { readonly name: string }; result: DeleteSummary };
  list: { params: Record<string, never>; result: ListResult };
  stop: { params: Record<string, never>; result: StopResult };
  backup: { params: BackupParams; result: BackupSummary };
  abort: { params: { readonly id: number }; result: { readonly aborted: boolean } };
  migrate: { params: MigrateParams; result: MigrateSummary };
}

export interface MigrateParams {
  /** The VM directory the VM moves to (created; must hold no VM). */
  readonly to: string;
  /** The target's QEMU (default: the one the VM runs on). */
  readonly qemu?: string;
  /** `unix` (default, a socket in the target's run dir) or `tcp` (127.0.0.1). */
  readonly transport?: 'unix' | 'tcp';
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
  readonly qemu: { readonly pid: number; readonly version: string };
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
}

/** What `progress` lines of a request of method `M` carry. */
export type ProgressOf<M extends Method> = M extends 'migrate'
  ? MigrateProgressLine
  : M extends 'backup'
    ? OperationProgress
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
}

export interface SaveSummary {
  readonly name: string;
  readonly strategy: StrategyKind;
  readonly totalMs: number;
  readonly downtimeMs: number | null;
  readonly bytes: number;
  readonly live: boolean;
}

export interface LoadSummary {
  readonly name: string;
  readonly strategy: StrategyKind;
  readonly totalMs: number;
  readonly downtimeMs: number | null;
  readonly bytes: number;
  readonly verified: string | null;
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
      readonly progress: SnapshotProgress | MigrateProgressLine | OperationProgress;
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
