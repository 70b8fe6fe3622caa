/**
 * Hot-plug and hot-unplug as typed QMP steps, computed from the model so the model and the
 * running VM stay in step: `plug` returns the new configuration and the commands that make
 * the VM match it; `unplug` the same for removal.
 */
import type { Commands } from '@qmpkit/qapi';
import { deviceArguments } from './argv.js';
import { driverSpec } from './drivers.js';
import { ConfigValidationError, ModelError } from './errors.js';
import type {
  BlockNode,
  ChardevConfig,
  ConfigParts,
  ConfigSelection,
  DeviceConfig,
  NetdevConfig,
  ObjectConfig,
  VmConfig,
} from './model.js';
import { dependencyGraph, dependencyOrder } from './order.js';
import { problem } from './problems.js';
import { type Item, type ItemKind, KIND_NOUN, SECTIONS } from './refs.js';
import { itemSubject, validate } from './validate.js';

/** One QMP command: `{ execute, arguments }`, typed by the QEMU 7.2 `Commands` map. */
export interface QmpStep<K extends keyof Commands> {
  readonly execute: K;
  readonly arguments: Commands[K]['args'];
}

/**
 * `device_del` returns before the device is gone: QEMU asks the guest (PCI: ACPI or native
 * hot-plug) and emits `DEVICE_DELETED` with `data.device` = the id once it is. Wait for
 * that event before deleting what the device used (subscribe before sending).
 */
export interface DeviceDelStep extends QmpStep<'device_del'> {
  readonly awaitEvent: {
    readonly event: 'DEVICE_DELETED';
    readonly match: { readonly device: string };
  };
}

export type PlugStep =
  | QmpStep<'object-add'>
  | QmpStep<'chardev-add'>
  | QmpStep<'netdev_add'>
  | QmpStep<'blockdev-add'>
  | QmpStep<'device_add'>;

export type UnplugStep =
  | DeviceDelStep
  | QmpStep<'blockdev-del'>
  | QmpStep<'netdev_del'>
  | QmpStep<'chardev-remove'>
  | QmpStep<'object-del'>;

export interface PlugResult {
  /** The configuration with the parts added (store it before running the steps). */
  readonly config: VmConfig;
  /** Commands in dependency order: objects, chardevs, netdevs, nodes (children first), devices. */
  readonly steps: readonly PlugStep[];
}

export interface UnplugResult {
  /** The configuration without the removed items. */
  readonly config: VmConfig;
  /** Commands in reverse dependency order: devices first (awaiting DEVICE_DELETED), then nodes top-down, netdevs, chardevs, objects. */
  readonly steps: readonly UnplugStep[];
  /** Everything removed, including what `cascade` added. */
  readonly removed: Required<ConfigSelection>;
}

export interface UnplugOptions {
  /**
   * Also remove what only the removed items used: a device's block nodes (down the whole
   * subtree), netdev, chardev, iothread…, and devices on a removed controller's bus.
   * Nothing still used by a remaining item or by the machine is removed. Default true.
   */
  readonly cascade?: boolean;
}

/** The configuration with `parts` appended to their sections. */
export function withParts(config: VmConfig, parts: ConfigParts): VmConfig {
  return {
    ...config,
    objects: [...(config.objects ?? []), ...(parts.objects ?? [])],
    chardevs: [...(config.chardevs ?? []), ...(parts.chardevs ?? [])],
    netdevs: [...(config.netdevs ?? []), ...(parts.netdevs ?? [])],
    blockdevs: [...(config.blockdevs ?? []), ...(parts.blockdevs ?? [])],
    devices: [...(config.devices ?? []), ...(parts.devices ?? [])],
  };
}

function plugStep(item: Item): PlugStep {
  switch (item.kind) {
    case 'object':
      return { execute: 'object-add', arguments: item.value as ObjectConfig };
    case 'chardev': {
      const c = item.value as ChardevConfig;
      return { execute: 'chardev-add', arguments: { id: c.id, backend: c.backend } };
    }
    case 'netdev':
      return { execute: 'netdev_add', arguments: item.value as NetdevConfig };
    case 'node':
      return { execute: 'blockdev-add', arguments: item.value as BlockNode };
    case 'device':
      return { execute: 'device_add', arguments: deviceArguments(item.value as DeviceConfig) };
  }
}

function unplugStep(item: Item): UnplugStep {
  switch (item.kind) {
    case 'object':
      return { execute: 'object-del', arguments: { id: item.id } };
    case 'chardev':
      return { execute: 'chardev-remove', arguments: { id: item.id } };
    case 'netdev':
      return { execute: 'netdev_del', arguments: { id: item.id } };
    case 'node':
      return { execute: 'blockdev-del', arguments: { 'node-name': item.id } };
    case 'device':
      return {
        execute: 'device_del',
        arguments: { id: item.id },
        awaitEvent: { event: 'DEVICE_DELETED', match: { device: item.id } },
      };
  }
}

function notHotpluggable(items: readonly Item[], verb: string) {
  return items.flatMap((item) => {
    if (item.kind !== 'device') return [];
    const driver = (item.value as DeviceConfig).driver;
    if (driverSpec(driver)?.hotpluggable !== false) return [];
    return [
      problem(
        'not-hotpluggable',
        itemSubject(item),
        'driver',
        `${item.path}.driver`,
        `${driver} cannot be hot-${verb}; change the configuration and restart QEMU`,
      ),
    ];
  });
}

