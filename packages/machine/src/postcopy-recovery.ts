/**
 * Post-copy recovery between two QEMUs of ours. When the stream breaks after the switch to
 * post-copy, both QEMUs go to `postcopy-paused` and stay there: QEMU has no way back (no
 * cancel, no roll-back). Which side holds the truth then: the **target** holds the guest — its
 * CPU and device state and every page it has received — and is the VM from the switch on; the
 * **source** holds the pages the target has not received yet. Neither is the VM without the
 * other, so neither may be killed: killing the source loses those pages, killing the target
 * loses the guest's newest state. Until the link is back the source stays stopped and the
 * target's vCPUs run but stall on every page still missing (its run state reads `running`).
 *
 * Recovery is a fresh channel: the target listens again (`migrate-recover` on a new unix
 * socket or TCP port), the source resumes into it (`migrate` with `resume: true`), and the
 * source moves back to `postcopy-active` to send the rest. Each attempt is bounded; after the
 * last one the caller gets `postcopy-paused` with both QEMUs alive and the state files saying
 * so (a relaunch of either is refused), and can try again with `recoverPostcopy()`.
 */
import path from 'node:path';
import { freePort } from './disk-copy.js';
import { isLiveMigrationError, LiveMigrationError } from './errors.js';
import type { MigrationTransport } from './live-migration.js';
import type { Machine } from './machine.js';
import { busy } from './migration-run.js';
import { addressUri } from './migration-transport.js';
import type { MigrationPhase } from './state.js';

export interface PostcopyRecoveryOptions {
  /** Attempts per break before giving up with `postcopy-paused` (default 3). */
  readonly attempts?: number;
  /**
   * Where the target listens for attempt `n` (1-based). Default: the transport of the
   * migration, with a fresh unix socket `migration-recover-<n>.sock` in the target's run dir or
   * a fresh TCP port (QEMU picks it) on the same host.
   */
  readonly listen?: (attempt: number) => MigrationTransport;
  /**
   * Milliseconds one attempt may take: the target noticing the break (`postcopy-paused`) and the
   * source's resume reaching `postcopy-active` (default 60 000).
   */
  readonly attemptTimeout?: number;
}

/** What the recovery tells its caller as it goes. */
export interface RecoveryEvents {
  /** Before each attempt (the state files should say `recovering` by its end). */
  readonly attempt?: (attempt: number, of: number) => Promise<void> | void;
  /** An attempt failed; `desc` says why. */
  readonly failed?: (attempt: number, desc: string) => Promise<void> | void;
}

const DEFAULT_ATTEMPTS = 3;
export const DEFAULT_ATTEMPT_TIMEOUT = 60_000;

/** The statement the errors and docs make about a paused post-copy. */
export function whoHoldsTheTruth(target: Machine): string {
  return `the target QEMU (${target.stateFile ?? target.runDir}) holds the guest's CPU and device state and every page it received, the source QEMU holds the pages not yet sent; both are left alive and paused (killing either loses the guest)`;
}

/**
 * Resolves with the first of `wanted` that `query-migrate` on `m` reports, re-read on each
 * MIGRATION event and every `poll` ms; `undefined` after `timeout` ms or when `m` exits.
 */
export async function waitForStatus(
  m: Machine,
  wanted: readonly string[],
  timeout: number,
  poll = 500,
): Promise<string | undefined> {
  let wake: () => void = () => {};
  const off = m.qmp.on('MIGRATION', () => wake());
  const deadline = performance.now() + timeout;
  let exited = false;
  void m.exited.then(() => {
    exited = true;
    wake();
  });
  try {
    for (;;) {
      const next = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, poll);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (exited || m.status !== 'running') return undefined;
      const info = await m.qmp.execute('query-migrate').catch(() => undefined);
      const status = info?.status;
      if (status !== undefined && wanted.includes(status)) return status;
      if (performance.now() >= deadline) return undefined;
      await next;
    }
  } finally {
    off();
  }
}

/**
 * Watches the source after `migrate` with `resume`: `outcome()` resolves with `postcopy-active`
 * or `completed` (from an event or `query-migrate`, polled every 500 ms), with the
 * `postcopy-paused`/`failed` event that follows a `postcopy-recover`/`postcopy-recover-setup`,
 * or `undefined` after `timeout` ms without either (a resume whose connect fails may leave the
 * state as it was, with no event).
 */
