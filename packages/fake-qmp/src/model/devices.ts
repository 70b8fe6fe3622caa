/**
 * Devices: `device_add`, `device_del` (with DEVICE_DELETED), `qom-list` of
 * `/machine/peripheral` and `/machine/peripheral-anon`, and block devices becoming the users
 * of block nodes (`query-block`). A small catalogue of device models with the bus they plug
 * into; USB and virtio-serial devices unplug at once, PCI devices when the simulated guest
 * acknowledges (see `timing.pciUnplugMs`).
 */
import { qmpError } from '../errors.js';
import type { BlockGraph, BlockNode } from './block.js';
import { GHashTableOrder } from './ghash.js';
import { type HandlerTable, handler, idWellformed, type ModelHost } from './host.js';
import type { RunState } from './runstate.js';

interface DeviceModel {
  readonly bus: string | undefined;
  /** Bus type this device provides to children (its bus is named `<id>.0`). */
  readonly provides?: string;
  /** Takes a `drive` property (a block node it becomes the user of). */
  readonly drive?: boolean;
  /** virtio PCI proxies have a `virtio-backend` child device. */
  readonly virtio?: boolean;
  /**
   * QEMU 7.2 sends DEVICE_DELETED from the device's finalizer. A hot-unplugged `qemu-xhci` is
   * unparented (gone from qom-list, `device_del` no longer finds it; its children get their
   * events) but something keeps a reference, so its own DEVICE_DELETED never comes.
   */
  readonly noDeletedEvent?: boolean;
}

export const DEVICE_MODELS: Readonly<Record<string, DeviceModel>> = {
  'virtio-net-pci': { bus: 'PCI', virtio: true },
  'virtio-blk-pci': { bus: 'PCI', virtio: true, drive: true },
  'virtio-scsi-pci': { bus: 'PCI', virtio: true, provides: 'SCSI' },
  'virtio-serial-pci': { bus: 'PCI', virtio: true, provides: 'virtio-serial-bus' },
  'virtio-balloon-pci': { bus: 'PCI', virtio: true },
  'virtio-rng-pci': { bus: 'PCI', virtio: true },
  e1000: { bus: 'PCI' },
  'pci-bridge': { bus: 'PCI', provides: 'PCI' },
  'qemu-xhci': { bus: 'PCI', provides: 'usb-bus', noDeletedEvent: true },
  'piix3-usb-uhci': { bus: 'PCI', provides: 'usb-bus' },
  'usb-tablet': { bus: 'usb-bus' },
  'usb-kbd': { bus: 'usb-bus' },
  'usb-mouse': { bus: 'usb-bus' },
  'usb-storage': { bus: 'usb-bus', drive: true },
  'scsi-hd': { bus: 'SCSI', drive: true },
  'ide-hd': { bus: 'IDE', drive: true },
  'ide-cd': { bus: 'IDE', drive: true },
  virtserialport: { bus: 'virtio-serial-bus' },
  virtconsole: { bus: 'virtio-serial-bus' },
};

interface Bus {
  readonly name: string;
  readonly type: string;
  readonly hotpluggable: boolean;
  readonly owner: Device | undefined;
}

export class Device {
  pendingUnplug = false;
  constructor(
    readonly id: string | undefined,
    readonly driver: string,
    readonly path: string,
    readonly bus: Bus | undefined,
    /** The node it was plugged onto; the node it uses now may differ (see `Devices.driveOf`). */
    readonly drive: BlockNode | undefined,
    /** Its BlockBackend's QOM path (`attachedTo` of whichever node it uses). */
    readonly attachPath?: string,
  ) {}
}

export type MachineKind = 'none' | 'pc';

export class Devices {
  private readonly buses: Bus[] = [];
  private readonly devices: Device[] = [];
  private readonly peripheral = new GHashTableOrder();
  private readonly peripheralAnon = new GHashTableOrder();
  private anonCounter = 0;

  constructor(
    private readonly host: ModelHost,
    private readonly block: BlockGraph,
    readonly machine: MachineKind,
    private readonly run: RunState,
  ) {
    if (machine === 'pc') {
      this.buses.push({ name: 'pci.0', type: 'PCI', hotpluggable: true, owner: undefined });
      // QEMU finds ide.1 first when it searches the bus tree for an IDE bus.
      this.buses.push({ name: 'ide.1', type: 'IDE', hotpluggable: false, owner: undefined });
      this.buses.push({ name: 'ide.0', type: 'IDE', hotpluggable: false, owner: undefined });
    }
  }

  find(id: string): Device | undefined {
    return this.devices.find((d) => d.id === id || d.path === id);
  }

  all(): readonly Device[] {
    return this.devices;
  }

