import { describe, expect, it } from 'vitest';
import {
  backingOf,
  chainNodes,
  layerFile,
  reconcileBlockGraph,
  usersOf,
  withoutLayer,
  withReadOnly,
} from './graph-edit.js';
import { MiB, type VmConfig } from './model.js';
import { validate } from './validate.js';

/** base.qcow2 ← mid.qcow2 ← top.qcow2, top used by an IDE disk. */
const chain: VmConfig = {
  machine: { type: 'pc-i440fx-7.2' },
  memory: { size: 32 * MiB },
  blockdevs: [
    { driver: 'file', 'node-name': 'base-f', filename: 'base.qcow2' },
    { driver: 'qcow2', 'node-name': 'base', file: 'base-f' },
    { driver: 'file', 'node-name': 'mid-f', filename: 'mid.qcow2' },
    { driver: 'qcow2', 'node-name': 'mid', file: 'mid-f', backing: 'base' },
    { driver: 'file', 'node-name': 'top-f', filename: 'top.qcow2' },
    { driver: 'qcow2', 'node-name': 'top', file: 'top-f', backing: 'mid' },
  ],
  devices: [{ driver: 'ide-hd', id: 'disk0', drive: 'top', bus: 'ide.0' }],
};

describe('block graph edits', () => {
  it('finds the image file of a format node and of a file node', () => {
    expect(validate(chain)).toEqual([]);
    expect(layerFile(chain, 'mid')).toEqual({
      node: 'mid',
      fileNode: 'mid-f',
      filename: 'mid.qcow2',
      format: 'qcow2',
    });
    expect(layerFile(chain, 'mid-f')).toEqual({
      node: 'mid-f',
      fileNode: 'mid-f',
      filename: 'mid.qcow2',
      format: 'raw',
    });
    expect(layerFile(chain, 'nope')).toBeUndefined();
  });

  it('follows backing links both ways and along the chain', () => {
    expect(backingOf(chain, 'top')).toBe('mid');
    expect(backingOf(chain, 'base')).toBeNull();
    expect(usersOf(chain, 'mid')).toEqual(['top']);
    expect([...chainNodes(chain, ['top'])].sort()).toEqual(['base', 'mid', 'top']);
  });

  it('drops a layer and relinks its users to its backing', () => {
    const mid = layerFile(chain, 'mid');
    if (mid === undefined) throw new Error('no layer');
    const next = withoutLayer(chain, mid);
    expect(next.blockdevs?.map((b) => b['node-name'])).toEqual(['base-f', 'base', 'top-f', 'top']);
    expect(backingOf(next, 'top')).toBe('base');
    expect(validate(next)).toEqual([]);
    expect(chain.blockdevs).toHaveLength(6);
  });

  it('marks nodes and their file children read-only, nothing else', () => {
    const next = withReadOnly(chain, new Set(['mid']));
    const ro = (next.blockdevs ?? [])
      .filter((b) => (b as { 'read-only'?: boolean })['read-only'] === true)
      .map((b) => b['node-name']);
    expect(ro).toEqual(['mid-f', 'mid']);
  });

  it('reconciles the model with the graph QEMU reports', () => {
    // A commit of top into mid, then mid pivoted: disk0 uses mid, and base is gone below it.
    const reported = {
      devices: new Map([['disk0', 'mid']]),
      children: new Map([
        ['mid', new Map([['file', 'mid-f']])],
        ['top', new Map([['file', 'top-f']])],
        ['base', new Map([['file', 'base-f']])],
      ]),
    };
    const { config, changed } = reconcileBlockGraph(chain, reported);
    expect(changed).toBe(true);
    expect(config.devices?.[0]).toMatchObject({ drive: 'mid' });
    expect(backingOf(config, 'mid')).toBeNull();
    expect(backingOf(config, 'top')).toBeNull();
    // Nodes QEMU names but the model does not know are ignored; no report, no change.
    const none = reconcileBlockGraph(chain, {
      devices: new Map([['disk0', 'stranger']]),
    });
    expect(none).toEqual({ config: chain, changed: false });
    expect(none.config).toBe(chain);
  });
});
