/**
 * The VM's run state: `query-status`, `stop`, `cont`, `system_reset`, `system_powerdown`,
 * `quit`, with QEMU 7.2's events (STOP, RESUME, RESET, POWERDOWN, SHUTDOWN) and errors.
 */

import { qmpError } from '../errors.js';
import type { HandlerTable, ModelHost } from './host.js';
import { onlySchemaMembers } from './schema.js';

export type RunStateName =
  | 'debug'
  | 'inmigrate'
  | 'internal-error'
  | 'io-error'
  | 'paused'
  | 'postmigrate'
  | 'prelaunch'
  | 'finish-migrate'
  | 'restore-vm'
  | 'running'
  | 'save-vm'
  | 'shutdown'
  | 'suspended'
  | 'watchdog'
  | 'guest-panicked'
  | 'colo';

export class RunState {
  status: RunStateName;
  /** Start the VM when an incoming migration completes (QEMU's `autostart`, cleared by -S). */
  autostart: boolean;
  /** Hooks run when the VM (re)starts, e.g. block nodes re-activated after migration. */
  readonly onStart: (() => string | undefined)[] = [];
  /** Run on `quit` after SHUTDOWN, before the reply (QEMU's cleanup: exports closed). */
  readonly onQuit: (() => void)[] = [];
  /** Guest work waiting for the vCPUs to run again (see `guestLater`). */
  private readonly waitingForStart: (() => void)[] = [];
  private firmwareResetPending = false;

  constructor(
    private readonly host: ModelHost,
    initial: RunStateName,
    autostart: boolean,
    /** SeaBIOS runs on reset (`-machine pc`), and resets once more after a warm boot. */
    private readonly firmware = false,
  ) {
    this.status = initial;
    this.autostart = autostart;
  }

  get running(): boolean {
    return this.status === 'running';
  }

  /** `vm_stop(state)`: STOP only when the VM was running. */
  stopVm(state: RunStateName = 'paused'): boolean {
    if (!this.running) return false;
    this.status = state;
    this.host.emit('STOP');
    return true;
  }

  /** `vm_start()`: RESUME only when the VM was not running. */
  startVm(): void {
    if (this.running) return;
    this.status = 'running';
    this.host.emit('RESUME');
    for (const fn of this.waitingForStart.splice(0)) fn();
  }

  /**
   * Runs `fn` once the guest has run for `ms`: something the guest does (acknowledging an ACPI
   * eject, the firmware rebooting) happens only while its vCPUs run, so while the VM is
   * stopped the work waits for the next `cont` and its timer starts then.
   */
  guestLater(ms: number, fn: () => void): void {
    const attempt = () => {
      this.host.later(ms, () => {
        if (this.running) fn();
        else this.waitingForStart.push(attempt);
      });
    };
    if (this.running) attempt();
    else this.waitingForStart.push(attempt);
  }

  statusInfo(): { running?: boolean; singlestep?: boolean; status?: RunStateName } {
    // `singlestep` was removed from StatusInfo after 7.2: answer with the members this
    // version's schema has.
    return onlySchemaMembers(this.host.tables, 'StatusInfo', {
      running: this.running,
      singlestep: false,
      status: this.status,
    });
  }

  /** HMP `info status`. */
  hmpInfoStatus(): string {
    const base = `VM status: ${this.running ? 'running' : 'paused'}`;
    return !this.running && this.status !== 'paused'
      ? `${base} (${this.status})\r\n`
      : `${base}\r\n`;
  }

  handlers(table: HandlerTable): void {
    table.set('query-status', () => this.statusInfo());
    table.set('stop', () => {
      if (this.status === 'inmigrate') this.autostart = false;
      else this.stopVm('paused');
      return undefined;
    });
    table.set('cont', () => {
      if (this.status === 'internal-error' || this.status === 'shutdown')
        throw qmpError('Resetting the Virtual Machine is required');
      if (this.status === 'suspended') return undefined;
      if (this.status === 'finish-migrate') throw qmpError('Migration is not finalized yet');
      for (const hook of this.onStart) {
        const error = hook();
        if (error !== undefined) throw qmpError(error);
      }
      if (this.status === 'inmigrate') this.autostart = true;
      else this.startVm();
      return undefined;
    });
    table.set('system_reset', () => {
      this.host.emit('RESET', { guest: false, reason: 'host-qmp-system-reset' });
      // QEMU's main loop, after the reset: a VM that is not running (nor migrating) is
      // back in prelaunch (seen for a paused QEMU 7.2; the other states take the same path).
      if (!this.running && this.status !== 'inmigrate' && this.status !== 'finish-migrate')
        this.status = 'prelaunch';
      const ms = this.host.timing.firmwareResetMs;
      if (this.firmware && ms !== 'never' && !this.firmwareResetPending) {
        // SeaBIOS sees a warm boot (its shadowed RAM is read-only) and resets the machine itself.
        this.firmwareResetPending = true;
        this.guestLater(ms, () => {
          this.firmwareResetPending = false;
          this.host.emit('RESET', { guest: true, reason: 'guest-reset' });
        });
      }
      return undefined;
    });
    table.set('system_powerdown', () => {
      this.host.emit('POWERDOWN');
      const ms = this.host.timing.powerdownShutdownMs;
      // A cooperating guest handles the ACPI event when its vCPUs run (after `cont` if paused).
      if (ms !== 'ignore') this.guestLater(ms, () => this.shutdown(true, 'guest-shutdown'));
      return undefined;
    });
    table.set('quit', () => {
      this.host.emit('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
      for (const hook of this.onQuit) hook();
      this.host.later(0, () => this.host.exit(0)); // after the reply, like QEMU
      return undefined;
    });
    table.set('system_wakeup', () => {
      throw qmpError('wake-up from suspend is not supported by this guest');
    });
  }

  /** The guest (or host) shuts the VM down: SHUTDOWN, then the process exits. */
  shutdown(guest: boolean, reason: string): void {
    this.host.emit('SHUTDOWN', { guest, reason });
    this.status = 'shutdown';
    this.host.later(0, () => this.host.exit(0));
  }
}
