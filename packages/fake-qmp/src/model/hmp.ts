/**
 * `human-monitor-command` for the HMP commands clients script: `info status`,
 * `info snapshots`, `info version`, `info iothreads`, `savevm`, `loadvm`, `delvm`, `stop`, `cont`. HMP reports errors inside
 * a successful QMP reply (`"Error: …\r\n"`), as QEMU does.
 */
import type { QmpVersionInfo } from '@qmpkit/transport/codec';
import type { HandlerTable } from './host.js';
import { handler } from './host.js';
import type { Objects } from './objects.js';
import type { RunState } from './runstate.js';
import type { Snapshots } from './snapshots.js';

/** HMP commands QEMU 7.2 knows but the fake does not model (answered with an error text). */
const KNOWN = new Set([
  'info',
  'savevm',
  'loadvm',
  'delvm',
  'stop',
  'cont',
  'c',
  'system_reset',
  'system_powerdown',
  'quit',
  'q',
  'xp',
  'x',
  'device_add',
  'device_del',
  'drive_add',
  'drive_del',
  'migrate',
  'migrate_cancel',
  'sendkey',
  'screendump',
  'qemu-io',
  'commit',
  'snapshot_blkdev',
  'help',
  'announce_self',
  'balloon',
  'block_resize',
  'block_stream',
  'chardev-add',
  'dump-guest-memory',
  'eject',
  'gdbserver',
  'log',
  'memsave',
  'mouse_move',
  'netdev_add',
  'netdev_del',
  'nmi',
  'object_add',
  'object_del',
  'pmemsave',
  'print',
  'p',
  'qom-list',
  'qom-get',
  'qom-set',
  'ringbuf_read',
  'ringbuf_write',
  'set_link',
  'singlestep',
  'stopcapture',
  'sum',
  'trace-event',
  'watchdog_action',
  'wavcapture',
  'change',
]);

export class Hmp {
  constructor(
    private readonly run: RunState,
    private readonly snapshots: Snapshots,
    private readonly objects: Objects,
    private readonly version: QmpVersionInfo,
  ) {}

  execute(line: string): string {
    const trimmed = line.trim();
    const space = trimmed.search(/\s/);
    const name = space < 0 ? trimmed : trimmed.slice(0, space);
    const rest = space < 0 ? '' : trimmed.slice(space).trim();
    const error = (text: string | undefined) => (text === undefined ? '' : `Error: ${text}\r\n`);
    switch (name) {
      case '':
        return '';
      case 'info':
        if (rest === 'status') return this.run.hmpInfoStatus();
        if (rest === 'snapshots') return this.snapshots.infoSnapshots();
        if (rest === 'iothreads') return this.objects.hmpInfoIothreads();
        if (rest === 'version') {
          // QEMU prints the package right after the micro number, without a space.
          const { major, minor, micro } = this.version.qemu;
          return `${major}.${minor}.${micro}${this.version.package}\r\n`;
        }
        return error(`qmpkit fake-qmp does not model 'info ${rest}'`);
      case 'savevm': {
        const now = new Date();
        const two = (n: number) => String(n).padStart(2, '0');
        const auto = `vm-${now.getFullYear()}${two(now.getMonth() + 1)}${two(now.getDate())}${two(now.getHours())}${two(now.getMinutes())}${two(now.getSeconds())}`;
        return error(this.snapshots.save(rest || auto, true, undefined, undefined));
      }
      case 'loadvm': {
        const wasRunning = this.run.running;
        this.run.stopVm('restore-vm');
        const result = this.snapshots.load(rest, undefined, undefined);
        if (result === undefined && wasRunning) this.run.startVm();
        return error(result);
      }
      case 'delvm':
        return error(this.snapshots.delete(rest, undefined));
      case 'stop':
        this.run.stopVm('paused');
        return '';
      case 'c':
      case 'cont':
        this.run.startVm();
        return '';
    }
    if (KNOWN.has(name)) return error(`qmpkit fake-qmp does not model HMP command '${name}'`);
    return `unknown command: '${name}'\r\n`;
  }

  handlers(table: HandlerTable): void {
    table.set(
      'human-monitor-command',
      handler<{ 'command-line': string }>((args) => this.execute(args['command-line'])),
    );
  }
}
