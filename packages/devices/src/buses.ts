/**
 * Buses: the ones a machine type has built in, the ones controllers provide, and which bus
 * a device ends up on.
 */
import { type BusKind, driverSpec } from './drivers.js';
import type { Item } from './refs.js';

export interface Bus {
  readonly name: string;
  /** `undefined` when a generic (untyped) controller provides it. */
  readonly kind: BusKind | undefined;
  /** The device providing the bus; `undefined` for the machine's own buses. */
  readonly provider: Item | undefined;
}

const I440FX = /^pc(-i440fx-\d+\.\d+)?$/;
const Q35 = /^(q35|pc-q35-\d+\.\d+)$/;

/**
 * The buses a machine type creates itself, or `undefined` for machine types this model does
 * not know (bus names are then not checked against the machine).
 */
export function machineBuses(type: string): readonly Bus[] | undefined {
  const bus = (name: string, kind: BusKind): Bus => ({ name, kind, provider: undefined });
  if (I440FX.test(type))
    return [bus('pci.0', 'pci'), bus('ide.0', 'ide'), bus('ide.1', 'ide'), bus('isa.0', 'isa')];
  if (Q35.test(type)) {
    return [
      bus('pcie.0', 'pci'),
      ...[0, 1, 2, 3, 4, 5].map((i) => bus(`ide.${i}`, 'ide')),
      bus('isa.0', 'isa'),
    ];
  }
  if (type === 'none') return [];
  return undefined;
}

function stringField(value: unknown, key: string): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = (value as Record<string, unknown>)[key];
  return typeof v === 'string' ? v : undefined;
}

export function deviceDriver(item: Item): string {
  return stringField(item.value, 'driver') ?? '';
}

export function deviceBus(item: Item): string | undefined {
  return stringField(item.value, 'bus');
}

export function isGenericItem(item: Item): boolean {
  return typeof item.value === 'object' && item.value !== null && 'props' in item.value;
}

/** The buses typed controllers in the configuration provide. */
export function providedBuses(devices: readonly Item[]): Bus[] {
  const buses: Bus[] = [];
  for (const d of devices) {
    const provides = driverSpec(deviceDriver(d))?.provides;
    if (!provides || d.id === '') continue;
    buses.push({
      name: provides.name === 'id' ? d.id : `${d.id}.0`,
      kind: provides.kind,
      provider: d,
    });
  }
  return buses;
}

export type BusResolution =
  | { readonly ok: true; readonly bus: Bus | undefined }
  | { readonly ok: false; readonly reason: string };

/**
 * Resolves an explicit `bus` name. `ok: true, bus: undefined` means "cannot be checked"
 * (unknown machine type, or a generic controller whose buses the model does not know).
 */
export function resolveBus(
  name: string,
  machine: readonly Bus[] | undefined,
  provided: readonly Bus[],
  devices: readonly Item[],
): BusResolution {
  const builtin = machine?.find((b) => b.name === name);
  if (builtin) return { ok: true, bus: builtin };
  const own = provided.find((b) => b.name === name);
  if (own) return { ok: true, bus: own };
  // `ctrl.N` or `bridge`: a controller the model does not type may provide it.
  const base = /^(.*)\.\d+$/.exec(name)?.[1];
  const owner = devices.find((d) => d.id !== '' && (d.id === name || d.id === base));
  if (owner) {
    if (isGenericItem(owner) && !driverSpec(deviceDriver(owner)))
      return { ok: true, bus: undefined };
    const provides = driverSpec(deviceDriver(owner))?.provides;
    return {
      ok: false,
      reason: provides
        ? `'${name}' is not a bus of device '${owner.id}' (${deviceDriver(owner)} provides '${provides.name === 'id' ? owner.id : `${owner.id}.0`}')`
        : `'${name}' names no bus: device '${owner.id}' (${deviceDriver(owner)}) provides none`,
    };
  }
  if (machine === undefined) return { ok: true, bus: undefined };
  const known = [...machine, ...provided].map((b) => b.name);
  return {
    ok: false,
    reason: `'${name}' names no bus (known: ${known.length === 0 ? 'none' : known.join(', ')})`,
  };
}
