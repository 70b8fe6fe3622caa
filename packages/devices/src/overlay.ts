/**
 * Model side of an external snapshot: after QEMU has put an overlay on a node
 * (`blockdev-snapshot node=X overlay=Y`, or `blockdev-snapshot-sync`), the configuration must
 * say the same, so the next cold start opens the overlay with the old node as its backing.
 */

import { ModelError } from './errors.js';
import { BlockGraph } from './graph.js';
import type { BlockNode, DeviceConfig, VmConfig } from './model.js';
import { isGenericDevice } from './model.js';
import { blockChildMembers } from './refs.js';
import { assertValid } from './validate.js';

/** Where the overlay goes: a device's node, a pflash slot's node, or a node by name. */
export type OverlayTarget =
  | { readonly device: string }
  | { readonly pflash: 'pflash0' | 'pflash1' }
  | { readonly node: string };

export interface OverlayRequest {
  readonly target: OverlayTarget;
  /**
   * The overlay: a COW format node (qcow2, …). Its `backing` may be left out or `null` (as
   * it is when hot-plugged before `blockdev-snapshot`); the model sets it to the old node.
   */
  readonly overlay: BlockNode;
  /** Nodes the overlay needs that are not in the configuration yet (its `file` node). */
  readonly nodes?: readonly BlockNode[];
}

export interface OverlayResult {
  readonly config: VmConfig;
  /** The node the overlay was put on (the old active layer). */
  readonly replaced: string;
}

/**
 * `node` with every reference to `from` in its child members (`file`, `backing`, `children`,
 * … per driver) made `to`. Only node-name strings change, to other node-name strings, so the
 * node keeps its driver's type; `Object.assign` onto a copy says so without a cast.
 */
function replaceNodeRefs(node: BlockNode, from: string, to: string): BlockNode {
  const changes: Record<string, unknown> = {};
  for (const member of blockChildMembers(node.driver)) {
    const value: unknown = Object.getOwnPropertyDescriptor(node, member.name)?.value;
    if (value === from) changes[member.name] = to;
    else if (Array.isArray(value))
      changes[member.name] = value.map((v: unknown) => (v === from ? to : v));
  }
  return Object.assign({}, node, changes);
}

function replaceDeviceDrive(device: DeviceConfig, from: string, to: string): DeviceConfig {
  if (isGenericDevice(device)) {
    return device.props.drive === from
      ? { ...device, props: { ...device.props, drive: to } }
      : device;
  }
  return 'drive' in device && device.drive === from
    ? ({ ...device, drive: to } as DeviceConfig)
    : device;
}

/**
 * Puts `overlay` on top of the target's active layer X (for a device or pflash slot:
 * its node, below any filters such as throttle): every reference to X — device drives,
 * pflash slots, parent nodes — now names the overlay, and the overlay's `backing` is X.
 * This is what QEMU's `blockdev-snapshot` does to the running graph. Returns a new,
 * validated configuration (throws `ConfigValidationError` / `ModelError`).
 */
export function insertOverlay(config: VmConfig, request: OverlayRequest): OverlayResult {
  const graph = new BlockGraph(config);
  const t = request.target;
  let top: string | undefined;
  if ('device' in t) {
    top = graph.topOf(t.device);
    if (top === undefined)
      throw new ModelError(
        'insertOverlay',
        t.device,
        `device '${t.device}' has no drive in the configuration`,
      );
  } else if ('pflash' in t) {
    top = graph.pflash(t.pflash);
    if (top === undefined)
      throw new ModelError('insertOverlay', t.pflash, `machine.${t.pflash} is not set`);
  } else {
    top = t.node;
    if (!graph.node(top)) throw new ModelError('insertOverlay', top, `no block node '${top}'`);
  }
  const old = graph.activeLayer(top);
  const overlay = request.overlay;
  if (!blockChildMembers(overlay.driver).some((m) => m.name === 'backing')) {
    throw new ModelError(
      'insertOverlay',
      overlay['node-name'],
      `overlay '${overlay['node-name']}' is a ${overlay.driver} node, which has no backing; use a COW format such as qcow2`,
    );
  }
  const backing = (overlay as { backing?: unknown }).backing;
  if (backing !== undefined && backing !== null && backing !== old) {
    throw new ModelError(
      'insertOverlay',
      overlay['node-name'],
      `overlay '${overlay['node-name']}' already has backing ${JSON.stringify(backing)}, not '${old}'`,
    );
  }
  const name = overlay['node-name'];
  const blockdevs = (config.blockdevs ?? []).map((n) => replaceNodeRefs(n, old, name));
  const devices = (config.devices ?? []).map((d) => replaceDeviceDrive(d, old, name));
  const machine = {
    ...config.machine,
    ...(config.machine.pflash0 === old ? { pflash0: name } : {}),
    ...(config.machine.pflash1 === old ? { pflash1: name } : {}),
  };
  const next: VmConfig = {
    ...config,
    machine,
    blockdevs: [...blockdevs, ...(request.nodes ?? []), { ...overlay, backing: old } as BlockNode],
    devices,
  };
  assertValid(next, { hotplugOnly: true });
  return { config: next, replaced: old };
}
