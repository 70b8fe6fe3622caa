/**
 * Live migration of a local machine to an address where a QEMU this process does not own
 * listens (another host's `qmpkit vm receive`, or `receiveMigration()` elsewhere). Without the
 * target's QMP, the target cannot be asked whether it runs the guest; what remains is the
 * source's own view, which is trustworthy only with `return-path`: the target then reports
 * the result of its load back, and a target that failed to load turns the source's migration
 * into `failed` (without it, the source shows `completed` even when the target died — see the
 * migration notes). `migrateTo` therefore refuses a source without `return-path`, and its
 * success means: the source's MIGRATION `completed` with `return-path` on. That the target then
 * *runs* is the receiver's to confirm (`receiveMigration`'s `done`).
 *
 * Phases: `setup` (capabilities, parameters, TLS) → `transferring` → `switchover` (source
 * stopped, or post-copy started) → `finishing` (source ended) → `done`. Before the hand-over
 * every failure rolls back: `migrate_cancel`, the guest runs on the source as before, TLS object
 * removed. After a switch to post-copy there is no way back: the target holds the newest RAM,
 * the source stays paused (`postcopy-failed`).
 *
 * `disks: 'copy'` to a receiver that exports its fresh images (`receiveMigration`'s
 * `disks: 'copy'`; its address ends in `,nbd=PORT`): phase `mirroring` adds an NBD client node
 * per writable disk, refuses images of another size (`disk-size-mismatch`, nothing written),
 * starts every mirror and waits until all are ready; RAM then moves with
 * pause-before-switchover, and at `pre-switchover` (the source stopped) the mirrors end with a
 * cancel (the target holds the same data, the source keeps its graph) and the client nodes go
 * before the migration continues. A roll-back removes every `qmpkit-mig-` job and node.
 */
import type { Commands } from '@qmpkit/qapi';
import type { BlockJob } from './block-jobs.js';
import { ConvergenceController, type ConvergenceDecision } from './convergence.js';
import {
  endMirrors,
  type MirroredDisk,
  mirroredDisk,
  mirrorProgress,
  type NbdAddress,
  type NbdTls,
  startMirrors,
  sweepSource,
  untilMirrorsReady,
  writableDisks,
} from './disk-copy.js';
import { isLiveMigrationError, LiveMigrationError } from './errors.js';
import {
  DEFAULT_MIGRATION_DEADLINES,
  eventMs,
  type LiveMigrateOptions,
  type MigrationProgress,
  mirroringSample,
  progressFrom,
} from './live-migration.js';
import type { Machine } from './machine.js';
import {
  ACTIVE,
  cancelSourceMigration,
  MigrationRunBase,
  PhaseClock,
  sampleMigration,
} from './migration-run.js';
import {
  addressUri,
  addTlsCredentials,
  baseCapabilities,
  capabilitiesOf,
  type MigrationTls,
  parseMigrationAddress,
  parseReceiverAddress,
  removeTlsCredentials,
  requirePostcopy,
  TLS_OBJECT_ID,
} from './migration-transport.js';
import type { MigrationPhase } from './state.js';

type Parameters = Commands['migrate-set-parameters']['args'];

export interface RemoteMigrateOptions
  extends Pick<
    LiveMigrateOptions,
    | 'maxBandwidth'
    | 'downtimeLimit'
    | 'convergence'
    | 'signal'
    | 'progressInterval'
    | 'deadlines'
    | 'onSample'
    | 'logger'
    | 'parameters'
    | 'mirrorSpeed'
  > {
  /**
   * `copy`: mirror every writable disk into the images the receiver exports (its address names
   * its NBD port: `tcp:HOST:PORT,nbd=NBDPORT`); `shared` (default): the receiver opens storage
   * both hosts share. An address with an NBD port needs `copy` (the receiver's images are
   * empty), and `copy` needs one.
   */
  readonly disks?: 'copy' | 'shared';
  /** TLS (client side); the receiver must listen with TLS. */
  readonly tls?: MigrationTls;
  /**
   * Post-copy (the receiver must allow it): `true` lets the convergence controller switch when
   * pre-copy does not converge (without the controller: at once); `'immediate'` switches right
   * after the stream starts.
   */
  readonly postcopy?: boolean | 'immediate';
  /** Called when a phase begins (after the state file says so). */
  readonly onPhase?: (phase: MigrationPhase) => void;
  /**
   * Post-copy recovery: called when the link broke during post-copy (the source in
   * `postcopy-paused`; the guest runs on neither side). Return the address the receiver now
   * listens on (`IncomingMigration.recover()` there) to resume the stream (`migrate` with
   * `resume`), or `undefined` to give up (`postcopy-failed`). Without it: `postcopy-failed`.
   */
  readonly onPostcopyPaused?: (context: {
    readonly attempt: number;
  }) => Promise<string | undefined>;
}

