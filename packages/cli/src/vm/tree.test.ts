import type { SnapshotInfo } from '@qmpkit/snapshots';
import { describe, expect, it } from 'vitest';
import { painter } from '../io.js';
import type { SnapshotNode } from './protocol.js';
import { age, renderTree, snapshotTree } from './tree.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');

function info(
  name: string,
  parent: string | null,
  fields: Partial<SnapshotInfo> & { minutesAgo?: number } = {},
): SnapshotInfo {
  const { minutesAgo = 1, ...rest } = fields;
  return {
    id: `id-${name}`,
    name,
    strategy: 'external',
    parent,
    createdAt: new Date(NOW - minutesAgo * 60_000).toISOString(),
    description: undefined,
    qemuVersion: '7.2.22',
    machineType: 'pc-i440fx-7.2',
    configHash: 'h',
    memoryBytes: 32 * 1024 * 1024,
    vmStateBytes: 1536 * 1024,
    wasRunning: true,
    stateFile: undefined,
    layers: [],
    tag: undefined,
    live: false,
    ...rest,
  };
}

describe('renderTree', () => {
  it('nests snapshots under their parent, aligns the columns and marks the current one', () => {
    const list = [
      info('base', null, { minutesAgo: 180 }),
      info('a', 'base', {
        strategy: 'internal-jobs',
        vmStateBytes: 33 * 1024 * 1024,
        minutesAgo: 61,
      }),
      info('a1', 'a', { minutesAgo: 30, description: 'after the update' }),
      info('b', 'base', { live: true, minutesAgo: 2 }),
      info('other', null, { strategy: 'internal-hmp', vmStateBytes: 900, minutesAgo: 0.5 }),
    ];
    expect(renderTree(list, 'id-a1', { now: NOW })).toBe(
      [
        '  base      external          1.5 MiB  3 h ago',
        '  ├─ a      internal-jobs    33.0 MiB  1 h ago',
        '* │  └─ a1  external          1.5 MiB  30 min ago  ← current  after the update',
        '  └─ b      external (live)   1.5 MiB  2 min ago',
        '  other     internal-hmp        900 B  30 s ago',
        '',
      ].join('\n'),
    );
  });

  it('a snapshot whose parent is gone, or parent links in a cycle, still appear once', () => {
    const list = [info('x', 'deleted'), info('p', 'q'), info('q', 'p')];
    const out = renderTree(list, null, { now: NOW });
    expect(
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => l.trim().split(/\s+/)[0]),
    ).toEqual(['x', 'p', '└─']);
    expect(out).toContain('└─ q ');
  });

  it('says so when there are none; colours only through the painter', () => {
    expect(renderTree([], null)).toBe('no snapshots\n');
    const coloured = renderTree([info('s', null)], 'id-s', { now: NOW, paint: painter(true) });
    expect(coloured).toContain('\u001b[1ms\u001b[22m');
    expect(coloured).toContain('\u001b[32m← current\u001b[39m');
  });

  it('ages', () => {
    const at = (ms: number) => new Date(NOW - ms).toISOString();
    expect(age(at(500), NOW)).toBe('just now');
    expect(age(at(59_000), NOW)).toBe('59 s ago');
    expect(age(at(3_600_000), NOW)).toBe('1 h ago');
    expect(age(at(3 * 86_400_000), NOW)).toBe('3 d ago');
    expect(age(at(-5000), NOW)).toBe('in the future');
    expect(age('garbage', NOW)).toBe('?');
  });
});

describe('snapshotTree', () => {
  const shape = (nodes: readonly SnapshotNode[]): unknown =>
    nodes.map((n) => [n.name, shape(n.children)]);

  it('nests by parent; an unknown parent makes a root; a cycle is listed once', () => {
    const list = [
      info('base', null),
      info('a', 'base'),
      info('b', 'base'),
      info('a1', 'a', { description: 'note' }),
      info('orphan', 'gone'),
      info('x', 'y'),
      info('y', 'x'),
    ];
    const tree = snapshotTree(list);
    expect(shape(tree)).toEqual([
      [
        'base',
        [
          ['a', [['a1', []]]],
          ['b', []],
        ],
      ],
      ['orphan', []],
      ['x', [['y', []]]],
    ]);
    expect(tree[0]?.children[0]?.children[0]).toMatchObject({
      id: 'id-a1',
      strategy: 'external',
      description: 'note',
      vmStateBytes: 1536 * 1024,
    });
    expect(snapshotTree([])).toEqual([]);
  });
});
