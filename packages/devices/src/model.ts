/**
 * The configuration model: plain, JSON-compatible data. QAPI-described parts (block nodes,
 * netdevs, chardev backends, objects) use the types generated from QEMU 7.2's schema as
 * they are; the rest (machine, memory, devices' qdev properties) is typed by hand because
 * QEMU's schema does not describe it.
 */
import type { BlockdevOptions, ChardevBackend, Netdev, ObjectOptions } from '@qmpkit/qapi';
import type { DriverProps, KnownDriver } from './drivers.js';

/** A value of a `key=value` option or of a qdev property. */
export type Scalar = string | number | boolean;

/** A block node, given as the arguments of `blockdev-add`, with its node name required. */
export type BlockNode = BlockdevOptions & { readonly 'node-name': string };

/** A character device: the arguments of `chardev-add` (`-chardev` on the command line). */
export interface ChardevConfig {
  readonly id: string;
  readonly backend: ChardevBackend;
}

/** A network backend: the arguments of `netdev_add` (`-netdev` on the command line). */
export type NetdevConfig = Netdev;

/** A user-creatable object: the arguments of `object-add` (`-object` on the command line). */
export type ObjectConfig = ObjectOptions;

/** A device whose driver this model types: `{ driver: 'virtio-blk-pci', id, drive, … }`. */
export type KnownDevice = {
  readonly [D in KnownDriver]: {
    readonly driver: D;
    /** Required: hot-unplug, the block graph and the stored config all key devices by id. */
    readonly id: string;
    /** `pci.0`, `ide.0`, `scsi0.0` (controller id + `.0`), a bridge's id, … */
    readonly bus?: string;
  } & DriverProps<D>;
}[KnownDriver];

/**
 * Any other device: properties are passed through as given, with their JSON types (QEMU
 * 7.2's JSON `-device` syntax rejects `"1"` for an integer). Properties named `drive`,
 * `netdev`, `chardev`, `iothread`, `memdev` and `rng` are still checked as references.
 */
export interface GenericDevice {
  readonly driver: string;
  readonly id: string;
  readonly bus?: string;
  readonly props: Readonly<Record<string, Scalar>>;
}

export type DeviceConfig = KnownDevice | GenericDevice;

/** `-machine`. `pflash0`/`pflash1` name block nodes; `memory-backend` names an object. */
export interface MachineOptions {
  /** Machine type: prefer a versioned one (`pc-i440fx-7.2`, `pc-q35-7.2`) for migration. */
  readonly type: string;
  readonly pflash0?: string;
  readonly pflash1?: string;
  readonly 'memory-backend'?: string;
  /** Further machine properties (`-machine type=…,key=value`). */
  readonly props?: Readonly<Record<string, Scalar>>;
}

/** An accelerator, tried in list order: `'kvm'`, or `{ type: 'tcg', props: { thread: 'single' } }`. */
export type AccelConfig =
  | string
  | { readonly type: string; readonly props?: Readonly<Record<string, Scalar>> };

/** `-m`. Sizes in bytes (like QAPI's `size`); written with the largest exact suffix. */
export interface MemoryOptions {
  readonly size: number;
  readonly slots?: number;
  readonly 'max-size'?: number;
}

/** `-smp`; member names as in QEMU's `SMPConfiguration`. */
export interface SmpOptions {
  readonly cpus?: number;
  readonly maxcpus?: number;
  readonly sockets?: number;
  readonly dies?: number;
  readonly clusters?: number;
  readonly cores?: number;
  readonly threads?: number;
}

/** `-boot`; prefer `bootindex` on devices, which survives hot-plug and is per device. */
export interface BootOptions {
  readonly order?: string;
  readonly once?: string;
  readonly menu?: boolean;
  readonly strict?: boolean;
  readonly 'reboot-timeout'?: number;
}

/**
 * A reserved QMP monitor. The model does not choose the channel (socket path, inherited
 * fd, stdio): whoever launches QEMU passes it to `toArgv` (`options.qmp`), and the model
 * only reserves the chardev id so nothing else takes it.
 */
export interface QmpSlot {
  readonly chardev: string;
}

/** A QEMU virtual machine's configuration. */
export interface VmConfig {
  readonly machine: MachineOptions;
  /** `-accel` per entry, in order: QEMU uses the first that works (`['kvm', 'tcg']`). */
  readonly accel?: readonly AccelConfig[];
  /** `-cpu` model, e.g. `qemu64`, `max`, `host` (KVM only). */
  readonly cpu?: string;
  readonly memory: MemoryOptions;
  readonly smp?: SmpOptions;
  readonly boot?: BootOptions;
  /** `-nodefaults` (default true: no implicit NIC, serial, monitor, CD-ROM, VGA). */
  readonly nodefaults?: boolean;
  /** `-display none` (the default; other displays go into `staticArgs`). */
  readonly display?: 'none';
  /** `-S`: do not start the CPUs; `cont` over QMP starts them. */
  readonly paused?: boolean;
  /** `-incoming defer`: wait for `migrate-incoming` (restoring a saved state). */
  readonly incoming?: 'defer';
  readonly qmp?: QmpSlot;
  readonly objects?: readonly ObjectConfig[];
  readonly chardevs?: readonly ChardevConfig[];
  readonly netdevs?: readonly NetdevConfig[];
  readonly blockdevs?: readonly BlockNode[];
  readonly devices?: readonly DeviceConfig[];
  /** Arguments passed through untouched, after everything else (os-autoinst's static params). */
  readonly staticArgs?: readonly string[];
}

/** The hot-pluggable sections of a configuration. */
export interface ConfigParts {
  readonly objects?: readonly ObjectConfig[];
  readonly chardevs?: readonly ChardevConfig[];
  readonly netdevs?: readonly NetdevConfig[];
  readonly blockdevs?: readonly BlockNode[];
  readonly devices?: readonly DeviceConfig[];
}

/** Names of items per section, e.g. for `unplug`. */
export interface ConfigSelection {
  readonly objects?: readonly string[];
  readonly chardevs?: readonly string[];
  readonly netdevs?: readonly string[];
  readonly blockdevs?: readonly string[];
  readonly devices?: readonly string[];
}

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** True for the generic device form `{ driver, id, bus?, props }`. */
export function isGenericDevice(device: DeviceConfig): device is GenericDevice {
  return 'props' in device && typeof device.props === 'object' && device.props !== null;
}

/** A device's properties other than `driver`, `id` and `bus`, in either form. */
export function deviceProps(device: DeviceConfig): Readonly<Record<string, Scalar>> {
  if (isGenericDevice(device)) return device.props;
  const props: Record<string, Scalar> = {};
  for (const [key, value] of Object.entries(device)) {
    if (key === 'driver' || key === 'id' || key === 'bus') continue;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
      props[key] = value;
  }
  return props;
}

/** The accelerator's type and properties, whichever form it was given in. */
export function accelParts(accel: AccelConfig): {
  type: string;
  props: Readonly<Record<string, Scalar>>;
} {
  return typeof accel === 'string'
    ? { type: accel, props: {} }
    : { type: accel.type, props: accel.props ?? {} };
}
