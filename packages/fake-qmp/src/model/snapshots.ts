/**
 * Internal snapshots (qcow2 snapshot tables) as QEMU 7.2's savevm code sees them: which
 * nodes take part, which node stores the VM state, the errors for raw nodes, existing or
 * missing tags, and HMP's `info snapshots` table. Shared by HMP savevm/loadvm/delvm and the
 * snapshot-save/load/delete jobs. The VM state itself is not stored: loading restores the
 * run state only.
 */
import type { BlockGraph, BlockNode } from './block.js';
import type { ModelHost, VersionFacts } from './host.js';
import type { RunState } from './runstate.js';

export interface SnapshotOptions {
  /** Bytes a saved VM state occupies (QEMU 7.2 `-machine none`: 765). Default 765. */
  readonly vmStateSize?: number;
}

export class Snapshots {
  readonly vmStateSize: number;

  constructor(
    private readonly host: ModelHost,
    private readonly block: BlockGraph,
    private readonly run: RunState,
    options: SnapshotOptions = {},
  ) {
    this.vmStateSize = options.vmStateSize ?? host.facts.vmStateSize;
  }

  /** `bdrv_all_get_snapshot_devices`. */
  private devices(devices: readonly string[] | undefined): BlockNode[] | string {
    if (devices === undefined) return this.block.iterate();
    if (devices.length === 0) return 'At least one device is required for snapshot';
    const out: BlockNode[] = [];
    for (const name of devices) {
      const node = this.block.find(name);
      if (!node) return `No block device node '${name}'`;
      out.push(node);
    }
    return out;
  }

  private included(node: BlockNode, explicit: boolean): boolean {
    return explicit || this.block.includedInSnapshots(node);
  }

  /** `bdrv_all_can_snapshot`. */
  private canSnapshot(devices: readonly string[] | undefined): string | undefined {
    const nodes = this.devices(devices);
    if (typeof nodes === 'string') return nodes;
    for (const node of nodes) {
      if (this.included(node, devices !== undefined) && !node.canSnapshot())
        return `Device '${node.nodeName}' is writable but does not support snapshots`;
    }
    return undefined;
  }

  private hasSnapshot(name: string, devices: readonly string[] | undefined): boolean | string {
    const nodes = this.devices(devices);
    if (typeof nodes === 'string') return nodes;
    for (const node of nodes) {
      if (!this.included(node, devices !== undefined)) continue;
      if (!node.snapshots.some((s) => s.name === name)) return false;
    }
    return true;
  }

  /** `bdrv_all_find_vmstate_bs`. */
  findVmstate(
    vmstate: string | undefined,
    devices: readonly string[] | undefined,
  ): BlockNode | string {
    const nodes = this.devices(devices);
    if (typeof nodes === 'string') return nodes;
    for (const node of nodes) {
      const found = this.included(node, devices !== undefined) && node.canSnapshot();
      if (vmstate !== undefined) {
        if (node.nodeName === vmstate) {
          return found ? node : `vmstate block device '${vmstate}' does not support snapshots`;
        }
      } else if (found) {
        return node;
      }
    }
    return vmstate !== undefined
      ? `vmstate block device '${vmstate}' does not exist`
      : 'no block device can store vmstate for snapshot';
  }

  private deleteAll(name: string, devices: readonly string[] | undefined): string | undefined {
    const nodes = this.devices(devices);
    if (typeof nodes === 'string') return nodes;
    for (const node of nodes) {
      if (!this.included(node, devices !== undefined)) continue;
      const i = node.snapshots.findIndex((s) => s.name === name);
      if (i >= 0) node.snapshots.splice(i, 1);
    }
    return undefined;
  }

  /** `save_snapshot`: returns an error text or undefined. */
  save(
    name: string,
    overwrite: boolean,
    vmstate: string | undefined,
    devices: readonly string[] | undefined,
  ): string | undefined {
    const cannot = this.canSnapshot(devices);
    if (cannot !== undefined) return cannot;
    if (overwrite) {
      const error = this.deleteAll(name, devices);
      if (error !== undefined) return error;
    } else {
      const has = this.hasSnapshot(name, devices);
      if (typeof has === 'string') return has;
      if (has) return `Snapshot '${name}' already exists in one or more devices`;
    }
    const bs = this.findVmstate(vmstate, devices);
    if (typeof bs === 'string') return bs;
    const wasRunning = this.run.running;
    this.run.stopVm('save-vm');
    const now = Date.now();
    const nodes = this.devices(devices) as BlockNode[];
    for (const node of nodes) {
      if (node !== bs && !this.included(node, devices !== undefined)) continue;
      const maxId = node.snapshots.reduce((m, s) => Math.max(m, Number(s.id) || 0), 0);
      node.snapshots.push({
        id: String(maxId + 1),
        name,
        vmStateSize: node === bs ? this.vmStateSize : 0,
        dateSec: Math.floor(now / 1000),
        dateNsec: (now % 1000) * 1_000_000,
        vmClockNs: this.host.uptimeNs(),
      });
    }
    if (wasRunning) this.run.startVm();
    return undefined;
  }

