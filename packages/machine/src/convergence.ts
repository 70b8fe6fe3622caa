/**
 * The convergence controller of a live migration (Proxmox's approach): start with a small
 * `downtime-limit`, and whenever the RAM left to send after a pass over memory stops shrinking
 * for a few passes, double the limit (up to a cap); let QEMU's `auto-converge` throttle the
 * guest's CPU meanwhile. When the limit is at its cap, the throttle at its maximum (or off) and
 * the remaining RAM still does not shrink, the migration does not converge: the controller
 * gives up with a `LiveMigrationError` (`does-not-converge`) carrying the numbers, and the
 * migration is rolled back — it never runs forever.
 *
 * Every decision is logged with the sample that triggered it (`decisions`, `onDecision`).
 * It talks to QEMU only through the `setDowntimeLimit` callback, so its rules are unit-tested
 * with made-up samples.
 */
import { LiveMigrationError } from './errors.js';
import type { MigrationProgress } from './live-migration.js';

export interface ConvergenceOptions {
  /** `downtime-limit` to start with, ms (default 100). */
  readonly initialDowntimeLimit?: number;
  /** The highest `downtime-limit` the controller sets, ms (default 2000). */
  readonly maxDowntimeLimit?: number;
  /** Factor per step (default 2). */
  readonly factor?: number;
  /** Passes over RAM without a new low of `remaining` before a step (default 2). */
  readonly stalledPasses?: number;
  /** Stalled passes with every means exhausted before giving up (default 3). */
  readonly giveUpPasses?: number;
  /** Set QEMU's `auto-converge` (CPU throttling) where the source has it (default true). */
  readonly autoConverge?: boolean;
  /** The throttle QEMU stops at (`max-cpu-throttle`, default 99). */
  readonly maxCpuThrottle?: number;
  /**
   * Switch to post-copy instead of giving up (the migration must have `postcopy-ram` on both
   * sides; `observe` then needs its `startPostcopy` callback). Default false.
   */
  readonly postcopy?: boolean;
  /** Called with every decision, as it is made. */
  readonly onDecision?: (decision: ConvergenceDecision) => void;
}

export interface ConvergenceDecision {
  readonly action: 'start' | 'raise-downtime-limit' | 'start-postcopy' | 'give-up';
  /** Why, in words, with the numbers. */
  readonly reason: string;
  readonly downtimeLimit: { readonly from: number; readonly to: number };
  /** The sample that triggered it (absent for `start`). */
  readonly sample?: MigrationProgress;
}

/** Decides on each sample; see the module comment. One controller per migration. */
export class ConvergenceController {
  readonly decisions: ConvergenceDecision[] = [];
  readonly #options: Required<Omit<ConvergenceOptions, 'onDecision' | 'postcopy'>>;
  readonly #postcopy: boolean;
  #switched = false;
  readonly #onDecision: ((d: ConvergenceDecision) => void) | undefined;
  #limit: number;
  #lastPass = 0;
  #best = Number.POSITIVE_INFINITY;
  #stalled = 0;