function resumeWatch(source: Machine) {
  const RECOVERING = new Set(['postcopy-recover', 'postcopy-recover-setup']);
  const END = new Set(['postcopy-active', 'completed', 'postcopy-paused', 'failed']);
  const seen: { recovering: boolean; end: string | undefined } = {
    recovering: false,
    end: undefined,
  };
  let wake: () => void = () => {};
  const note = (status: string | undefined, fromEvent: boolean) => {
    if (status === undefined) return;
    if (RECOVERING.has(status)) seen.recovering = true;
    // postcopy-active/completed prove the resume went through even if its recover state was
    // missed between two polls. A failure (postcopy-paused, failed) counts only from an event
    // after a recover state: the migration thread changes the state and emits the event while
    // the monitor may still answer a query-migrate read just before, with the old state.
    else if (status === 'postcopy-active' || status === 'completed') seen.end ??= status;
    else if (END.has(status) && seen.recovering && fromEvent) seen.end ??= status;
  };
  const off = source.qmp.on('MIGRATION', (e) => {
    note(e.data.status, true);
    wake();
  });
  return {
    off,
    outcome: async (timeout: number): Promise<string | undefined> => {
      const deadline = performance.now() + timeout;
      for (;;) {
        const next = new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 500);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        if (seen.end !== undefined) return seen.end;
        if (source.status !== 'running') return undefined;
        note((await source.qmp.execute('query-migrate').catch(() => undefined))?.status, false);
        if (seen.end !== undefined) return seen.end;
        if (performance.now() >= deadline) return undefined;
        await next;
      }
    },
  };
}

function message(error: unknown): string {
  if (isLiveMigrationError(error)) return error.desc;
  return error instanceof Error ? (error.message.split('\n')[0] ?? error.message) : String(error);
}

/** The default listener of attempt `n`: a new socket beside the first, or a new TCP port. */
function defaultListen(
  target: Machine,
  transport: MigrationTransport,
  attempt: number,
): MigrationTransport {
  if (transport.type === 'unix')
    return {
      type: 'unix',
      path: path.join(
        transport.path !== undefined ? path.dirname(transport.path) : target.runDir,
        `migration-recover-${attempt}.sock`,
      ),
    };
  return { type: 'tcp', host: transport.host ?? '127.0.0.1', port: 0 };
}

/**
 * `migrate-recover` on the target, out of band; returns the URI the source resumes to.
 *
 * Nothing here is in-band on the target: while post-copy is paused its main loop can be
 * blocked on a page that never comes (a vCPU faulted on it while holding the big lock), and
 * then every in-band command waits for the resume that it is meant to set up. That is why QEMU
 * marks `migrate-recover` allow-oob. For the same reason a TCP port 0 is not resolved through
 * `query-migrate` afterwards: the port is picked here first (free a moment ago; a taker in
 * between makes this attempt fail and the next one picks again).
 */
export async function listenAgain(target: Machine, where: MigrationTransport): Promise<string> {
  let uri: string;
  if (where.type === 'unix')
    uri = addressUri({
      type: 'unix',
      path: where.path ?? path.join(target.runDir, 'migration-recover.sock'),
    });
  else {
    const host = where.host ?? '127.0.0.1';
    const port = where.port === undefined || where.port === 0 ? await freePort(host) : where.port;
    uri = addressUri({ type: 'tcp', host, port });
  }
  await target.qmp.executeOob('migrate-recover', { uri });
  return uri;
}

/**
 * Resolves once the target is in `postcopy-paused`: from its MIGRATION event, or from
 * `migrate-recover` itself (out of band) being accepted — the caller's next step — so this only
 * waits; `undefined` after `timeout` ms or when the target exits. An in-band `query-migrate`
 * is raced too (it answers at once when the main loop is free, e.g. the break is older than the
 * event listener) but never awaited alone: see `listenAgain`.
 */
