/**
 * Hand-written table of the `-device` drivers this model types. Device properties are qdev
 * properties, not QAPI: QEMU's schema does not describe them, so the table is the one source
 * for both the TypeScript types (`KnownDevice`, derived below) and the run-time checks.
 * Drivers not listed here use the generic form `{ driver, id, bus?, props }`.
 */

/** Kinds of bus a device can sit on or provide. */
export type BusKind = 'pci' | 'ide' | 'scsi' | 'virtio-serial' | 'isa';

/** What a property's value references. */
export type RefTarget =
  | { readonly to: 'node' }
  | { readonly to: 'netdev' }
  | { readonly to: 'chardev' }
  | { readonly to: 'object'; readonly qomTypes: readonly string[] };

/** Integer property types, named as QEMU names them (`device-list-properties`). */
export type IntKind = 'int32' | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'size';

/**
 * `str`, `bool`, an integer type, or the list of allowed strings (a qdev enum). JSON
 * `-device` syntax is typed: `bootindex: "1"` fails in QEMU 7.2, so types matter.
 */
export type PropKind = 'str' | 'bool' | IntKind | readonly string[];

export interface PropSpec {
  readonly kind: PropKind;
  readonly required?: true;
  readonly ref?: RefTarget;
}

export interface DriverSpec {
  readonly props: Readonly<Record<string, PropSpec>>;
  /** The kind of bus the device plugs into. */
  readonly bus: BusKind;
  /**
   * The bus the device provides, named after its id: `id` itself (PCI bridges) or `id.0`
   * (SCSI and virtio-serial controllers).
   */
  readonly provides?: { readonly kind: BusKind; readonly name: 'id' | 'id.0' };
  /** `false` for devices QEMU cannot add or remove at run time (ISA, IDE, root ports). */
  readonly hotpluggable?: false;
}

const str = { kind: 'str' } as const;
const int32 = { kind: 'int32' } as const;
const uint8 = { kind: 'uint8' } as const;
const uint16 = { kind: 'uint16' } as const;
const uint32 = { kind: 'uint32' } as const;
const uint64 = { kind: 'uint64' } as const;
const size = { kind: 'size' } as const;
const bool = { kind: 'bool' } as const;
const onOffAuto = { kind: ['on', 'off', 'auto'] } as const;
const node = { kind: 'str', ref: { to: 'node' } } as const;
const requiredNode = { kind: 'str', required: true, ref: { to: 'node' } } as const;
const requiredChardev = { kind: 'str', required: true, ref: { to: 'chardev' } } as const;
const iothread = { kind: 'str', ref: { to: 'object', qomTypes: ['iothread'] } } as const;
const errorAction = { kind: ['report', 'ignore', 'enospc', 'stop', 'auto'] } as const;
const readErrorAction = { kind: ['report', 'ignore', 'stop', 'auto'] } as const;

/** Properties every PCI device has. */
const pci = { addr: str, multifunction: bool, romfile: str, rombar: uint32 } as const;
/** Properties of virtio PCI proxies. */
const virtioPci = {
  ...pci,
  'disable-legacy': onOffAuto,
  'disable-modern': bool,
  vectors: uint32,
} as const;
/** Properties of block devices (`DEFINE_BLOCK_PROPERTIES`, `DEFINE_BLOCK_ERROR_PROPERTIES`). */
const blockCommon = {
  bootindex: int32,
  serial: str,
  'share-rw': bool,
  logical_block_size: size,
  physical_block_size: size,
  discard_granularity: size,
  'write-cache': onOffAuto,
  werror: errorAction,
  rerror: readErrorAction,
} as const;

