/**
 * Migration, outgoing and incoming, for every transport QEMU takes as a URI (`fd:N` of an
 * inherited file, `unix:`, `tcp:`, a stream sink's socket; never `exec:`, which runs a shell):
 * capability and parameter set-up, waiting for the end with a deadline, cancellation through
 * an `AbortSignal`, progress ticks, and the failure as a typed `MigrationError`. External
 * snapshots use it (save = outgoing into a file, load = incoming from one); live migration
 * between hosts builds on the same calls.
 *
 * Pitfalls of QEMU 7.2 handled here: MIGRATION events come only with the `events`
 * capability (always set); internal snapshots leave `completed` events and `query-migrate`
 * state behind, so only events after our own `setup` count; `migrate` into a slow reader is
 * throttled to 128 MiB/s unless `max-bandwidth` says otherwise; an incoming migration that
 * fails is reported only on stderr, and QEMU exits.
 */
import type { Commands } from '@qmpkit/qapi';
import { MigrationError } from './errors.js';
import type { Machine } from './machine.js';

type Capabilities = Commands['migrate-set-capabilities']['args']['capabilities'];
type Parameters = Commands['migrate-set-parameters']['args'];

export interface MigrationSetup {
  /** Capabilities to set besides `events` (which is always on). */
  readonly capabilities?: Capabilities;
  /** `migrate-set-parameters` arguments (e.g. `max-bandwidth`). */
  readonly parameters?: Parameters;
}

/** Sets `events` and the given capabilities and parameters (before a migration starts). */
export async function setUpMigration(machine: Machine, setup: MigrationSetup = {}): Promise<void> {
  const qmp = machine.qmp;
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [{ capability: 'events', state: true }, ...(setup.capabilities ?? [])],
  });
  if (setup.parameters !== undefined) await qmp.execute('migrate-set-parameters', setup.parameters);
}

export interface OutgoingMigrationOptions {
  /** Where to: `fd:N`, `unix:PATH`, `tcp:HOST:PORT`, … (`exec:` is refused). */
  readonly uri: string;
  /** Milliseconds until the migration is cancelled (`MigrationError` reason `timeout`). */
  readonly timeout: number;
  /** Cancels the migration (`migrate_cancel`); the call rejects with reason `aborted`. */
  readonly signal?: AbortSignal;
  /** Called every `tickMs` (default 100) while the migration runs, e.g. to report bytes. */
  readonly onTick?: () => void;
  readonly tickMs?: number;
}

export interface OutgoingMigrationResult {
  /**
   * QEMU's RESUME timestamp (ms) if the guest was resumed during the migration (as the
   * `background-snapshot` capability does right after the device state is written).
   */
  readonly resumeMs?: number;
}

function refuseExec(direction: 'outgoing' | 'incoming', uri: string): void {
  if (uri.startsWith('exec:'))
    throw new MigrationError(
      direction,
      'failed',
      'exec: URIs run a shell command line and are refused; use fd:, unix: or tcp:',
    );
}

function describeExit(code: number | null, signal: string | null): string {
  return signal !== null ? `signal ${signal}` : `exit code ${code}`;
}

