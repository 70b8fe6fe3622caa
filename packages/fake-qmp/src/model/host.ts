import type { SchemaTables } from '@qmpkit/qapi/runtime-v1';
import type { QmpVersionInfo } from '@qmpkit/transport/codec';
import type { CommandContext, CommandHandler } from '../server/types.js';
import type { Storage } from './storage.js';

/** How long simulated work takes, in milliseconds (0 = next turn of the event loop). */
export interface FakeTiming {
  /** A job's run phase (blockdev-create, snapshot-save/load/delete). Default 1. */
  readonly jobMs?: number;
  /** One migration pass; a migration has a setup, two passes and completion. Default 2. */
  readonly migrationMs?: number;
  /**
   * Time a cooperative guest takes to release a PCI device after `device_del`, or 'never'
   * for a guest that ignores the request (firmware only). Default 10.
   */
  readonly pciUnplugMs?: number | 'never';
  /**
   * What the guest does on `system_powerdown`: shut down after this many ms, or 'ignore'
   * (no ACPI-aware OS, like QEMU with `-machine none` or the tiny test guest). Default
   * 'ignore'.
   */
  readonly powerdownShutdownMs?: number | 'ignore';
  /**
   * `-machine pc` only: after `system_reset`, SeaBIOS finds itself warm-booted and resets the
   * machine once more — a second RESET (`guest: true`, `reason: 'guest-reset'`) this many ms
   * after the vCPUs next run — or 'never' (no firmware in the picture). Default 1. (Real
   * QEMU 7.2 with the tiny guest sends one or two such RESETs, varying from run to run.)
   */
  readonly firmwareResetMs?: number | 'never';
}

/** What every part of the VM model can use. */
/**
 * What a QEMU version does that its schema does not say, measured against the real binary by
 * the contract suite (each fact has a scenario that fails without it).
 */
export interface VersionFacts {
  /** Bytes of a saved VM state (`vm-state-size`) of the contract suite's machines. */
  readonly vmStateSize: number;
  /** HMP `info snapshots` layout: 7.2's (`VM SIZE`, `00:00:00.000`) or 10.0's (`VM_SIZE`, `0000:00:00.000`). */
  readonly snapshotTable: 'spaced' | 'underscored';
  /** MIGRATION status `device` between STOP and completion also without pause-before-switchover. */
  readonly migrationDeviceState: boolean;
  /** `device_add` with a non-string `driver` says the parameter is missing (it reads it as a string). */
  readonly deviceAddDriverMustBeString: boolean;
  /** query-migrate's `ram.transferred` counts the whole stream (7.2: RAM pages only, 0 here). */
  readonly migrationTransferredCountsStream: boolean;
  /** query-migrate on a listening incoming side shows `status: setup` beside `socket-address`. */
  readonly incomingSetupStatusShown: boolean;
  /** query-migrate of a migration cancelled after it connected shows this `error-desc` (10.0). */
  readonly migrationCancelErrorDesc?: string;
  /** The source's `error-desc` when the target fails or goes away mid-stream. */
  readonly migrationTargetGoneDesc: string;
  /** `quit` closes the remaining exports newest first (10.0) rather than oldest first (7.2). */
  readonly exitClosesExportsNewestFirst: boolean;
}

export interface ModelHost {
  readonly tables: SchemaTables;
  readonly version: QmpVersionInfo;
  readonly facts: VersionFacts;
  readonly storage: Storage;
  readonly timing: Required<FakeTiming>;
  /** Broadcasts an event to every negotiated client. */
  emit(event: string, data?: unknown): void;
  /** Runs `fn` after `ms` (tracked, cancelled when the fake closes). */
  later(ms: number, fn: () => void): void;
  /** Resolves after `ms` (tracked like `later`). */
  sleep(ms: number): Promise<void>;
  /** The simulated QEMU process exits (closes every connection and listener). */
  exit(code: number): void;
  /** Monotonic nanoseconds since the fake started (QEMU's vm clock while running). */
  uptimeNs(): bigint;
}

export type HandlerTable = Map<string, CommandHandler>;

/** A handler that reads its arguments as a typed record. */
export function handler<A>(fn: (args: A, ctx: CommandContext) => unknown): CommandHandler {
  return fn as CommandHandler;
}

/** QEMU's `id_wellformed`: a letter, then letters, digits, '-', '.', '_'. */
export function idWellformed(id: string): boolean {
  return /^[A-Za-z][A-Za-z0-9._-]*$/.test(id);
}
