/**
 * The receiving side of a live migration whose source this process does not own (another
 * host, another manager): `receiveMigration()` starts QEMU with the guest's configuration and
 * pinned machine type under `-incoming defer`, sets the capabilities the source will use
 * (events, return-path, post-copy when asked — from the running QEMU's own list), TLS
 * credentials when asked, listens, and hands back the URI to give the source. `done` resolves
 * once this QEMU itself reports the guest `running` (or `paused`, when the source was paused)
 * after its MIGRATION `completed`; on a failed load, an exit, an abort or the deadline it kills
 * the QEMU, removes what it created and rejects with a `LiveMigrationError`.
 *
 * `disks: 'copy'` (the source migrates with `disks: 'copy'` too): fresh images of the sizes the
 * caller gives (`diskSizes`, the source's; the source refuses a mismatch before it writes) go
 * into `diskDir`, the QEMU starts with them under `-S`, and an NBD server on the listening host
 * exports each disk writable (with `tls`: TLS clients only). The address printed for the source
 * names both (`tcp:HOST:PORT,nbd=NBDPORT`). Once this QEMU's MIGRATION says `completed` (the
 * source ended its mirrors at `pre-switchover`), the exports and the NBD server go and the guest
 * is resumed here: a writable export conflicts with the guest's own write access to its disk,
 * which is why the QEMU waits under `-S`. A source refuses a paused guest with a disk copy (this
 * side could not tell a paused source from a running one under `-S`). On any failure the
 * images are removed with the QEMU.
 */
import path from 'node:path';
import type { VmConfig } from '@qmpkit/devices';
import type { Logger } from '@qmpkit/transport';
import {
  type CopiedDisk,
  createTargetImages,
  exportTargetDisks,
  plannedPaths,
  planReceivedDisks,
  removeExports,
  removeMade,
} from './disk-copy.js';
import { isLiveMigrationError, LiveMigrationError } from './errors.js';
import { type LaunchOptions, launch, type Machine } from './machine.js';
import {
  addressUri,
  addTlsCredentials,
  baseCapabilities,
  capabilitiesOf,
  type MigrationTls,
  parseMigrationAddress,
  receiverAddressText,
  requirePostcopy,
  TLS_OBJECT_ID,
} from './migration-transport.js';
import { DEFAULT_ATTEMPT_TIMEOUT, listenAgain, untilTargetPaused } from './postcopy-recovery.js';

export interface ReceiveOptions
  extends Pick<
    LaunchOptions,
    | 'qemu'
    | 'cacheDir'
    | 'runDir'
    | 'runDirParent'
    | 'stateFile'
    | 'consoles'
    | 'accel'
    | 'launchTimeout'
    | 'extraArgs'
    | 'env'
  > {
  /**
   * Where to listen: `tcp:HOST:PORT` (port 0: any free one, reported in `uri`) or `unix:PATH`
   * (default `tcp:127.0.0.1:0`).
   */
  readonly listen?: string;
  /**
   * The source's pinned machine type (e.g. `pc-i440fx-7.2`), replacing the configuration's: an
   * alias such as `pc` means this binary's newest type, which another QEMU version refuses.
   */
  readonly machineType?: string;
  /** TLS credentials (server side); the source must use TLS too. */
  readonly tls?: MigrationTls;
  /** Allow post-copy (`postcopy-ram`); the source must ask for it too. Needs userfaultfd. */
  readonly postcopy?: boolean;
  /**
   * `copy`: receive the guest's disks too (see the module comment); needs a TCP `listen`.
   * Default: the configuration's images are opened as they are (storage both hosts share).
   */
  readonly disks?: 'copy' | 'shared';
  /** `disks: 'copy'`: each writable disk's virtual size in bytes, by node name (the source's). */
  readonly diskSizes?: Readonly<Record<string, number>>;
  /**
   * `disks: 'copy'`: where the fresh images go (created 0700; default `<runDir>/disks`); each
   * is named after the configuration's image file. Must not hold them already.
   */
  readonly diskDir?: string;
  /**
   * `disks: 'copy'`: runs once the stream completed, while the guest is still paused here and
   * the NBD exports still up (the place to read the images as the source left them). A
   * rejection does not kill the QEMU: the source has completed, so this QEMU holds the only
   * copy of the guest; `done` resolves paused with `resumeError` (see there).
   */
  readonly beforeResume?: (context: {
    readonly machine: Machine;
    readonly disks: readonly CopiedDisk[];
    readonly nbdPort: number;
  }) => Promise<void>;
  /** Milliseconds to wait for the guest to arrive and run (default: forever, until aborted). */
  readonly timeout?: number;
  readonly signal?: AbortSignal;
  readonly logger?: Logger;
}

