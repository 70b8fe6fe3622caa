/**
 * `qmpkit snapshot list`: the snapshot tree (each snapshot under the one it was taken after,
 * by its `parent` name), one line per snapshot with strategy, state size and age, the
 * current one (last saved or loaded, by id) marked.
 */
import type { SnapshotInfo } from '@qmpkit/snapshots';
import { bytes } from '../demo/report.js';
import type { Paint } from '../io.js';
import type { SnapshotNode } from './protocol.js';

export interface TreeOptions {
  /** Milliseconds since the epoch ages are measured from (default: now). */
  readonly now?: number;
  readonly paint?: Paint;
}

/** `12 s`, `5 min`, `3 h`, `2 d` ago; `just now` under a second; `in the future` for clock skew. */
export function age(createdAt: string, now: number): string {
  const ms = now - Date.parse(createdAt);
  if (Number.isNaN(ms)) return '?';
  if (ms < 0) return 'in the future';
  const s = Math.floor(ms / 1000);
  if (s < 1) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

interface Row {
  readonly prefix: string;
  readonly info: SnapshotInfo;
}

/** The tree in display order: roots oldest first, each followed by its subtree. */
function rows(snapshots: readonly SnapshotInfo[]): Row[] {
  const names = new Set(snapshots.map((s) => s.name));
  const children = new Map<string | null, SnapshotInfo[]>();
  for (const s of snapshots) {
    // A parent that is not in the list (an older store, a hand-edited manifest) makes a root.
    const parent = s.parent !== null && names.has(s.parent) ? s.parent : null;
    children.set(parent, [...(children.get(parent) ?? []), s]);
  }
  const out: Row[] = [];
  const seen = new Set<string>();
  const walk = (parent: string | null, indent: string, rootLevel: boolean) => {
    const list = children.get(parent) ?? [];
    list.forEach((info, index) => {
      if (seen.has(info.name)) return;
      seen.add(info.name);
      const last = index === list.length - 1;
      out.push({ prefix: rootLevel ? '' : `${indent}${last ? '└─ ' : '├─ '}`, info });
      walk(info.name, rootLevel ? '' : `${indent}${last ? '   ' : '│  '}`, false);
    });
  };
  walk(null, '', true);
  // Parent links that form a cycle never reach a root: list them at the top level.
  for (const s of snapshots) {
    if (seen.has(s.name)) continue;
    seen.add(s.name);
    out.push({ prefix: '', info: s });
    walk(s.name, '', false);
  }
  return out;
}

export function renderTree(
  snapshots: readonly SnapshotInfo[],
  current: string | null,
  options: TreeOptions = {},
): string {
  if (snapshots.length === 0) return 'no snapshots\n';
  const now = options.now ?? Date.now();
  const paint = options.paint ?? ((_style, text) => text);
  const list = rows(snapshots);
  const cells = list.map(({ prefix, info }) => ({
    head: `${prefix}${info.name}`,
    prefix,
    info,
    strategy: info.live
      ? `${info.strategy} (live)`
      : info.diskOnly === true
        ? `${info.strategy} (disks, ${info.consistency ?? 'crash'})`
        : info.strategy,
    size: bytes(info.vmStateBytes),
    age: age(info.createdAt, now),
  }));
  const width = (key: 'head' | 'strategy' | 'size') =>
    Math.max(...cells.map((c) => [...c[key]].length));
  const [wHead, wStrategy, wSize] = [width('head'), width('strategy'), width('size')];
  const lines = cells.map((c) => {
    const isCurrent = c.info.id === current;
    const name = isCurrent ? paint('bold', c.info.name) : c.info.name;
    const pad = ' '.repeat(wHead - [...c.head].length);
    const mark = isCurrent ? `  ${paint('green', '← current')}` : '';
    const note = c.info.description ? `  ${paint('dim', c.info.description)}` : '';
    return `${isCurrent ? '*' : ' '} ${paint('dim', c.prefix)}${name}${pad}  ${c.strategy.padEnd(wStrategy)}  ${c.size.padStart(wSize)}  ${c.age}${mark}${note}`.trimEnd();
  });
  return `${lines.join('\n')}\n`;
}

/**
 * The tree as data (the `tree` method of the control protocol): each snapshot under the one
 * it was taken after, roots oldest first; a parent that is not in the list makes a root, and
 * snapshots on a parent cycle are listed as roots (each once), as `renderTree` does.
 */
export function snapshotTree(snapshots: readonly SnapshotInfo[]): SnapshotNode[] {
  const names = new Set(snapshots.map((s) => s.name));
  const children = new Map<string | null, SnapshotInfo[]>();
  for (const s of snapshots) {
    const parent = s.parent !== null && names.has(s.parent) ? s.parent : null;
    children.set(parent, [...(children.get(parent) ?? []), s]);
  }
  const seen = new Set<string>();
  const build = (info: SnapshotInfo): SnapshotNode => {
    seen.add(info.name);
    const below = (children.get(info.name) ?? []).filter((c) => !seen.has(c.name));
    for (const c of below) seen.add(c.name);
    return {
      id: info.id,
      name: info.name,
      strategy: info.strategy,
      live: info.live,
      createdAt: info.createdAt,
      description: info.description ?? null,
      vmStateBytes: info.vmStateBytes,
      children: below.map(build),
    };
  };
  const roots = (children.get(null) ?? []).map((s) => {
    seen.add(s.name);
    return s;
  });
  const out = roots.map(build);
  for (const s of snapshots) if (!seen.has(s.name)) out.push(build(s));
  return out;
}