  /** `device_add` (also used for devices given at start, where hotplug rules do not apply). */
  add(args: Record<string, unknown>, coldplug = false): Device {
    const driverValue = args.driver;
    if (
      driverValue === undefined ||
      (this.host.facts.deviceAddDriverMustBeString && typeof driverValue !== 'string')
    )
      throw qmpError("Parameter 'driver' is missing");
    const driver = String(driverValue);
    const model = DEVICE_MODELS[driver];
    if (!model) throw qmpError(`'${driver}' is not a valid device model name`);
    let bus: Bus | undefined;
    if (args.bus !== undefined) {
      const name = String(args.bus);
      bus = this.buses.find((b) => b.name === name);
      if (!bus) throw qmpError(`Bus '${name}' not found`);
    } else if (model.bus !== undefined) {
      bus = this.buses.find((b) => b.type === model.bus);
      if (!bus) throw qmpError(`No '${model.bus}' bus found for device '${driver}'`);
    }
    if (!coldplug && bus && !bus.hotpluggable)
      throw qmpError(`Bus '${bus.name}' does not support hotplugging`);
    const id = args.id === undefined ? undefined : String(args.id);
    if (id !== undefined) {
      if (!idWellformed(id)) throw qmpError(`Invalid device ID '${id}'`);
      if (this.devices.some((d) => d.id === id)) throw qmpError(`Duplicate device ID '${id}'`);
    }
    // QEMU names an anonymous device (device[N]) when it creates it, before it sets the
    // properties: a device_add that fails on a property (a bad drive) still uses up N.
    const path =
      id !== undefined
        ? `/machine/peripheral/${id}`
        : `/machine/peripheral-anon/device[${this.anonCounter++}]`;
    let drive: BlockNode | undefined;
    if (model.drive) {
      const ref = args.drive;
      if (ref === undefined) throw qmpError('drive property not set');
      drive = this.block.find(String(ref));
      const backend = model.virtio ? `${driver.replace(/-pci$/, '-device')}` : driver;
      if (!drive) throw qmpError(`Property '${backend}.drive' can't find value '${String(ref)}'`);
      if (drive.attachedTo !== undefined || drive.parents.size > 0)
        throw qmpError(
          `Property '${backend}.drive' can't take value '${String(ref)}': Node '${drive.nodeName}' is busy: node is used as backing hd of '${drive.nodeName}'`,
        );
    }
    const attachPath = drive ? (model.virtio ? `${path}/virtio-backend` : path) : undefined;
    const device = new Device(id, driver, path, bus, drive, attachPath);
    if (drive) drive.attachedTo = attachPath;
    this.devices.push(device);
    if (id !== undefined) this.peripheral.insert(id);
    else this.peripheralAnon.insert(path.slice(path.lastIndexOf('/') + 1));
    if (model.provides && id !== undefined)
      this.buses.push({ name: `${id}.0`, type: model.provides, hotpluggable: true, owner: device });
    return device;
  }

  private remove(device: Device): void {
    for (const child of this.devices.filter((d) => d.bus?.owner === device)) this.remove(child);
    const i = this.devices.indexOf(device);
    if (i < 0) return;
    this.devices.splice(i, 1);
    for (let b = this.buses.length - 1; b >= 0; b--)
      if (this.buses[b]!.owner === device) this.buses.splice(b, 1);
    const drive = this.driveOf(device);
    if (drive) drive.attachedTo = undefined;
    if (device.id !== undefined) this.peripheral.remove(device.id);
    else this.peripheralAnon.remove(device.path.slice(device.path.lastIndexOf('/') + 1));
    const model = DEVICE_MODELS[device.driver];
    if (model?.virtio) this.host.emit('DEVICE_DELETED', { path: `${device.path}/virtio-backend` });
    if (!model?.noDeletedEvent)
      this.host.emit('DEVICE_DELETED', { device: device.id, path: device.path });
  }

  private unplug(device: Device): void {
    const bus = device.bus;
    if (bus && !bus.hotpluggable) throw qmpError(`Bus '${bus.name}' does not support hotplugging`);
    if (!bus) throw qmpError(`Device '${device.id ?? device.path}' does not support hotplugging`);
    if (bus.type === 'PCI') {
      if (device.pendingUnplug) return;
      device.pendingUnplug = true;
      const ms = this.host.timing.pciUnplugMs;
      // The guest acknowledges the ACPI eject only while its vCPUs run.
      if (ms !== 'never') this.run.guestLater(ms, () => this.remove(device));
      return;
    }
    // QEMU finishes a USB/virtio-serial unplug after the command returned.
    this.host.later(0, () => this.remove(device));
  }

  /**
   * The node a device uses now: an external snapshot, a mirror's pivot or an active commit
   * moves its BlockBackend (`attachedTo`) onto another node.
   */
  driveOf(device: Device): BlockNode | undefined {
    if (device.attachPath === undefined) return undefined;
    return this.block.all().find((n) => n.attachedTo === device.attachPath);
  }

  /** `query-block`: one entry per device that uses a block node. */
  blockInfo(): Record<string, unknown>[] {
    return this.devices.flatMap((d) => {
      const drive = this.driveOf(d);
      if (!drive) return [];
      return [
        {
          device: '',
          qdev: d.attachPath,
          type: 'unknown',
          removable: d.driver === 'ide-cd',
          locked: false,
          inserted: this.block.deviceInfo(drive, false),
          'io-status': 'ok',
        },
      ];
    });
  }

  qomList(path: string): Record<string, unknown>[] {
    if (path === '/machine/peripheral' || path === '/machine/peripheral-anon') {
      const table = path === '/machine/peripheral' ? this.peripheral : this.peripheralAnon;
      const children = table.keysInOrder().map((name) => {
        const full = `${path}/${name}`;
        const device = this.devices.find((d) => d.path === full);
        return { name, type: `child<${device?.driver ?? 'device'}>` };
      });
      // QEMU lists object properties (GLib hash order), then class properties, and
      // prepends each to its reply: the whole list comes out reversed.
      return [...children, { name: 'type', type: 'string' }].reverse();
    }
    const device = this.devices.find((d) => d.path === path);
    if (device) return [{ name: 'type', type: 'string' }];
    throw qmpError(`Device '${path}' not found`, 'DeviceNotFound');
  }

  handlers(table: HandlerTable): void {
    table.set(
      'device_add',
      handler<Record<string, unknown>>((args) => {
        this.add(args);
      }),
    );
    table.set(
      'device_del',
      handler<{ id: string }>((args) => {
        const device = this.find(args.id);
        if (!device) throw qmpError(`Device '${args.id}' not found`, 'DeviceNotFound');
        this.unplug(device);
      }),
    );
    table.set(
      'qom-list',
      handler<{ path: string }>((args) => this.qomList(args.path)),
    );
    table.set('query-block', () => this.blockInfo());
  }
}