export interface ReceivedMigration {
  /** The machine, now running the guest (or paused, as the source was). */
  readonly machine: Machine;
  readonly running: boolean;
  /** MIGRATION `completed` on this side → the query that saw the guest's run state (ms). */
  readonly waitedMs: number;
  /**
   * Set when the guest arrived but a step after the stream completed failed (`beforeResume`,
   * removing the NBD exports, `cont`). The source has handed the guest over, so it is never
   * thrown away: this QEMU keeps it paused (`running: false`) with its images, and `cont` resumes
   * it once the cause is fixed. A `LiveMigrationError` (`command-failed`, phase `confirming`).
   */
  readonly resumeError?: LiveMigrationError;
}

export interface IncomingMigration {
  /** The QEMU waiting for the stream (`inmigrate` until the guest arrives). */
  readonly machine: Machine;
  /**
   * What to give the source (`migrate --to URI`): the listening address with its real port
   * (with `disks: 'copy'` followed by `,nbd=PORT`, the NBD server's).
   */
  readonly uri: string;
  /** `disks: 'copy'`: the images made here (removed again when the guest does not arrive). */
  readonly disks: readonly CopiedDisk[];
  /** The received guest, or a `LiveMigrationError` after the QEMU was killed and removed. */
  readonly done: Promise<ReceivedMigration>;
  /** Gives up waiting: kills the QEMU and removes its files (`done` rejects with `aborted`). */
  cancel(reason?: unknown): Promise<void>;
  /**
   * Post-copy recovery, receiving side: once this QEMU is in `postcopy-paused` (the link broke
   * after the switch; this side holds the guest, which waits for its missing pages), listens
   * again (`migrate-recover` out of band, default: the first address' host, a free port) and
   * returns the address for the source's resume (`migrateTo`'s `onPostcopyPaused`). Only
   * out-of-band commands reach the paused QEMU: its main loop may be blocked on a missing page.
   * Throws `timeout` when it does not reach `postcopy-paused` within 60 s, `target-exited`.
   */
  recover(listen?: string): Promise<string>;
}

const IN_FLIGHT = new Set([
  'none',
  'setup',
  'active',
  'postcopy-active',
  'postcopy-paused',
  'postcopy-recover-setup',
  'postcopy-recover',
  'device',
  'completed',
]);

/**
 * Starts the receiving QEMU and resolves once it listens. Failures before that (launch, a
 * capability or TLS refused, the address taken) kill the QEMU and reject with a
 * `LiveMigrationError`.
 */