export interface RemoteMigrationResult {
  readonly uri: string;
  /** Capabilities set on the source. */
  readonly capabilities: readonly string[];
  /** Whether the guest ran on the source (then the receiver runs it; else it arrives paused). */
  readonly running: boolean;
  /** Whether the hand-over went through post-copy. */
  readonly postcopy: boolean;
  /** The source's own `downtime` and `total-time` (ms), when it reported them. */
  readonly qemuDowntimeMs: number | null;
  readonly totalTimeMs: number | null;
  readonly lastProgress: MigrationProgress | null;
  readonly decisions: readonly ConvergenceDecision[];
}

export interface RemoteMigration {
  readonly result: Promise<RemoteMigrationResult>;
  readonly progress: AsyncIterable<MigrationProgress>;
  readonly phase: MigrationPhase;
  /** Cancels before the hand-over (the source runs on); rejects with `not-active` after it. */
  cancel(reason?: unknown): Promise<void>;
}

/** Streams `source` to `uri` (`tcp:HOST:PORT` or `unix:PATH`); see the module comment. */
export function migrateTo(
  source: Machine,
  uri: string,
  options: RemoteMigrateOptions = {},
): RemoteMigration {
  return new RemoteRun(source, uri, options).handle();
}

class RemoteRun extends MigrationRunBase<RemoteMigrationResult, MigrationProgress> {
  readonly #uri: string;
  readonly #options: RemoteMigrateOptions;
  #handedOver = false;
  #postcopy = false;
  #tls = false;
  /** `disks: 'copy'`: the disks mirrored and their jobs (a roll-back sweeps QEMU's own lists). */
  #disks: MirroredDisk[] = [];
  readonly #jobs: BlockJob[] = [];

  constructor(source: Machine, uri: string, options: RemoteMigrateOptions) {
    super(source, options, 'setup');
    this.#uri = uri;
    this.#options = options;
  }

  protected override tooLateToCancel(): string | undefined {
    return this.#handedOver ? 'the guest was already handed over' : undefined;
  }

  /** After the hand-over the target holds the guest: an abort no longer rolls back. */
  protected override abortHonoured(): boolean {
    return !this.#handedOver;
  }