export async function untilTargetPaused(
  target: Machine,
  timeout: number,
): Promise<string | undefined> {
  let off = () => {};
  let timer: NodeJS.Timeout | undefined;
  const event = new Promise<string | undefined>((resolve) => {
    off = target.qmp.on('MIGRATION', (e) => {
      if (e.data.status === 'postcopy-paused') resolve('postcopy-paused');
    });
    timer = setTimeout(() => resolve(undefined), timeout);
    void target.exited.then(() => resolve(undefined));
  });
  // Its answer may come only after the resume (then the event has settled the race already).
  const query = target.qmp.execute('query-migrate').then(
    (info) =>
      info.status === 'postcopy-paused' ? 'postcopy-paused' : new Promise<never>(() => {}),
    () => new Promise<never>(() => {}),
  );
  try {
    return await Promise.race([event, query]);
  } finally {
    off();
    clearTimeout(timer);
  }
}

/**
 * One recovery of a broken post-copy link, both QEMUs in (or on their way to)
 * `postcopy-paused`: up to `attempts` times, the target listens anew and the source resumes
 * into it. Resolves with the attempt that brought the source back to `postcopy-active` (or
 * `completed`); throws `postcopy-paused` (both QEMUs alive) when every attempt failed, or
 * `source-exited`/`target-exited` when a QEMU went away.
 */
export async function recoverLink(
  source: Machine,
  target: Machine,
  transport: MigrationTransport,
  options: PostcopyRecoveryOptions = {},
  events: RecoveryEvents = {},
  phase: MigrationPhase = 'recovering',
): Promise<number> {
  const attempts = Math.max(1, options.attempts ?? DEFAULT_ATTEMPTS);
  const timeout = options.attemptTimeout ?? DEFAULT_ATTEMPT_TIMEOUT;
  const failures: string[] = [];
  const gone = () => {
    if (source.status !== 'running')
      throw new LiveMigrationError(
        'source-exited',
        phase,
        'the source QEMU exited while post-copy was paused: the pages it held are lost',
        { sourceRunning: false },
      );
    if (target.status !== 'running')
      throw new LiveMigrationError(
        'target-exited',
        phase,
        'the target QEMU exited while post-copy was paused: the guest is lost',
        { sourceRunning: false, stderr: target.stderr() },
      );
  };
  for (let attempt = 1; attempt <= attempts; attempt++) {
    await events.attempt?.(attempt, attempts);
    // A resume that went through after all (its outcome arrived late): nothing to recover.
    const now = (await source.qmp.execute('query-migrate').catch(() => undefined))?.status;
    if (now === 'postcopy-active' || now === 'completed') return attempt;
    const fail = async (desc: string) => {
      failures.push(`attempt ${attempt}: ${desc}`);
      await events.failed?.(attempt, desc);
    };
    // The target notices the break on its own (EOF or error on the stream); only then does it
    // accept `migrate-recover`. Tried at once (out of band: see `listenAgain`); refused while the
    // target has not noticed yet, then again once it has.
    let uri: string;
    const where = options.listen?.(attempt) ?? defaultListen(target, transport, attempt);
    try {
      uri = await listenAgain(target, where);
    } catch {
      gone();
      const targetStatus = await untilTargetPaused(target, timeout);
      gone();
      if (targetStatus === undefined) {
        await fail(`the target did not reach postcopy-paused within ${timeout} ms`);
        continue;
      }
      try {
        uri = await listenAgain(target, where);
      } catch (error) {
        gone();
        await fail(`migrate-recover on the target failed: ${message(error)}`);
        continue;
      }
    }
    const sourceStatus = await waitForStatus(source, ['postcopy-paused'], timeout);
    gone();
    if (sourceStatus === undefined) {
      await fail(`the source did not reach postcopy-paused within ${timeout} ms`);
      continue;
    }
    // `migrate` with `resume` returns before the source changes state (7.2 connects first and
    // reads `postcopy-paused` for a while): only a status after `postcopy-recover` counts.
    const resumed = resumeWatch(source);
    let after: string | undefined;
    try {
      await source.qmp.execute('migrate', { uri, resume: true });
      after = await resumed.outcome(timeout);
    } catch (error) {
      gone();
      await fail(`migrate (resume) on the source failed: ${message(error)}`);
      continue;
    } finally {
      resumed.off();
    }
    gone();
    if (after === 'postcopy-active' || after === 'completed') return attempt;
    await fail(
      after === undefined
        ? `the source's resume did not reach postcopy-active within ${timeout} ms`
        : `the source's resume ended in '${after}'`,
    );
    if (after === 'failed') break;
  }
  throw new LiveMigrationError(
    'postcopy-paused',
    phase,
    `the link broke during post-copy and ${failures.length} recovery attempt(s) failed (${failures.join('; ')}); ${whoHoldsTheTruth(target)}. Try again with recoverPostcopy(source, target)`,
    { sourceRunning: false, peerStateFile: target.stateFile ?? null },
  );
}

