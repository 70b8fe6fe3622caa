/**
 * Where a push-mode backup runs: a running `Machine` (QEMU's monitor), or a
 * `qemu-storage-daemon` holding the images of a stopped VM (`stopped.ts`). Both are a typed
 * QMP client plus the VM's configuration (which disks, which nodes). The client is described
 * by the commands and events the backup sends and awaits, so QEMU's client and the daemon's
 * (its own bindings, the same QAPI types for these commands) both fit, as the block-job
 * runner's `BlockJobQmp` does.
 */
import type { VmConfig } from '@qmpkit/devices';
import type { BlockJobQmp, CommandExec } from '@qmpkit/machine';
import type { Commands, Events } from '@qmpkit/qapi';
import type { DataOf, HasSubject, SchemaQuery } from '@qmpkit/transport';

/** The commands a push backup, its tear-down and the repair of an interrupted one send. */
export type BackupCommand =
  | 'query-named-block-nodes'
  | 'query-jobs'
  | 'query-block-exports'
  | 'blockdev-add'
  | 'blockdev-del'
  | 'transaction'
  | 'block-dirty-bitmap-remove'
  | 'block-export-del'
  | 'nbd-server-stop'
  | 'object-del'
  | 'qom-list'
  | 'job-cancel'
  | 'job-dismiss';

type Exec<K extends BackupCommand> = CommandExec<K>;

/** The part of a typed client a push backup uses (a `Machine`'s and a daemon's both fit). */
export interface BackupQmp extends Omit<BlockJobQmp, 'execute' | 'on'> {
  readonly execute: BlockJobQmp['execute'] &
    Exec<'query-block-exports'> &
    Exec<'blockdev-add'> &
    Exec<'blockdev-del'> &
    Exec<'block-dirty-bitmap-remove'> &
    Exec<'block-export-del'> &
    Exec<'nbd-server-stop'> &
    Exec<'object-del'> &
    Exec<'qom-list'> &
    Exec<'job-cancel'> &
    Exec<'job-dismiss'>;
  on<K extends 'JOB_STATUS_CHANGE' | 'BLOCK_EXPORT_DELETED'>(
    name: K,
    fn: (event: { readonly data: DataOf<Events, K> }) => void,
  ): () => void;
  has(
    name: 'blockdev-backup',
    query?: SchemaQuery<HasSubject<Commands, Events, 'blockdev-backup'>>,
  ): Promise<boolean>;
}

/** A running VM (`Machine`) or a daemon over a stopped VM's images. */
export interface BackupHost {
  readonly qmp: BackupQmp;
  readonly config: VmConfig;
}