export const DRIVERS = {
  'virtio-blk-pci': {
    bus: 'pci',
    props: {
      ...virtioPci,
      ...blockCommon,
      drive: requiredNode,
      iothread,
      'num-queues': uint16,
      'queue-size': uint16,
      discard: bool,
      'write-zeroes': bool,
    },
  },
  'virtio-net-pci': {
    bus: 'pci',
    props: {
      ...virtioPci,
      netdev: { kind: 'str', required: true, ref: { to: 'netdev' } },
      mac: str,
      bootindex: int32,
      mq: bool,
      rx_queue_size: uint16,
      tx_queue_size: uint16,
      host_mtu: uint16,
    },
  },
  'virtio-scsi-pci': {
    bus: 'pci',
    provides: { kind: 'scsi', name: 'id.0' },
    props: { ...virtioPci, iothread, num_queues: uint32, virtqueue_size: uint32 },
  },
  'virtio-serial-pci': {
    bus: 'pci',
    provides: { kind: 'virtio-serial', name: 'id.0' },
    props: { ...virtioPci, max_ports: uint32 },
  },
  virtconsole: {
    bus: 'virtio-serial',
    props: { chardev: requiredChardev, name: str, nr: uint32 },
  },
  virtserialport: {
    bus: 'virtio-serial',
    props: { chardev: requiredChardev, name: str, nr: uint32 },
  },
  'virtio-rng-pci': {
    bus: 'pci',
    props: {
      ...virtioPci,
      rng: {
        kind: 'str',
        ref: { to: 'object', qomTypes: ['rng-random', 'rng-builtin', 'rng-egd'] },
      },
      'max-bytes': uint64,
      period: uint32,
    },
  },
  'virtio-balloon-pci': {
    bus: 'pci',
    props: {
      ...pci,
      'disable-legacy': onOffAuto,
      'disable-modern': bool,
      'deflate-on-oom': bool,
      'free-page-reporting': bool,
    },
  },
  'isa-serial': {
    bus: 'isa',
    hotpluggable: false,
    props: { chardev: requiredChardev, index: uint32, iobase: uint32, irq: uint32 },
  },
  'ide-hd': {
    bus: 'ide',
    hotpluggable: false,
    props: {
      ...blockCommon,
      drive: requiredNode,
      unit: uint32,
      model: str,
      wwn: uint64,
      cyls: uint32,
      heads: uint32,
      secs: uint32,
    },
  },
  'ide-cd': {
    bus: 'ide',
    hotpluggable: false,
    props: { ...blockCommon, drive: node, unit: uint32, model: str, wwn: uint64 },
  },
  'scsi-hd': {
    bus: 'scsi',
    props: {
      ...blockCommon,
      drive: requiredNode,
      channel: uint32,
      'scsi-id': uint32,
      lun: uint32,
      vendor: str,
      product: str,
      rotation_rate: uint16,
      removable: bool,
    },
  },
  'scsi-cd': {
    bus: 'scsi',
    props: { ...blockCommon, drive: node, channel: uint32, 'scsi-id': uint32, lun: uint32 },
  },
  'pcie-root-port': {
    bus: 'pci',
    hotpluggable: false,
    provides: { kind: 'pci', name: 'id' },
    props: { ...pci, chassis: uint8, slot: uint16, port: uint8, hotplug: bool },
  },
  'pci-bridge': {
    bus: 'pci',
    provides: { kind: 'pci', name: 'id' },
    props: { ...pci, chassis_nr: { kind: 'uint8', required: true }, shpc: bool },
  },
} as const satisfies Readonly<Record<string, DriverSpec>>;

export type KnownDriver = keyof typeof DRIVERS;

export function isKnownDriver(driver: string): driver is KnownDriver {
  return Object.hasOwn(DRIVERS, driver);
}

export function driverSpec(driver: string): DriverSpec | undefined {
  return isKnownDriver(driver) ? DRIVERS[driver] : undefined;
}

type PropValue<K> = K extends 'str'
  ? string
  : K extends IntKind
    ? number
    : K extends 'bool'
      ? boolean
      : K extends readonly (infer E)[]
        ? E
        : never;

type RequiredKeys<P> = {
  [K in keyof P]: P[K] extends { readonly required: true } ? K : never;
}[keyof P];

type Simplify<T> = { [K in keyof T]: T[K] } & {};

type KindOf<S> = S extends { readonly kind: infer K } ? PropValue<K> : never;

type PropsType<P> = Simplify<
  { readonly [K in RequiredKeys<P>]: KindOf<P[K]> } & {
    readonly [K in Exclude<keyof P, RequiredKeys<P>>]?: KindOf<P[K]>;
  }
>;

/** The properties of driver `D` as a TypeScript type: required ones required, the rest optional. */
export type DriverProps<D extends KnownDriver> = PropsType<(typeof DRIVERS)[D]['props']>;
