import { describe, expect, it } from 'vitest';
import { isConfigValidationError, isModelError } from './errors.js';
import { blockGraph } from './graph.js';
import { MiB, type VmConfig } from './model.js';
import { insertOverlay } from './overlay.js';
import { sampleConfig } from './sample.test-helper.js';

describe('blockGraph', () => {
  const graph = blockGraph(sampleConfig());

  it('lists nodes with driver, read-only flag and implicit backing', () => {
    expect(graph.nodes.map((n) => [n.name, n.driver, n.readOnly, n.implicitBacking])).toEqual([
      ['disk0', 'qcow2', false, false],
      ['disk0-file', 'file', false, false],
      ['base', 'qcow2', true, false],
      ['base-file', 'file', true, false],
      ['data-throttle', 'throttle', false, false],
      ['data', 'qcow2', false, true],
      ['data-file', 'file', false, false],
      ['scratch', 'raw', false, false],
      ['scratch-file', 'file', false, false],
      ['fw-code-file', 'file', true, false],
      ['fw-code', 'raw', true, false],
      ['fw-vars-file', 'file', false, false],
      ['fw-vars', 'raw', false, false],
    ]);
    expect(graph.node('nope')).toBeUndefined();
  });

  it('has parent → child edges with roles', () => {
    expect(graph.children('disk0')).toEqual([
      { parent: 'disk0', child: 'disk0-file', role: 'file', field: 'file' },
      { parent: 'disk0', child: 'base', role: 'backing', field: 'backing' },
    ]);
    expect(graph.parents('base')).toEqual([
      { parent: 'disk0', child: 'base', role: 'backing', field: 'backing' },
    ]);
    expect(graph.children('data-throttle')).toEqual([
      { parent: 'data-throttle', child: 'data', role: 'file', field: 'file' },
    ]);
    expect(graph.roots()).toEqual(['disk0', 'data-throttle', 'scratch', 'fw-code', 'fw-vars']);
  });

  it('knows which device or pflash slot uses which node', () => {
    expect(graph.topOf('vd0')).toBe('disk0');
    expect(graph.topOf('sd0')).toBe('data-throttle');
    expect(graph.topOf('ide0')).toBe('scratch');
    expect(graph.topOf('nic0')).toBeUndefined();
    expect(graph.pflash('pflash0')).toBe('fw-code');
    expect(graph.pflash('pflash1')).toBe('fw-vars');
    expect(graph.consumers('disk0')).toEqual([
      { kind: 'device', id: 'vd0', driver: 'virtio-blk-pci' },
    ]);
    expect(graph.consumers('fw-vars')).toEqual([{ kind: 'pflash', slot: 'pflash1' }]);
    expect(graph.attachments).toHaveLength(5);
  });

  it('walks chains base → overlay, through filters', () => {
    expect(graph.chain('disk0')).toEqual(['base', 'disk0']);
    expect(graph.activeLayer('data-throttle')).toBe('data');
    expect(graph.chain('data-throttle')).toEqual(['data']);
    expect(graph.subtree('disk0')).toEqual(['disk0', 'disk0-file', 'base', 'base-file']);
    expect(graph.creationOrder()).toEqual([
      'disk0-file',
      'base-file',
      'base',
      'disk0',
      'data-file',
      'data',
      'data-throttle',
      'scratch-file',
      'scratch',
      'fw-code-file',
      'fw-code',
      'fw-vars-file',
      'fw-vars',
    ]);
  });

  it('classifies nodes for snapshots', () => {
    expect(graph.classify('disk0')).toEqual({
      node: 'disk0',
      class: 'snapshottable',
      snapshotsIn: 'disk0',
      savevmRelevant: true,
    });
    // QEMU falls back from a filter to its only child.
    expect(graph.classify('data-throttle')).toEqual({
      node: 'data-throttle',
      class: 'snapshottable',
      snapshotsIn: 'data',
      savevmRelevant: true,
    });
    // A qcow2 below a filter is not looked at by savevm itself (it has a parent and no device).
    expect(graph.classify('data').savevmRelevant).toBe(false);
    expect(graph.classify('scratch')).toEqual({
      node: 'scratch',
      class: 'writable-unsnapshottable',
      savevmRelevant: true,
    });
    expect(graph.classify('fw-vars').class).toBe('writable-unsnapshottable');
    expect(graph.classify('disk0-file')).toEqual({
      node: 'disk0-file',
      class: 'writable-unsnapshottable',
      savevmRelevant: false,
    });
    expect(graph.classify('base')).toEqual({
      node: 'base',
      class: 'read-only',
      savevmRelevant: false,
    });
    expect(graph.snapshottableNodes()).toEqual(['disk0', 'data-throttle']);
    expect(graph.savevmBlockers()).toEqual(['scratch', 'fw-vars']);
    expect(graph.readOnlyNodes()).toEqual(['base', 'base-file', 'fw-code-file', 'fw-code']);
    expect(graph.writableActiveLayers()).toEqual(['fw-vars', 'disk0', 'data', 'scratch']);
  });

  it('a raw node over a qcow2 falls back to it; a writable root without users still counts for savevm', () => {
    const g = blockGraph({
      machine: { type: 'pc-i440fx-7.2' },
      memory: { size: 64 * MiB },
      blockdevs: [
        { driver: 'null-co', 'node-name': 'n' },
        { driver: 'qcow2', 'node-name': 'q', file: 'n', backing: null },
        { driver: 'raw', 'node-name': 'r', file: 'q' },
        { driver: 'null-co', 'node-name': 'lonely' },
      ],
    });
    expect(g.classify('r')).toMatchObject({
      class: 'snapshottable',
      snapshotsIn: 'q',
      savevmRelevant: true,
    });
    expect(g.savevmBlockers()).toEqual(['lonely']);
  });

  it('refuses a configuration whose block references are broken, and unknown names', () => {
    const broken: VmConfig = {
      ...sampleConfig(),
      blockdevs: [{ driver: 'qcow2', 'node-name': 'a', file: 'b' }],
    };
    let error: unknown;
    try {
      blockGraph(broken);
    } catch (e) {
      error = e;
    }
    expect(isConfigValidationError(error)).toBe(true);
    expect(String(error)).toContain("node 'a': file 'b' names no block node");
    expect(() => graph.classify('nope')).toThrow(/no block node 'nope'/);
    expect(() => graph.chain('nope')).toThrow(/no block node 'nope'/);
  });
});

