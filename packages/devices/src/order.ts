/**
 * Dependency order of a configuration's items: what must exist before what. One order
 * serves the command line (grouped by kind) and hot-plug (across kinds); unplug is its
 * reverse.
 */
import { deviceBus, machineBuses, providedBuses, resolveBus } from './buses.js';
import type { VmConfig } from './model.js';
import {
  collectItems,
  type Item,
  type ItemKind,
  KIND_ORDER,
  type Reference,
  scanReferences,
} from './refs.js';

export type ItemIndex = ReadonlyMap<ItemKind, ReadonlyMap<string, Item>>;

/** Items by kind and id (the first of duplicates wins). */
export function indexItems(items: readonly Item[]): ItemIndex {
  const index = new Map<ItemKind, Map<string, Item>>();
  for (const kind of KIND_ORDER) index.set(kind, new Map());
  for (const item of items) {
    const byId = index.get(item.kind);
    if (byId && item.id !== '' && !byId.has(item.id)) byId.set(item.id, item);
  }
  return index;
}

export interface Dependency {
  readonly from: Item;
  readonly to: Item;
  /** The field that creates the dependency (`drive`, `backing`, `bus`, …). */
  readonly field: string;
}

export interface DependencyGraph {
  readonly items: readonly Item[];
  readonly references: readonly Reference[];
  readonly index: ItemIndex;
  /** Resolved dependencies between items (dangling references are left out). */
  readonly dependencies: readonly Dependency[];
}

export function dependencyGraph(config: VmConfig): DependencyGraph {
  const items = collectItems(config);
  const { references } = scanReferences(config, items);
  const index = indexItems(items);
  const dependencies: Dependency[] = [];
  for (const ref of references) {
    if (!ref.from) continue;
    const to = index.get(ref.target.kind)?.get(ref.name);
    if (to) dependencies.push({ from: ref.from, to, field: ref.field });
  }
  const devices = items.filter((i) => i.kind === 'device');
  const machineType = typeof config.machine?.type === 'string' ? config.machine.type : '';
  const machine = machineBuses(machineType);
  const provided = providedBuses(devices);
  for (const device of devices) {
    const bus = deviceBus(device);
    if (bus === undefined) continue;
    const resolved = resolveBus(bus, machine, provided, devices);
    if (resolved.ok && resolved.bus?.provider)
      dependencies.push({ from: device, to: resolved.bus.provider, field: 'bus' });
    else if (resolved.ok && resolved.bus === undefined) {
      // A generic controller: depend on the device named by the bus, if any.
      const base = /^(.*)\.\d+$/.exec(bus)?.[1];
      const owner = devices.find(
        (d) => d.id !== '' && d !== device && (d.id === bus || d.id === base),
      );
      if (owner) dependencies.push({ from: device, to: owner, field: 'bus' });
    }
  }
  return { items, references, index, dependencies };
}

function rank(item: Item): number {
  return KIND_ORDER.indexOf(item.kind);
}

export interface Ordering {
  /** Items whose dependencies come first; ties broken by kind (objects, chardevs, netdevs, nodes, devices), then declaration order. */
  readonly order: readonly Item[];
  /** Dependency cycles, each as the items along it (first item repeated at the end). */
  readonly cycles: ReadonlyArray<readonly Item[]>;
}

/** Topological order of `graph.items` (Kahn's algorithm with a stable tie-break). */
export function dependencyOrder(graph: DependencyGraph): Ordering {
  const deps = new Map<Item, Set<Item>>();
  const dependents = new Map<Item, Set<Item>>();
  for (const item of graph.items) {
    deps.set(item, new Set());
    dependents.set(item, new Set());
  }
  for (const d of graph.dependencies) {
    if (d.from === d.to) continue;
    deps.get(d.from)?.add(d.to);
    dependents.get(d.to)?.add(d.from);
  }
  const selfLoops = graph.dependencies.filter((d) => d.from === d.to);
  const remaining = new Map<Item, number>();
  for (const [item, set] of deps) remaining.set(item, set.size);
  const ready = graph.items.filter(
    (i) => remaining.get(i) === 0 && !selfLoops.some((d) => d.from === i),
  );
  const order: Item[] = [];
  const done = new Set<Item>();
  const better = (a: Item, b: Item) => rank(a) - rank(b) || a.index - b.index;
  while (ready.length > 0) {
    ready.sort(better);
    const next = ready.shift() as Item;
    order.push(next);
    done.add(next);
    for (const dependent of dependents.get(next) ?? []) {
      const left = (remaining.get(dependent) ?? 0) - 1;
      remaining.set(dependent, left);
      if (left === 0 && !selfLoops.some((d) => d.from === dependent)) ready.push(dependent);
    }
  }
  const cycles: Item[][] = selfLoops.map((d) => [d.from, d.from]);
  const stuck = graph.items.filter((i) => !done.has(i));
  // Find the cycles among the stuck items with a DFS (each reported once).
  const state = new Map<Item, 'open' | 'closed'>();
  const stack: Item[] = [];
  const seen = new Set<string>();
  const visit = (item: Item) => {
    state.set(item, 'open');
    stack.push(item);
    for (const dep of deps.get(item) ?? []) {
      if (done.has(dep)) continue;
      if (state.get(dep) === 'open') {
        const cycle = [...stack.slice(stack.indexOf(dep)), dep];
        const key = cycle
          .slice(0, -1)
          .map((i) => `${i.kind}:${i.index}`)
          .sort()
          .join(',');
        if (!seen.has(key)) {
          seen.add(key);
          cycles.push(cycle);
        }
      } else if (!state.has(dep)) visit(dep);
    }
    stack.pop();
    state.set(item, 'closed');
  };
  for (const item of stuck) if (!state.has(item)) visit(item);
  // Stuck items still need a place in the order (behind everything), so callers can go on.
  for (const item of [...stuck].sort(better)) order.push(item);
  return { order, cycles };
}
