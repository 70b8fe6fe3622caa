/**
 * Pure edits of a configuration's block graph, as snapshot strategies and the machine's
 * model sync need them: where a layer keeps its data, who builds on a node, a chain without
 * one layer, nodes made read-only, and the model brought in line with the graph QEMU reports.
 * No I/O: callers run QEMU or `qemu-img` and use these to keep the model true.
 */
import { blockGraph } from './graph.js';
import type { BlockNode, DeviceConfig, VmConfig } from './model.js';
import { deviceProps, isGenericDevice } from './model.js';

/** The members this module sets on a node: they mean the same for every driver that has them. */
interface NodeMembers {
  file?: string;
  backing?: string | null;
  'read-only'?: boolean;
}

/**
 * The one place a node gets members set (`file`, `backing`, `read-only`): `BlockNode` is a
 * union by driver, and every member set here is one of `NodeMembers`, a node reference or a
 * flag that every driver having it types the same way.
 */
function withMembers(node: BlockNode, members: NodeMembers): BlockNode {
  return { ...node, ...members };
}

/** A member of a node by name, whatever its driver (own properties only: nodes are plain data). */
function member(node: BlockNode | undefined, name: string): unknown {
  return node === undefined ? undefined : Object.getOwnPropertyDescriptor(node, name)?.value;
}

/** Where a format node keeps its data: the file name and format of the image it opens. */
export interface LayerFile {
  /** The format node (or the protocol node itself, for a `file` node read as raw). */
  readonly node: string;
  /** The `file` protocol node below it. */
  readonly fileNode: string;
  /** The image's file name, as written in the configuration (not resolved). */
  readonly filename: string;
  /** Image format for `qemu-img -F` (`qcow2`, `raw`, …). */
  readonly format: string;
}

/**
 * The image file behind `node`: a `file` node itself, or a format node whose `file` child is a
 * `file` node. `undefined` for anything else (network protocols, filters, missing nodes).
 */
export function layerFile(config: VmConfig, node: string): LayerFile | undefined {
  const graph = blockGraph(config);
  const n = graph.node(node);
  if (n === undefined) return undefined;
  const own = member(n.options, 'filename');
  if (n.driver === 'file' && typeof own === 'string')
    return { node, fileNode: node, filename: own, format: 'raw' };
  const child = graph.children(node).find((e) => e.field === 'file');
  const file = child ? graph.node(child.child) : undefined;
  const filename = member(file?.options, 'filename');
  if (file === undefined || file.driver !== 'file' || typeof filename !== 'string')
    return undefined;
  return { node, fileNode: file.name, filename, format: n.driver };
}

/** The node `node` names as its `backing`, or `null` (none, or not a node reference). */
export function backingOf(config: VmConfig, node: string): string | null {
  const found = (config.blockdevs ?? []).find((b) => b['node-name'] === node);
  const backing = member(found, 'backing');
  return typeof backing === 'string' ? backing : null;
}

/** Nodes whose `backing` is `node`. */
export function usersOf(config: VmConfig, node: string): string[] {
  return (config.blockdevs ?? [])
    .filter((b) => member(b, 'backing') === node)
    .map((b) => b['node-name']);
}

/** The configuration without `layer` (format and file node); its users get its backing. */
export function withoutLayer(config: VmConfig, layer: LayerFile): VmConfig {
  const replacement = backingOf(config, layer.node);
  const blockdevs = (config.blockdevs ?? [])
    .filter((b) => b['node-name'] !== layer.node && b['node-name'] !== layer.fileNode)
    .map((b) =>
      member(b, 'backing') === layer.node ? withMembers(b, { backing: replacement }) : b,
    );
  return { ...config, blockdevs };
}

/** `config` with `nodes` and their `file` children marked `read-only`. */
export function withReadOnly(config: VmConfig, nodes: ReadonlySet<string>): VmConfig {
  const files = new Set<string>();
  for (const b of config.blockdevs ?? []) {
    const file = member(b, 'file');
    if (nodes.has(b['node-name']) && typeof file === 'string') files.add(file);
  }
  return {
    ...config,
    blockdevs: (config.blockdevs ?? []).map((b) =>
      nodes.has(b['node-name']) || files.has(b['node-name'])
        ? withMembers(b, { 'read-only': true })
        : b,
    ),
  };
}

/** Every node of the backing chains below `layers` (the layers included). */
export function chainNodes(config: VmConfig, layers: readonly string[]): Set<string> {
  const graph = blockGraph(config);
  const out = new Set<string>();
  for (const l of layers) for (const n of graph.chain(l)) out.add(n);
  return out;
}

/** The block graph as QEMU reports it, reduced to what the model can follow. */
export interface ReportedBlockGraph {
  /** Device id → the node it uses now (`query-block` `inserted.node-name`). */
  readonly devices: ReadonlyMap<string, string>;
  /**
   * Node → its children by role (`file`, `backing`, … from `x-debug-query-block-graph`);
   * undefined when that was not available (then node edges are left as they are).
   */
  readonly children?: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

/**
 * Brings the model in line with the graph QEMU reports (a mirror that pivoted, a commit or
 * stream that shortened a chain), for nodes and devices the model knows: a device whose
 * drive changed, a `file`/`backing` child that changed, a `backing` that is gone. Returns the
 * configuration (unvalidated; the caller decides what to do with a result that does not
 * validate) and whether anything changed.
 */
export function reconcileBlockGraph(
  model: VmConfig,
  reported: ReportedBlockGraph,
): { config: VmConfig; changed: boolean } {
  const names = new Set((model.blockdevs ?? []).map((n) => n['node-name']));
  let changed = false;
  const devices = (model.devices ?? []).map((device): DeviceConfig => {
    const top = reported.devices.get(device.id ?? '');
    const drive = deviceProps(device).drive;
    if (top === undefined || !names.has(top) || drive === undefined || drive === top) return device;
    changed = true;
    return isGenericDevice(device)
      ? { ...device, props: { ...device.props, drive: top } }
      : ({ ...device, drive: top } as DeviceConfig);
  });
  const children = reported.children;
  const blockdevs = (model.blockdevs ?? []).map((node): BlockNode => {
    const actual = children?.get(node['node-name']);
    if (actual === undefined) return node;
    const patch: NodeMembers = {};
    for (const role of ['file', 'backing'] as const) {
      const have = member(node, role);
      const want = actual.get(role);
      if (want !== undefined && names.has(want) && have !== want) patch[role] = want;
      else if (want === undefined && role === 'backing' && typeof have === 'string')
        patch.backing = null;
    }
    if (Object.keys(patch).length === 0) return node;
    changed = true;
    return withMembers(node, patch);
  });
  return changed
    ? { config: { ...model, devices, blockdevs }, changed }
    : { config: model, changed };
}