  constructor(options: ConvergenceOptions = {}) {
    this.#options = {
      initialDowntimeLimit: options.initialDowntimeLimit ?? 100,
      maxDowntimeLimit: options.maxDowntimeLimit ?? 2000,
      factor: options.factor ?? 2,
      stalledPasses: options.stalledPasses ?? 2,
      giveUpPasses: options.giveUpPasses ?? 3,
      autoConverge: options.autoConverge ?? true,
      maxCpuThrottle: options.maxCpuThrottle ?? 99,
    };
    this.#onDecision = options.onDecision;
    this.#postcopy = options.postcopy ?? false;
    this.#limit = this.#options.initialDowntimeLimit;
  }

  /** Whether it switched the migration to post-copy (then it decides nothing more). */
  get switchedToPostcopy(): boolean {
    return this.#switched;
  }

  get autoConverge(): boolean {
    return this.#options.autoConverge;
  }

  /** The `downtime-limit` now (ms). */
  get downtimeLimit(): number {
    return this.#limit;
  }

  #decide(decision: ConvergenceDecision): void {
    this.decisions.push(decision);
    this.#onDecision?.(decision);
  }

  /** Records the starting point (the limit `migrate` sets before the stream starts). */
  start(autoConverge: boolean): void {
    this.#decide({
      action: 'start',
      reason: `downtime-limit ${this.#limit} ms (cap ${this.#options.maxDowntimeLimit} ms), auto-converge ${autoConverge ? 'on' : 'off'}`,
      downtimeLimit: { from: this.#limit, to: this.#limit },
    });
  }

  /**
   * The decision for one sample, without side effects: `raise` (to this limit), `give-up`, or
   * nothing. Only a sample from a new pass over RAM counts (`iterations` grew): `remaining`
   * right after a pass is what the guest dirtied during it.
   */
  assess(
    sample: MigrationProgress,
    autoConverge: boolean,
  ): { readonly raise?: number; readonly giveUp?: string } {
    if (this.#switched || sample.iterations <= this.#lastPass || sample.iterations < 2) return {};
    this.#lastPass = sample.iterations;
    if (sample.remaining < this.#best) {
      this.#best = sample.remaining;
      this.#stalled = 0;
      return {};
    }
    this.#stalled += 1;
    const o = this.#options;
    if (this.#limit < o.maxDowntimeLimit) {
      if (this.#stalled < o.stalledPasses) return {};
      this.#stalled = 0;
      return { raise: Math.min(o.maxDowntimeLimit, Math.ceil(this.#limit * o.factor)) };
    }
    const throttling = autoConverge && (sample.cpuThrottle ?? 0) < o.maxCpuThrottle;
    if (throttling || this.#stalled < o.giveUpPasses) return {};
    return {
      giveUp: `remaining RAM stopped shrinking: ${sample.remaining} bytes after pass ${sample.iterations} (best ${this.#best}), the guest dirties ${sample.dirtyRate} B/s against ${sample.throughput} B/s on the wire, expected downtime ${sample.expectedDowntimeMs ?? '?'} ms > downtime-limit ${this.#limit} ms (the cap)${autoConverge ? `, CPU throttle ${sample.cpuThrottle ?? 0}%` : ', auto-converge off'}`,
    };
  }

  /**
   * Acts on `assess`: `setDowntimeLimit` (the source's `migrate-set-parameters`) on a step, a
   * `LiveMigrationError` (`does-not-converge`) on giving up.
   */
  async observe(
    sample: MigrationProgress,
    autoConverge: boolean,
    setDowntimeLimit: (ms: number) => Promise<void>,
    startPostcopy?: () => Promise<void>,
  ): Promise<void> {
    const verdict = this.assess(sample, autoConverge);
    if (verdict.raise !== undefined) {
      const from = this.#limit;
      await setDowntimeLimit(verdict.raise);
      this.#limit = verdict.raise;
      this.#decide({
        action: 'raise-downtime-limit',
        reason: `remaining ${sample.remaining} bytes after pass ${sample.iterations} is no new low (best ${this.#best}) for ${this.#options.stalledPasses} passes; expected downtime ${sample.expectedDowntimeMs ?? '?'} ms, dirty ${sample.dirtyRate} B/s, wire ${sample.throughput} B/s, throttle ${sample.cpuThrottle ?? 0}%`,
        downtimeLimit: { from, to: verdict.raise },
        sample,
      });
    } else if (verdict.giveUp !== undefined && this.#postcopy && startPostcopy !== undefined) {
      await startPostcopy();
      this.#switched = true;
      this.#decide({
        action: 'start-postcopy',
        reason: `${verdict.giveUp}: switching to post-copy (the target runs the guest and fetches the rest on demand)`,
        downtimeLimit: { from: this.#limit, to: this.#limit },
        sample,
      });
    } else if (verdict.giveUp !== undefined) {
      this.#decide({
        action: 'give-up',
        reason: verdict.giveUp,
        downtimeLimit: { from: this.#limit, to: this.#limit },
        sample,
      });
      throw new LiveMigrationError('does-not-converge', sample.phase, verdict.giveUp);
    }
  }
}