export async function receiveMigration(
  config: VmConfig,
  options: ReceiveOptions = {},
): Promise<IncomingMigration> {
  const address = parseMigrationAddress(options.listen ?? 'tcp:127.0.0.1:0');
  const model: VmConfig =
    options.machineType !== undefined
      ? { ...config, machine: { ...config.machine, type: options.machineType } }
      : config;
  const logger = options.logger ?? {
    warn: (message: string, detail?: unknown) =>
      console.warn(`[qmpkit/machine] ${message}`, detail ?? ''),
  };
  if (options.signal?.aborted)
    throw new LiveMigrationError(
      'aborted',
      'starting-target',
      'aborted before the start',
      {},
      {
        cause: options.signal.reason,
      },
    );
  const {
    signal: _signal,
    listen: _listen,
    tls,
    postcopy,
    timeout,
    machineType,
    disks: _disks,
    diskSizes,
    diskDir,
    beforeResume,
    ...rest
  } = options;
  const copy = options.disks === 'copy';
  let disks: CopiedDisk[] = [];
  const made: string[] = [];
  let launchConfig = model;
  let finalConfig = model;
  if (copy) {
    const refuse = (desc: string) => new LiveMigrationError('invalid-options', 'setup', desc);
    if (address.type !== 'tcp')
      throw refuse(
        "disks: 'copy' needs a TCP address to listen on (the NBD server shares its host)",
      );
    const dir =
      diskDir ?? (options.runDir !== undefined ? path.join(options.runDir, 'disks') : undefined);
    if (dir === undefined) throw refuse("disks: 'copy' needs diskDir (or runDir)");
    const plan = planReceivedDisks(model, diskSizes ?? {}, dir);
    disks = plan.disks;
    // Paused until the exports are gone: they conflict with the guest's write access.
    finalConfig = plan.config;
    launchConfig = { ...plan.config, paused: true };
    made.push(...(await plannedPaths(disks)));
    try {
      await createTargetImages(disks, logger);
    } catch (error) {
      await removeMade(made);
      throw new LiveMigrationError(
        'disk-copy',
        'setup',
        `creating the receiving images failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
        {},
        { cause: error },
      );
    }
  }
  const removeImages = () =>
    removeMade(made).catch((e: unknown) => logger.warn('receive: removing the images failed', e));
  let machine: Machine;
  try {
    machine = await launch(launchConfig, {
      ...rest,
      incoming: true,
      logger,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
  } catch (error) {
    await removeImages();
    throw new LiveMigrationError(
      'target-launch',
      'starting-target',
      `the receiving QEMU did not start: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
      {},
      { cause: error },
    );
  }
  const killed = async () => {
    // The QEMU is ours: killing it also removes a temporary run dir launch() created.
    await machine.kill().catch((e: unknown) => logger.warn('receive: kill failed', e));
    await removeImages();
  };
  const startedAt = new Date().toISOString();
  let uri: string;
  let nbdPort: number | undefined;
  try {
    // A relaunch of this state file before the guest arrived is refused (`incomplete-target`):
    // it would boot the configuration afresh beside the source that still runs the guest.
    await machine.recordMigration({ role: 'target', phase: 'setup', peer: null, startedAt });
    const caps = await capabilitiesOf(machine);
    if (postcopy === true) await requirePostcopy(machine, caps, 'target', 'setup');
    await machine.qmp.execute('migrate-set-capabilities', {
      capabilities: baseCapabilities(caps, postcopy === true),
    });
    if (tls !== undefined) {
      const parameters = await addTlsCredentials(machine, 'server', tls, undefined, 'setup');
      await machine.qmp.execute('migrate-set-parameters', parameters);
    }
    if (copy && address.type === 'tcp') {
      const nbd = await exportTargetDisks(
        machine,
        disks,
        { type: 'tcp', host: address.host },
        tls !== undefined ? { creds: TLS_OBJECT_ID } : undefined,
      );
      nbdPort = nbd.server.type === 'inet' ? Number(nbd.server.port) : undefined;
    }
    await machine.qmp.execute('migrate-incoming', { uri: addressUri(address) });
    uri = receiverAddressText({
      migration: parseMigrationAddress(await listeningUri(machine, address)),
      ...(nbdPort !== undefined ? { nbdPort } : {}),
    });
  } catch (error) {
    await killed();
    if (isLiveMigrationError(error)) throw error;
    throw new LiveMigrationError(
      'command-failed',
      'setup',
      `setting up the receiving QEMU failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
      { stderr: machine.stderr() },
      { cause: error },
    );
  }
  const cancel = new AbortController();
  const done = waitForGuest(machine, {
    ...(timeout !== undefined ? { timeout } : {}),
    signals: [cancel.signal, ...(options.signal !== undefined ? [options.signal] : [])],
    ...(copy
      ? {
          // The source ended its mirrors before it let the migration complete: the images hold
          // its data. The exports go first (their write access conflicts with the guest's).
          onCompleted: async () => {
            try {
              if (beforeResume !== undefined && nbdPort !== undefined)
                await beforeResume({ machine, disks, nbdPort });
              await removeExports(machine, disks);
              await machine.qmp.execute('cont');
            } finally {
              // The stored model loses `paused` (even when a step failed and the guest waits
              // here paused): a later relaunch boots the guest as usual.
              await machine.adopt(finalConfig);
            }
          },
        }
      : {}),
  }).then(
    async (received) => {
      await machine.recordMigration(undefined);
      return received;
    },
    async (error: unknown) => {
      await killed();
      throw error;
    },
  );
  // Awaited by the caller; this only keeps an early rejection from being reported unhandled.
  done.catch(() => undefined);
  return {
    machine,
    uri,
    disks,
    done,
    recover: async (listen?: string) => {
      const again =
        listen !== undefined
          ? parseMigrationAddress(listen)
          : address.type === 'tcp'
            ? { ...address, port: 0 }
            : { type: 'unix' as const, path: `${address.path}.recover` };
      // Out of band only (see listenAgain): the paused guest's main loop can be blocked on a page
      // the source has not sent, and every in-band command then waits for this very recovery.
      // Refused while this QEMU has not noticed the break yet; tried again once it has.
      try {
        return await listenAgain(machine, again);
      } catch (error) {
        if (machine.status !== 'running')
          throw new LiveMigrationError(
            'target-exited',
            'recovering',
            'the receiving QEMU exited while post-copy was paused: the guest is lost',
            { stderr: machine.stderr() },
            { cause: error },
          );
        const paused = await untilTargetPaused(machine, DEFAULT_ATTEMPT_TIMEOUT);
        if (paused === undefined)
          throw new LiveMigrationError(
            machine.status !== 'running' ? 'target-exited' : 'timeout',
            'recovering',
            `the receiving QEMU did not reach postcopy-paused within ${DEFAULT_ATTEMPT_TIMEOUT} ms`,
            { stderr: machine.stderr() },
            { cause: error },
          );
        return listenAgain(machine, again);
      }
    },
    cancel: async (reason?: unknown) => {
      cancel.abort(reason);
      await done.then(
        () => {
          throw new LiveMigrationError('not-active', 'done', 'the guest had already arrived');
        },
        (error: unknown) => {
          if (isLiveMigrationError(error) && error.reason === 'aborted') return;
          throw error;
        },
      );
    },
  };
}

/** The URI with the port QEMU chose (`tcp:…:0`) from `query-migrate`'s `socket-address`. */
async function listeningUri(machine: Machine, address: ReturnType<typeof parseMigrationAddress>) {
  if (address.type === 'unix' || address.port !== 0) return addressUri(address);
  const info = await machine.qmp.execute('query-migrate');
  // After `migrate-recover` the list holds the first listener too: the newest is last.
  const inet = info['socket-address']?.filter((a) => a.type === 'inet').at(-1);
  if (inet === undefined || inet.type !== 'inet')
    throw new LiveMigrationError(
      'command-failed',
      'setup',
      'the target listens on TCP but query-migrate names no inet address',
    );
  return addressUri({ type: 'tcp', host: address.host, port: Number(inet.port) });
}

/**
 * Waits for MIGRATION `completed` and then a run state of `running` or `paused`, read from this
 * QEMU (`query-status`), re-checked on each of its events; `failed`, an exit, an abort or the
 * timeout reject.
 */
async function waitForGuest(
  machine: Machine,
  options: {
    readonly timeout?: number;
    readonly signals: readonly AbortSignal[];
    /** Runs once after MIGRATION `completed`, before the run state is read. */
    readonly onCompleted?: () => Promise<void>;
  },
): Promise<ReceivedMigration> {
  let hookRan = false;
  let resumeError: LiveMigrationError | undefined;
  let completedAt: number | undefined;
  let failed: string | undefined;
  let wake: () => void = () => {};
  const changed = () => wake();
  const offs = [
    machine.qmp.on('MIGRATION', (e) => {
      if (e.data.status === 'completed') completedAt ??= performance.now();
      else if (!IN_FLIGHT.has(e.data.status)) failed = e.data.status;
      changed();
    }),
    machine.qmp.on('RESUME', changed),
    machine.qmp.on('STOP', changed),
  ];
  let exited: { code: number | null; signal: string | null } | undefined;
  void machine.exited.then((exit) => {
    exited = exit;
    changed();
  });
  for (const s of options.signals) s.addEventListener('abort', changed, { once: true });
  const started = performance.now();
  try {
    for (;;) {
      const aborted = options.signals.find((s) => s.aborted);
      if (aborted !== undefined)
        throw new LiveMigrationError(
          'aborted',
          'transferring',
          'stopped waiting for the guest',
          {},
          {
            cause: aborted.reason,
          },
        );
      if (exited !== undefined)
        throw new LiveMigrationError(
          'target-exited',
          'transferring',
          `the receiving QEMU exited before it ran the guest (${exited.signal ?? `exit code ${exited.code}`})`,
          { exitCode: exited.code, signal: exited.signal, stderr: machine.stderr() },
        );
      if (failed !== undefined) {
        const info = await machine.qmp.execute('query-migrate').catch(() => undefined);
        throw new LiveMigrationError(
          'failed',
          'transferring',
          info?.['error-desc'] ?? `the incoming migration ended '${failed}'`,
          { stderr: machine.stderr() },
        );
      }
      if (completedAt !== undefined) {
        if (!hookRan && options.onCompleted !== undefined) {
          hookRan = true;
          try {
            await options.onCompleted();
          } catch (error) {
            // Not thrown: the source has completed, this QEMU holds the only copy of the guest.
            resumeError = new LiveMigrationError(
              'command-failed',
              'confirming',
              `the guest arrived but resuming it failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}; it stays paused in the receiving QEMU (pid ${machine.pid}) with its images, 'cont' resumes it`,
              { stderr: machine.stderr() },
              { cause: error },
            );
          }
        }
        const status = (await machine.qmp.execute('query-status')).status;
        if (status === 'running' || status === 'paused')
          return {
            machine,
            running: status === 'running',
            waitedMs: Math.round(performance.now() - completedAt),
            ...(resumeError !== undefined ? { resumeError } : {}),
          };
      }
      const left =
        options.timeout === undefined ? undefined : options.timeout - (performance.now() - started);
      if (left !== undefined && left <= 0)
        throw new LiveMigrationError(
          'timeout',
          completedAt === undefined ? 'transferring' : 'confirming',
          `the guest did not arrive within ${options.timeout} ms`,
        );
      await new Promise<void>((resolve) => {
        // After `completed` the run state settles without an event of its own on some
        // versions: look again shortly; before it, only events, the exit or the deadline wake.
        const ms = completedAt !== undefined ? 20 : left;
        const timer = ms === undefined ? undefined : setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = () => {};
    }
  } finally {
    for (const off of offs) off();
    for (const s of options.signals) s.removeEventListener('abort', changed);
  }
}
