/**
 * Cold-plug over the monitor: a configuration split into what has to be on the command line
 * and what can be added with QMP before the CPUs start (`-S`, then the steps, then `cont`).
 */

import { driverSpec } from './drivers.js';
import { type PlugStep, plug } from './hotplug.js';
import { type ConfigParts, type ConfigSelection, isGenericDevice, type VmConfig } from './model.js';
import { dependencyGraph } from './order.js';
import type { Item, ItemKind } from './refs.js';
import { assertValid } from './validate.js';

export interface AssemblyOptions {
  /**
   * Items to keep on the command line although they could be added over QMP, e.g. chardevs
   * whose backend is an fd inherited at spawn (QMP cannot name such an fd in 7.2).
   */
  readonly keep?: ConfigSelection;
}

export interface AssemblyPlan {
  /**
   * What goes on the command line: the machine, devices QEMU cannot hot-plug (ISA, IDE,
   * root ports — per the driver table), devices in the generic form (whether their driver
   * can be hot-plugged is unknown), the `keep` items, and everything those use.
   */
  readonly base: VmConfig;
  /** Everything else, per section in declaration order. */
  readonly parts: ConfigParts;
  /** `plug(base, parts).steps`: the QMP commands, in dependency order. */
  readonly steps: readonly PlugStep[];
}

function staysOnCommandLine(item: Item): boolean {
  if (item.kind !== 'device') return false;
  const device = item.value as Parameters<typeof isGenericDevice>[0];
  if (isGenericDevice(device)) return true;
  return driverSpec(device.driver)?.hotpluggable === false;
}

/**
 * Splits `config` for assembly over the monitor. Start QEMU with `toArgv(plan.base)` and
 * `-S`, run `plan.steps` in order, then `cont`; the result is the same VM as `config`
 * (declaration order inside a section may differ). Validates `config` first
 * (`ConfigValidationError`).
 */
export function assemblyPlan(config: VmConfig, options: AssemblyOptions = {}): AssemblyPlan {
  assertValid(config);
  const graph = dependencyGraph(config);
  const cold = new Set<Item>();
  const queue: Item[] = [];
  const add = (item: Item | undefined) => {
    if (item && !cold.has(item)) {
      cold.add(item);
      queue.push(item);
    }
  };
  for (const item of graph.items) if (staysOnCommandLine(item)) add(item);
  // What the machine itself uses (pflash nodes, the memory backend).
  for (const ref of graph.references) {
    if (ref.from === undefined) add(graph.index.get(ref.target.kind)?.get(ref.name));
  }
  const keep: ReadonlyArray<readonly [ItemKind, readonly string[] | undefined]> = [
    ['object', options.keep?.objects],
    ['chardev', options.keep?.chardevs],
    ['netdev', options.keep?.netdevs],
    ['node', options.keep?.blockdevs],
    ['device', options.keep?.devices],
  ];
  for (const [kind, names] of keep) {
    for (const name of names ?? []) add(graph.index.get(kind)?.get(name));
  }
  // Everything the command-line items depend on comes along.
  while (queue.length > 0) {
    const item = queue.pop() as Item;
    for (const dep of graph.dependencies) if (dep.from === item) add(dep.to);
  }
  const section = <T>(kind: ItemKind, inBase: boolean): T[] =>
    graph.items.filter((i) => i.kind === kind && cold.has(i) === inBase).map((i) => i.value as T);
  const base: VmConfig = {
    ...config,
    objects: section('object', true),
    chardevs: section('chardev', true),
    netdevs: section('netdev', true),
    blockdevs: section('node', true),
    devices: section('device', true),
  };
  const parts: ConfigParts = {
    objects: section('object', false),
    chardevs: section('chardev', false),
    netdevs: section('netdev', false),
    blockdevs: section('node', false),
    devices: section('device', false),
  };
  return { base, parts, steps: plug(base, parts).steps };
}
