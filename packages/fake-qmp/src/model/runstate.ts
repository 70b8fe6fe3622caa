/**
 * The VM's run state: `query-status`, `stop`, `cont`, `system_reset`, `system_powerdown`,
 * `quit`, with QEMU 7.2's events (STOP, RESUME, RESET, POWERDOWN, SHUTDOWN) and errors.
 */
import { qmpError } from '../errors.js';
import type { HandlerTable, ModelHost } from './host.js';

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

  constructor(
    private readonly host: ModelHost,
    initial: RunStateName,
    autostart: boolean,
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
  }

  statusInfo(): { running: boolean; singlestep: boolean; status: RunStateName } {
    return { running: this.running, singlestep: false, status: this.status };
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
      if (this.status === 'shutdown' || this.status === 'guest-panicked') this.status = 'paused';
      return undefined;
    });
    table.set('system_powerdown', () => {
      this.host.emit('POWERDOWN');
      const ms = this.host.timing.powerdownShutdownMs;
      if (ms !== 'ignore' && this.running) {
        this.host.later(ms, () => this.shutdown(true, 'guest-shutdown'));
      }
      return undefined;
    });
    table.set('quit', () => {
      this.host.emit('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
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