  /** `load_snapshot` (the caller stops/starts the VM like QEMU's callers do). */
  load(
    name: string,
    vmstate: string | undefined,
    devices: readonly string[] | undefined,
  ): string | undefined {
    const cannot = this.canSnapshot(devices);
    if (cannot !== undefined) return cannot;
    const has = this.hasSnapshot(name, devices);
    if (typeof has === 'string') return has;
    if (!has) return `Snapshot '${name}' does not exist in one or more devices`;
    const bs = this.findVmstate(vmstate, devices);
    if (typeof bs === 'string') return bs;
    const sn = bs.snapshots.find((s) => s.name === name);
    if (!sn) return `Snapshot '${name}' does not exist in one or more devices`;
    if (sn.vmStateSize === 0)
      return 'This is a disk-only snapshot. Revert to it  offline using qemu-img';
    return undefined;
  }

  /** `delete_snapshot`: a missing tag is not an error. */
  delete(name: string, devices: readonly string[] | undefined): string | undefined {
    const cannot = this.canSnapshot(devices);
    if (cannot !== undefined) return cannot;
    return this.deleteAll(name, devices);
  }

  private get layout(): VersionFacts['snapshotTable'] {
    return this.host.facts.snapshotTable;
  }

  /** HMP `info snapshots`. */
  infoSnapshots(): string {
    const bs = this.findVmstate(undefined, undefined);
    if (typeof bs === 'string') return `${bs}\r\n`;
    const images = this.block
      .iterate()
      .filter((n) => n.canSnapshot() && n.snapshots.length > 0)
      .map((n) => ({ name: n.attachedTo === undefined ? '' : n.nodeName, list: [...n.snapshots] }));
    if (images.length === 0) return 'There is no snapshot available.\r\n';
    const global = bs.snapshots.filter((s) => this.hasSnapshot(s.name, undefined) === true);
    for (const image of images)
      image.list = image.list.filter((s) => !global.some((g) => g.name === s.name));
    let out = 'List of snapshots present on all disks:\r\n';
    if (global.length > 0) {
      out += `${header(this.layout)}\r\n`;
      for (const s of global) out += `${row(this.layout, '--', s)}\r\n`;
    } else {
      out += 'None\r\n';
    }
    for (const image of images) {
      if (image.list.length === 0) continue;
      out += `\r\nList of partial (non-loadable) snapshots on '${image.name}':\r\n${header(this.layout)}\r\n`;
      for (const s of image.list) out += `${row(this.layout, s.id, s)}\r\n`;
    }
    return out;
  }
}

const pad = (s: string, width: number, left: boolean) =>
  left ? s.padEnd(width) : s.padStart(width);

function header(layout: VersionFacts['snapshotTable']): string {
  if (layout === 'underscored')
    return `${pad('ID', 7, true)} ${pad('TAG', 16, true)} ${pad('VM_SIZE', 8, false)} ${pad('DATE', 19, false)} ${pad('VM_CLOCK', 15, false)} ${pad('ICOUNT', 10, false)}`;
  return (
    pad('ID', 10, true) +
    pad('TAG', 17, true) +
    pad('VM SIZE', 8, false) +
    pad('DATE', 20, false) +
    pad('VM CLOCK', 13, false) +
    pad('ICOUNT', 11, false)
  );
}

function row(
  layout: VersionFacts['snapshotTable'],
  id: string,
  s: { name: string; vmStateSize: number; dateSec: number; vmClockNs: bigint },
): string {
  const date = new Date(s.dateSec * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  const dateText = `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
  const secs = Number(s.vmClockNs / 1_000_000_000n);
  const ms = Number((s.vmClockNs / 1_000_000n) % 1000n);
  const hours = Math.floor(secs / 3600);
  const clock = `${layout === 'underscored' ? String(hours).padStart(4, '0') : two(hours)}:${two(Math.floor(secs / 60) % 60)}:${two(secs % 60)}.${String(ms).padStart(3, '0')}`;
  if (layout === 'underscored')
    return `${pad(id, 7, true)} ${pad(s.name, 16, true)} ${pad(sizeToStr(s.vmStateSize), 8, false)} ${pad(dateText, 19, false)} ${pad(clock, 15, false)} ${pad('--', 10, false)}`;
  return `${pad(id, 9, true)} ${pad(s.name, 16, true)} ${pad(sizeToStr(s.vmStateSize), 8, false)}${pad(dateText, 20, false)}${pad(clock, 13, false)}${pad('', 11, false)}`;
}

/** QEMU's `size_to_str`: `%0.3g` of the value in the largest binary unit below 1000. */
export function sizeToStr(value: number): string {
  const scaled = value / (1000 / 1024);
  let exp = scaled === 0 ? 0 : Math.floor(Math.log2(scaled)) + 1;
  exp = Math.floor((exp - 1) / 10) * 10;
  if (exp < 0) exp = 0;
  const unit = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'][exp / 10] ?? '';
  return `${formatG3(value / 2 ** exp)} ${unit}B`;
}

function formatG3(x: number): string {
  if (x === 0) return '0';
  const exp = Math.floor(Math.log10(Math.abs(x)));
  if (exp < -4 || exp >= 3) {
    return x
      .toExponential(2)
      .replace(/\.?0+e/, 'e')
      .replace(/e([+-])(\d)$/, 'e$10$2');
  }
  let fixed = x.toFixed(Math.max(0, 2 - exp));
  if (fixed.includes('.')) fixed = fixed.replace(/0+$/, '').replace(/\.$/, '');
  return fixed;
}