/**
 * Adds `parts` to a running VM's configuration. Returns the new configuration and the QMP
 * commands, in dependency order, that make the VM match it. The merged configuration is
 * validated first (references may point at existing items); throws `ConfigValidationError`.
 */
export function plug(config: VmConfig, parts: ConfigParts): PlugResult {
  const merged = withParts(config, parts);
  const graph = dependencyGraph(merged);
  const isNew = (item: Item) => item.index >= (config[SECTIONS[item.kind]]?.length ?? 0);
  const added = graph.items.filter(isNew);
  const problems = [
    ...validate(merged, { hotplugOnly: true }),
    ...notHotpluggable(added, 'plugged'),
  ];
  if (problems.length > 0) throw new ConfigValidationError(problems);
  const steps = dependencyOrder(graph).order.filter(isNew).map(plugStep);
  return { config: merged, steps };
}

/**
 * Removes the selected items from a running VM's configuration. Returns the new
 * configuration and the QMP commands, devices first (each awaiting `DEVICE_DELETED`),
 * then block nodes top-down, netdevs, chardevs and objects. Throws `ModelError` for names
 * the configuration does not have and `ConfigValidationError` when a remaining item would
 * still need a removed one (with `cascade: false`, or something the machine uses).
 */
export function unplug(
  config: VmConfig,
  selection: ConfigSelection,
  options: UnplugOptions = {},
): UnplugResult {
  const cascade = options.cascade ?? true;
  const graph = dependencyGraph(config);
  const remove = new Set<Item>();
  const selected: ReadonlyArray<readonly [ItemKind, readonly string[] | undefined]> = [
    ['object', selection.objects],
    ['chardev', selection.chardevs],
    ['netdev', selection.netdevs],
    ['node', selection.blockdevs],
    ['device', selection.devices],
  ];
  for (const [kind, names] of selected) {
    for (const name of names ?? []) {
      const item = graph.index.get(kind)?.get(name);
      if (!item)
        throw new ModelError(
          'unplug',
          name,
          `the configuration has no ${KIND_NOUN[kind]} '${name}'`,
        );
      remove.add(item);
    }
  }
  if (cascade) {
    // What the machine itself uses (pflash nodes, memory backend) is never cascaded away.
    const machineUses = new Set(
      graph.references.filter((r) => r.from === undefined).map((r) => `${r.target.kind}:${r.name}`),
    );
    let changed = true;
    while (changed) {
      changed = false;
      for (const dep of graph.dependencies) {
        // Devices on a removed controller's bus go with it.
        if (dep.field === 'bus' && remove.has(dep.to) && !remove.has(dep.from)) {
          remove.add(dep.from);
          changed = true;
        }
      }
      for (const dep of graph.dependencies) {
        if (!remove.has(dep.from) || remove.has(dep.to) || dep.field === 'bus') continue;
        if (machineUses.has(`${dep.to.kind}:${dep.to.id}`)) continue;
        const stillUsed = graph.dependencies.some((d) => d.to === dep.to && !remove.has(d.from));
        if (!stillUsed) {
          remove.add(dep.to);
          changed = true;
        }
      }
    }
  }
  const problems = notHotpluggable([...remove], 'unplugged');
  const keep = (kind: ItemKind) =>
    graph.items.filter((i) => i.kind === kind && !remove.has(i)).map((i) => i.value);
  const next: VmConfig = {
    ...config,
    objects: keep('object') as ObjectConfig[],
    chardevs: keep('chardev') as ChardevConfig[],
    netdevs: keep('netdev') as NetdevConfig[],
    blockdevs: keep('node') as BlockNode[],
    devices: keep('device') as DeviceConfig[],
  };
  problems.push(...validate(next, { hotplugOnly: true }));
  if (problems.length > 0) throw new ConfigValidationError(problems);
  const order = dependencyOrder(graph)
    .order.filter((i) => remove.has(i))
    .reverse();
  const names = (kind: ItemKind) => order.filter((i) => i.kind === kind).map((i) => i.id);
  return {
    config: next,
    steps: order.map(unplugStep),
    removed: {
      objects: names('object'),
      chardevs: names('chardev'),
      netdevs: names('netdev'),
      blockdevs: names('node'),
      devices: names('device'),
    },
  };
}

/**
 * The steps that undo already executed plug steps, last first: what to run when step k of
 * `plug(...).steps` fails (`undoPlug(steps.slice(0, k))`), before keeping the old config.
 */
export function undoPlug(executed: readonly PlugStep[]): UnplugStep[] {
  const undo: UnplugStep[] = [];
  for (const step of [...executed].reverse()) {
    switch (step.execute) {
      case 'device_add': {
        const id = step.arguments.id;
        if (id === undefined) break;
        undo.push({
          execute: 'device_del',
          arguments: { id },
          awaitEvent: { event: 'DEVICE_DELETED', match: { device: id } },
        });
        break;
      }
      case 'blockdev-add': {
        const name = step.arguments['node-name'];
        if (name !== undefined)
          undo.push({ execute: 'blockdev-del', arguments: { 'node-name': name } });
        break;
      }
      case 'netdev_add':
        undo.push({ execute: 'netdev_del', arguments: { id: step.arguments.id } });
        break;
      case 'chardev-add':
        undo.push({ execute: 'chardev-remove', arguments: { id: step.arguments.id } });
        break;
      case 'object-add':
        undo.push({ execute: 'object-del', arguments: { id: step.arguments.id } });
        break;
    }
  }
  return undo;
}