  async #setPhase(phase: MigrationPhase): Promise<void> {
    this.phase = phase;
    await this.source.recordMigration({
      role: 'source',
      phase,
      peer: null,
      startedAt: this.startedAt,
    });
    this.#options.onPhase?.(phase);
  }

  protected override async run(): Promise<RemoteMigrationResult> {
    const source = this.source;
    let address: ReturnType<typeof parseMigrationAddress>;
    let nbdPort: number | undefined;
    try {
      ({ migration: address, nbdPort } = parseReceiverAddress(this.#uri));
    } catch (error) {
      throw isLiveMigrationError(error) ? error.withSource(source.status === 'running') : error;
    }
    const copy = this.#options.disks === 'copy';
    const refuse = (desc: string) =>
      new LiveMigrationError('invalid-options', 'setup', desc, {
        sourceRunning: source.status === 'running',
      });
    if (nbdPort !== undefined && !copy)
      throw refuse(
        `the receiver at ${this.#uri} waits for the disks (it exports empty images over NBD): migrate with disks: 'copy'`,
      );
    if (copy && (nbdPort === undefined || address.type !== 'tcp'))
      throw refuse(
        `disks: 'copy' needs a receiver that exports its images (started with disks: 'copy'; its address ends in ',nbd=PORT'), not ${this.#uri}`,
      );
    if (copy) {
      this.#disks = writableDisks(source.config).map(mirroredDisk);
      if (this.#disks.length === 0)
        throw refuse("disks: 'copy', but the guest has no writable disk");
    }
    if (source.status !== 'running')
      throw new LiveMigrationError(
        'source-not-running',
        'setup',
        `the source is ${source.status}`,
        {
          sourceRunning: false,
        },
      );
    const before = await source.qmp.execute('query-migrate');
    if (before.status !== undefined && ACTIVE.has(before.status))
      throw new LiveMigrationError(
        'busy',
        'setup',
        `the source QEMU already has a migration in state '${before.status}'`,
        { sourceRunning: true },
      );
    const wasRunning = (await source.qmp.execute('query-status')).running;
    if (copy && !wasRunning)
      throw refuse(
        "disks: 'copy' to an address needs a running guest: the receiver resumes the guest once its exports are gone and cannot tell a paused source from a running one",
      );
    try {
      await this.#setPhase('setup');
      return await this.#transfer(address, wasRunning, nbdPort);
    } catch (error) {
      throw await this.#rollBack(error, wasRunning);
    }
  }

  async #transfer(
    address: ReturnType<typeof parseMigrationAddress>,
    wasRunning: boolean,
    nbdPort: number | undefined,
  ): Promise<RemoteMigrationResult> {
    const source = this.source;
    const options = this.#options;
    const caps = await capabilitiesOf(source);
    if (!caps.has('return-path'))
      throw new LiveMigrationError(
        'unsupported',
        'setup',
        'the source QEMU has no return-path capability: without it a target that fails to load the guest still looks like success here',
      );
    const postcopy = options.postcopy ?? false;
    if (postcopy !== false) await requirePostcopy(source, caps, 'source', 'setup');
    const controller =
      options.convergence === false
        ? undefined
        : new ConvergenceController({
            ...options.convergence,
            postcopy: postcopy === true,
          });
    const capabilities = baseCapabilities(caps, postcopy !== false);
    if (this.#disks.length > 0) {
      if (!caps.has('pause-before-switchover'))
        throw new LiveMigrationError(
          'unsupported',
          'setup',
          "disks: 'copy' needs the source's pause-before-switchover capability (QEMU ≥ 2.11)",
        );
      capabilities.push({ capability: 'pause-before-switchover', state: true });
    }
    const autoConverge = controller?.autoConverge === true && caps.has('auto-converge');
    if (autoConverge) capabilities.push({ capability: 'auto-converge', state: true });
    await source.qmp.execute('migrate-set-capabilities', { capabilities });
    let nbdTls: NbdTls | undefined;
    let parameters: Parameters = {
      'max-bandwidth': options.maxBandwidth ?? 16 * 1024 ** 3,
      ...(controller !== undefined
        ? { 'downtime-limit': controller.downtimeLimit }
        : options.downtimeLimit !== undefined
          ? { 'downtime-limit': options.downtimeLimit }
          : {}),
    };
    if (options.tls !== undefined) {
      this.#tls = true;
      const hostname = options.tls.hostname ?? (address.type === 'tcp' ? address.host : undefined);
      nbdTls = { creds: TLS_OBJECT_ID, ...(hostname !== undefined ? { hostname } : {}) };
      parameters = {
        ...parameters,
        ...(await addTlsCredentials(source, 'client', options.tls, hostname, 'setup')),
      };
    }
    await source.qmp.execute('migrate-set-parameters', { ...parameters, ...options.parameters });
    this.checkAbort();
    if (this.#disks.length > 0 && nbdPort !== undefined && address.type === 'tcp')
      await this.#copyDisks(address.host, nbdPort, nbdTls);
    controller?.start(autoConverge);
    const startPostcopy = async () => {
      await source.qmp.execute('migrate-start-postcopy');
    };
    const onSample = async (sample: MigrationProgress) => {
      await controller?.observe(
        sample,
        autoConverge,
        async (ms) => {
          await source.qmp.execute('migrate-set-parameters', { 'downtime-limit': ms });
        },
        startPostcopy,
      );
      await options.onSample?.(sample, source);
    };
    const uri = addressUri(address);
    // `'immediate'` (and `true` without the controller) switches at the first sample that shows
    // RAM on the wire, not right after `migrate`: by then the receiver has read the stream's
    // post-copy advise, and one that refuses it has failed the migration already (switching
    // in that window crashed a 10.0 source).
    let switchNow = postcopy === 'immediate' || (postcopy === true && controller === undefined);
    const watched = await this.#watch(uri, async (sample) => {
      if (switchNow && sample.transferred > 0) {
        switchNow = false;
        await startPostcopy();
      }
      await onSample(sample);
    });
    await this.#setPhase('finishing');
    const final = await source.qmp.execute('query-migrate').catch(() => undefined);
    await source.recordMigration({
      role: 'source',
      phase: 'done',
      peer: null,
      startedAt: this.startedAt,
    });
    await source.stop();
    this.phase = 'done';
    return {
      uri,
      capabilities: capabilities.map((c) => c.capability),
      running: wasRunning,
      postcopy: this.#postcopy,
      qemuDowntimeMs: final?.downtime ?? null,
      totalTimeMs: final?.['total-time'] ?? null,
      lastProgress: watched.lastProgress,
      decisions: [...(controller?.decisions ?? [])],
    };
  }

  /**
   * Phase `mirroring`: an NBD client node per disk (sizes checked against the receiver's
   * exports), every mirror started, then until all are ready (progress samples meanwhile).
   */
  async #copyDisks(host: string, port: number, tls: NbdTls | undefined): Promise<void> {
    const source = this.source;
    await this.#setPhase('mirroring');
    this.checkAbort();
    const bracketed = host.includes(':') ? `[${host}]` : host;
    const nbd: NbdAddress = {
      server: { type: 'inet', host, port: String(port) },
      uri: (name) => `nbd://${bracketed}:${port}/${name}`,
    };
    try {
      await startMirrors(source, this.#disks, nbd, this.#jobs, this.#options.mirrorSpeed, tls);
    } catch (error) {
      if (isLiveMigrationError(error)) throw error;
      throw new LiveMigrationError(
        'command-failed',
        'mirroring',
        `starting the disk mirrors to ${nbd.uri('…')} failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
        {},
        { cause: error },
      );
    }
    const deadlines = { ...DEFAULT_MIGRATION_DEADLINES, ...this.#options.deadlines };
    await untilMirrorsReady({
      source,
      disks: this.#disks,
      jobs: this.#jobs,
      signal: this.abort.signal,
      checkAbort: () => this.checkAbort(),
      interval: this.#options.progressInterval ?? 250,
      deadline: deadlines.mirror,
      logger: this.logger,
      onProgress: (disks, elapsedMs) => this.hub.push(mirroringSample(disks, elapsedMs)),
    });
    // A guest paused meanwhile would be resumed by the receiver (see run()).
    if (!(await source.qmp.execute('query-status')).running)
      throw new LiveMigrationError(
        'invalid-options',
        'mirroring',
        "the guest was paused during the disk copy; disks: 'copy' to an address needs it running",
      );
  }

  async #watch(
    uri: string,
    onSample: (sample: MigrationProgress) => Promise<void>,
  ): Promise<{ lastProgress: MigrationProgress | null }> {
    const source = this.source;
    const options = this.#options;
    const deadlines = { ...DEFAULT_MIGRATION_DEADLINES, ...options.deadlines };
    const seen: { status: string | undefined; stopMs: number | null; exited: boolean } = {
      status: undefined,
      stopMs: null,
      exited: false,
    };
    let wake: () => void = () => {};
    const changed = () => wake();
    let nextSample = performance.now();
    const offs = [
      source.qmp.on('MIGRATION', (e) => {
        seen.status = e.data.status;
        if (e.data.status === 'postcopy-active') this.#postcopy = true;
        changed();
      }),
      source.qmp.on('STOP', (e) => {
        seen.stopMs ??= eventMs(e);
        changed();
      }),
      source.qmp.on('MIGRATION_PASS', () => {
        nextSample = 0;
        changed();
      }),
    ];
    void source.exited.then(() => {
      seen.exited = true;
      changed();
    });
    this.abort.signal.addEventListener('abort', changed);
    const started = performance.now();
    const clock = new PhaseClock();
    let lastProgress: MigrationProgress | null = null;
    let recoveries = 0;
    const interval = options.progressInterval ?? 250;
    try {
      await this.#setPhase('transferring');
      await source.qmp.execute('migrate', { uri });
      for (;;) {
        this.checkAbort();
        if (seen.exited)
          throw new LiveMigrationError('source-exited', this.phase, 'the source QEMU exited');
        if (seen.status === 'completed') break;
        if (seen.status === 'failed' || seen.status === 'cancelled') {
          const info = await source.qmp.execute('query-migrate').catch(() => undefined);
          throw new LiveMigrationError(
            'failed',
            this.phase,
            info?.['error-desc'] ?? `the source reported '${seen.status}'`,
          );
        }
        if (seen.status === 'postcopy-paused') {
          const resumeAt =
            options.onPostcopyPaused === undefined
              ? undefined
              : await options.onPostcopyPaused({ attempt: ++recoveries });
          if (resumeAt === undefined)
            throw new LiveMigrationError(
              'postcopy-failed',
              this.phase,
              'the link broke during post-copy (postcopy-paused)',
            );
          // Events from here on (postcopy-recover, postcopy-active, completed) say how it goes.
          seen.status = undefined;
          await source.qmp.execute('migrate', {
            uri: addressUri(parseMigrationAddress(resumeAt)),
            resume: true,
          });
          continue;
        }
        if (seen.status === 'pre-switchover' && !this.#handedOver && this.#disks.length > 0) {
          // The source is stopped: its disks no longer change. Ending the mirrors leaves the
          // receiver's images equal to them and the source's graph as it was.
          await endMirrors(source, this.#disks, this.#jobs);
          this.checkAbort();
          this.#handedOver = true;
          await this.#setPhase('switchover');
          clock.restart();
          await source.qmp.execute('migrate-continue', { state: 'pre-switchover' });
          continue;
        }
        if (
          !this.#handedOver &&
          this.#disks.length === 0 &&
          (seen.status === 'postcopy-active' || seen.status === 'device' || seen.stopMs !== null)
        ) {
          this.#handedOver = true;
          await this.#setPhase('switchover');
          clock.restart();
        }
        // Post-copy: the target runs the guest from here on; a relaunch of the source is refused.
        if (this.#postcopy && this.phase === 'switchover') await this.#setPhase('confirming');
        const now = performance.now();
        const deadline = this.#handedOver ? deadlines.switchover : deadlines.transfer;
        // Post-copy copies the rest of RAM after the hand-over: the transfer deadline applies.
        clock.check(this.phase, this.#postcopy ? deadlines.transfer : deadline, this.logger);
        if ((!this.#handedOver || this.#postcopy) && now >= nextSample) {
          nextSample = now + interval;
          const info = await sampleMigration(source, interval, this.logger);
          if (info?.status !== undefined && ACTIVE.has(info.status)) {
            // Only for display: a mirror sample the busy monitor missed is left out.
            const disks =
              this.#disks.length > 0 && !this.#handedOver
                ? await mirrorProgress(source, this.#disks).catch(() => undefined)
                : undefined;
            lastProgress = {
              ...progressFrom(info, this.phase, now - started),
              ...(disks !== undefined ? { disks } : {}),
            };
            this.hub.push(lastProgress);
            if (!this.#handedOver) await onSample(lastProgress);
          }
          continue;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(1, nextSample - performance.now()));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = () => {};
      }
      return { lastProgress };
    } finally {
      this.abort.signal.removeEventListener('abort', changed);
      for (const off of offs) off();
    }
  }

  /**
   * Before the hand-over: cancel, resume the guest if it ran, drop the TLS object and the
   * record. After a switch to post-copy nothing is undone: the target has the newest state.
   */
  async #rollBack(error: unknown, wasRunning: boolean): Promise<unknown> {
    const source = this.source;
    const failure = isLiveMigrationError(error)
      ? error
      : new LiveMigrationError(
          this.abort.signal.aborted ? 'aborted' : 'command-failed',
          this.phase,
          error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error),
          {},
          { cause: error },
        );
    if (this.#postcopy)
      return new LiveMigrationError(
        'postcopy-failed',
        this.phase,
        `${failure.desc}. The migration had switched to post-copy: the target holds the guest's newest RAM and device state, the source only a stale copy; the source stays paused (resuming it would run an old state beside the target's). Recover with migrate-recover on the target and migrate with resume on the source, or give the VM up`,
        { sourceRunning: false },
        { cause: failure },
      );
    const problems: unknown[] = [];
    const alive = () => source.status === 'running';
    if (alive()) {
      try {
        await cancelSourceMigration(source);
        const status = await source.qmp.execute('query-status');
        if (wasRunning && !status.running) await source.qmp.execute('cont');
      } catch (e) {
        problems.push(e);
      }
    }
    // The mirrors and NBD client nodes go before the TLS object they use.
    for (const job of this.#jobs) job.detach();
    if (this.#disks.length > 0 && alive())
      await sweepSource(source).catch((e: unknown) => problems.push(e));
    if (this.#tls && alive())
      await removeTlsCredentials(source).catch((e: unknown) => problems.push(e));
    let sourceRunning: boolean | null = false;
    if (alive())
      sourceRunning = await source.qmp.execute('query-status').then(
        (s) => s.running,
        (e: unknown) => {
          problems.push(e);
          return null;
        },
      );
    await source.recordMigration(undefined).catch((e: unknown) => problems.push(e));
    if (problems.length > 0)
      this.logger.warn('live migration: the roll-back met problems', problems);
    return failure.withSource(sourceRunning);
  }
}