export interface RecoverPostcopyOptions extends PostcopyRecoveryOptions {
  /** The stream's transport the defaults derive from (default a unix socket in the target's run dir). */
  readonly transport?: MigrationTransport;
  /** Milliseconds for the rest of RAM after the resume, until the source's `completed` (default 1 h). */
  readonly completeTimeout?: number;
}

export interface RecoverPostcopyResult {
  /** The VM, on the target (the source QEMU has ended). */
  readonly machine: Machine;
  /** The attempt that resumed the stream. */
  readonly attempts: number;
}

/**
 * Recovers a post-copy migration that `migrate()` left in `postcopy-paused` (its result
 * rejected with `postcopy-paused`): resumes the stream, waits until the source has sent the
 * rest (`completed`) and the target runs the guest, ends the source and clears both records.
 * A break during this is recovered the same way; when every attempt fails the QEMUs stay as
 * they are (`postcopy-paused` again).
 */
export async function recoverPostcopy(
  source: Machine,
  target: Machine,
  options: RecoverPostcopyOptions = {},
): Promise<RecoverPostcopyResult> {
  if (busy.has(source))
    throw new LiveMigrationError(
      'busy',
      'recovering',
      'a migration of this machine is still under way (it recovers on its own)',
      { sourceRunning: false },
    );
  if (source.status !== 'running' || target.status !== 'running')
    throw new LiveMigrationError(
      source.status !== 'running' ? 'source-exited' : 'target-exited',
      'recovering',
      `the ${source.status !== 'running' ? 'source' : 'target'} QEMU is gone: nothing to recover`,
      { sourceRunning: false },
    );
  const status = (await source.qmp.execute('query-migrate')).status;
  if (status !== 'postcopy-paused')
    throw new LiveMigrationError(
      'not-active',
      'recovering',
      `the source's migration is in '${status ?? 'none'}', not postcopy-paused: nothing to recover`,
      { sourceRunning: false },
    );
  busy.add(source);
  try {
    const record = async (phase: MigrationPhase) => {
      const s = source.migration;
      const t = target.migration;
      if (s !== undefined) await source.recordMigration({ ...s, phase });
      if (t !== undefined) await target.recordMigration({ ...t, phase });
    };
    const transport = options.transport ?? { type: 'unix' };
    for (;;) {
      try {
        const attempt = await recoverLink(source, target, transport, options, {
          attempt: () => record('recovering'),
        });
        await record('confirming');
        const end = await waitForStatus(
          source,
          ['completed', 'postcopy-paused', 'failed'],
          options.completeTimeout ?? 3_600_000,
        );
        if (end === 'postcopy-paused') continue;
        if (end !== 'completed')
          throw new LiveMigrationError(
            'postcopy-failed',
            'confirming',
            `after the resume the source reported '${end ?? 'nothing in time'}'; ${whoHoldsTheTruth(target)}`,
            { sourceRunning: false },
          );
        const run = await waitForStatus(target, ['completed'], options.completeTimeout ?? 60_000);
        if (run === undefined)
          throw new LiveMigrationError(
            'postcopy-failed',
            'confirming',
            'the target did not report completed after the source did',
            { sourceRunning: false, stderr: target.stderr() },
          );
        const s = source.migration;
        await source.recordMigration({
          role: 'source',
          phase: 'done',
          peer: s?.peer ?? {
            runDir: target.runDir,
            stateFile: target.stateFile ?? null,
            createdRunDir: false,
          },
          startedAt: s?.startedAt ?? new Date().toISOString(),
        });
        await source.stop();
        await target.recordMigration(undefined);
        return { machine: target, attempts: attempt };
      } catch (error) {
        if (isLiveMigrationError(error) && error.reason === 'postcopy-paused')
          await record('postcopy-paused');
        throw error;
      }
    }
  } finally {
    busy.delete(source);
  }
}