describe('insertOverlay', () => {
  const overlayFile = {
    driver: 'file',
    'node-name': 'ovl1-file',
    filename: '/images/ovl1.qcow2',
  } as const;

  it("puts a qcow2 overlay on a device's node: the device uses it, its backing is the old node", () => {
    const { config, replaced } = insertOverlay(sampleConfig(), {
      target: { device: 'vd0' },
      overlay: { driver: 'qcow2', 'node-name': 'ovl1', file: 'ovl1-file', backing: null },
      nodes: [overlayFile],
    });
    expect(replaced).toBe('disk0');
    const g = blockGraph(config);
    expect(g.topOf('vd0')).toBe('ovl1');
    expect(g.chain('ovl1')).toEqual(['base', 'disk0', 'ovl1']);
    expect(config.blockdevs?.at(-1)).toEqual({
      driver: 'qcow2',
      'node-name': 'ovl1',
      file: 'ovl1-file',
      backing: 'disk0',
    });
  });

  it('goes below filters, like blockdev-snapshot', () => {
    const { config, replaced } = insertOverlay(sampleConfig(), {
      target: { device: 'sd0' },
      overlay: { driver: 'qcow2', 'node-name': 'ovl1', file: 'ovl1-file' },
      nodes: [overlayFile],
    });
    expect(replaced).toBe('data');
    const g = blockGraph(config);
    expect(g.topOf('sd0')).toBe('data-throttle');
    expect(g.children('data-throttle')[0]?.child).toBe('ovl1');
    expect(g.chain('data-throttle')).toEqual(['data', 'ovl1']);
  });

  it('overlays a pflash varstore and a node by name', () => {
    const vars = insertOverlay(sampleConfig(), {
      target: { pflash: 'pflash1' },
      overlay: { driver: 'qcow2', 'node-name': 'vars1', file: 'ovl1-file' },
      nodes: [overlayFile],
    });
    expect(vars.config.machine.pflash1).toBe('vars1');
    expect(blockGraph(vars.config).classify('vars1').class).toBe('snapshottable');
    const byNode = insertOverlay(sampleConfig(), {
      target: { node: 'disk0' },
      overlay: { driver: 'qcow2', 'node-name': 'o', file: 'ovl1-file' },
      nodes: [overlayFile],
    });
    expect(blockGraph(byNode.config).topOf('vd0')).toBe('o');
  });

  it('refuses what cannot be an overlay', () => {
    const expectModelError = (f: () => unknown, text: string) => {
      let error: unknown;
      try {
        f();
      } catch (e) {
        error = e;
      }
      expect(isModelError(error)).toBe(true);
      expect(String(error)).toContain(text);
    };
    const overlay = { driver: 'qcow2', 'node-name': 'o', file: 'ovl1-file' } as const;
    expectModelError(
      () =>
        insertOverlay(sampleConfig(), {
          target: { device: 'nic0' },
          overlay,
          nodes: [overlayFile],
        }),
      "device 'nic0' has no drive",
    );
    expectModelError(
      () =>
        insertOverlay(sampleConfig(), {
          target: { device: 'vd0' },
          overlay: { driver: 'raw', 'node-name': 'o', file: 'ovl1-file' },
          nodes: [overlayFile],
        }),
      'is a raw node, which has no backing',
    );
    expectModelError(
      () =>
        insertOverlay(sampleConfig(), {
          target: { device: 'vd0' },
          overlay: { ...overlay, backing: 'base' },
          nodes: [overlayFile],
        }),
      `already has backing "base", not 'disk0'`,
    );
    expect(() => insertOverlay(sampleConfig(), { target: { device: 'vd0' }, overlay })).toThrow(
      /'ovl1-file' names no block node/,
    );
  });
});