/** `migrate` and wait for `completed`; see the module comment. */
export async function migrateOutgoing(
  machine: Machine,
  options: OutgoingMigrationOptions,
): Promise<OutgoingMigrationResult> {
  refuseExec('outgoing', options.uri);
  const qmp = machine.qmp;
  let ours = false;
  let resumeMs: number | undefined;
  let settle!: (error?: MigrationError) => void;
  const finished = new Promise<void>((resolve, reject) => {
    settle = (error?: MigrationError) => (error === undefined ? resolve() : reject(error));
  });
  // Awaited below; this handler only keeps a rejection before that from being "unhandled".
  finished.catch(() => undefined);
  const cancel = () => {
    // Best effort: the outcome is decided by the MIGRATION event or the deadline, and a
    // migration that already ended answers with an error that changes nothing.
    qmp.execute('migrate_cancel').catch(() => undefined);
  };
  const offResume = qmp.on('RESUME', (event) => {
    if (ours && resumeMs === undefined)
      resumeMs = event.timestamp.seconds * 1000 + event.timestamp.microseconds / 1000;
  });
  const offMigration = qmp.on('MIGRATION', (event) => {
    const status = event.data.status;
    if (status === 'setup') ours = true;
    if (!ours) return;
    if (status === 'completed') settle();
    else if (status === 'failed' || status === 'cancelled') {
      void qmp
        .execute('query-migrate')
        .then(
          (info) => info['error-desc'] ?? `migration ${status}`,
          () => `migration ${status}`,
        )
        .then((desc) =>
          settle(
            new MigrationError('outgoing', options.signal?.aborted ? 'aborted' : status, desc),
          ),
        );
    }
  });
  void machine.exited.then((exit) =>
    settle(
      new MigrationError(
        'outgoing',
        'exited',
        `QEMU exited during the migration (${describeExit(exit.code, exit.signal)})`,
        { exitCode: exit.code, signal: exit.signal, stderr: machine.stderr() },
      ),
    ),
  );
  const onAbort = () => {
    cancel();
    settle(
      new MigrationError(
        'outgoing',
        'aborted',
        'aborted by the caller',
        {},
        {
          cause: options.signal?.reason,
        },
      ),
    );
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const ticker = options.onTick ? setInterval(options.onTick, options.tickMs ?? 100) : undefined;
  const timer = setTimeout(() => {
    cancel();
    settle(new MigrationError('outgoing', 'timeout', `not completed within ${options.timeout} ms`));
  }, options.timeout);
  try {
    if (options.signal?.aborted) onAbort();
    else await qmp.execute('migrate', { uri: options.uri });
    await finished;
    options.onTick?.();
    return resumeMs !== undefined ? { resumeMs } : {};
  } finally {
    if (ticker !== undefined) clearInterval(ticker);
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    offMigration();
    offResume();
  }
}

export interface IncomingMigrationOptions {
  /** Where from: `fd:N` of an inherited file (`machine.inheritedFiles`), `unix:`, `tcp:`. */
  readonly uri: string;
  /** Milliseconds until QEMU is killed (an empty stream makes 7.2 wait forever). */
  readonly timeout: number;
}

/**
 * `migrate-incoming` on a QEMU started with `-incoming defer` (`restart(config, { incoming:
 * true })`), to `completed`. On failure QEMU is gone (it exits by itself, or is killed at the
 * deadline) and the `MigrationError` carries its exit and stderr.
 */
export async function migrateIncoming(
  machine: Machine,
  options: IncomingMigrationOptions,
): Promise<void> {
  refuseExec('incoming', options.uri);
  const qmp = machine.qmp;
  let settle!: (error?: MigrationError) => void;
  const finished = new Promise<void>((resolve, reject) => {
    settle = (error?: MigrationError) => (error === undefined ? resolve() : reject(error));
  });
  // Awaited below; this handler only keeps a rejection before that from being "unhandled".
  finished.catch(() => undefined);
  // The first cause wins: killing QEMU at the deadline also makes it exit, and that exit
  // must not be reported as the reason.
  let failing = false;
  const fail = async (reason: 'failed' | 'exited' | 'timeout', detail: string) => {
    if (failing) return;
    failing = true;
    // kill() rejects only when the state file cannot be written after QEMU is gone; the exit
    // is what this reports, and that write failure is the next write's to report.
    const kill = () => machine.kill().catch(() => machine.exited);
    if (reason === 'timeout') await kill();
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      machine.exited,
      new Promise<undefined>((r) => {
        timer = setTimeout(() => r(undefined), 3000);
      }),
    ]).finally(() => clearTimeout(timer));
    // 7.2 exits by itself after a failed incoming migration; one that does not is killed.
    const info = exit ?? (await kill());
    settle(
      new MigrationError('incoming', reason, detail, {
        exitCode: info.code,
        signal: info.signal,
        stderr: machine.stderr(),
      }),
    );
  };
  const off = qmp.on('MIGRATION', (event) => {
    if (event.data.status === 'completed') settle();
    else if (event.data.status === 'failed') void fail('failed', 'the incoming migration failed');
  });
  void machine.exited.then(() => fail('exited', 'QEMU exited during the incoming migration'));
  const timer = setTimeout(
    () => void fail('timeout', `no completed incoming migration within ${options.timeout} ms`),
    options.timeout,
  );
  try {
    await qmp.execute('migrate-set-capabilities', {
      capabilities: [{ capability: 'events', state: true }],
    });
    await qmp.execute('migrate-incoming', { uri: options.uri });
    await finished;
  } catch (error) {
    // A command that failed because QEMU went away: the migration's own outcome (with the
    // exit status and stderr) is the better error, and it settles once the exit is seen.
    let grace: NodeJS.Timeout | undefined;
    const gone = await Promise.race([
      machine.exited.then(() => true),
      new Promise<false>((r) => {
        grace = setTimeout(() => r(false), 3000);
      }),
    ]).finally(() => clearTimeout(grace));
    if (!gone && !failing) throw error;
    throw await finished.then(
      () => error,
      (e: unknown) => e,
    );
  } finally {
    clearTimeout(timer);
    off();
  }
}
