/**
 * The block graph of a configuration: nodes, parent → child edges, which device (or pflash
 * slot) uses which node, backing chains, and what each node means for snapshots.
 */
import { ConfigValidationError, ModelError } from './errors.js';
import type { BlockNode, VmConfig } from './model.js';
import { blockChildMembers, collectItems, type EdgeRole, scanReferences } from './refs.js';
import { validate } from './validate.js';

export interface GraphNode {
  readonly name: string;
  readonly driver: string;
  readonly readOnly: boolean;
  /**
   * A COW format node (qcow2, qed, vmdk, …) whose `backing` is not set: QEMU opens the
   * backing file named in the image header, as a node this model does not know.
   * (`backing: null` means "no backing", which is what overlays are added with.)
   */
  readonly implicitBacking: boolean;
  readonly options: BlockNode;
}

export interface BlockEdge {
  readonly parent: string;
  readonly child: string;
  readonly role: EdgeRole;
  /** The member that names the child: `file`, `backing`, `children[2]`, … */
  readonly field: string;
}

/** What uses a node from outside the block layer. */
export type Consumer =
  | { readonly kind: 'device'; readonly id: string; readonly driver: string }
  | { readonly kind: 'pflash'; readonly slot: 'pflash0' | 'pflash1' };

export interface Attachment {
  readonly node: string;
  readonly consumer: Consumer;
}

/**
 * - `snapshottable`: writable and can take internal snapshots (qcow2, or a filter/raw node
 *   whose only data child is such a node — QEMU falls back to that child);
 * - `writable-unsnapshottable`: writable but cannot (raw, vmdk, file, …). If QEMU's savevm
 *   considers it (see `savevmRelevant`), HMP `savevm` fails with "Device '…' is writable
 *   but does not support snapshots" — an OVMF varstore in pflash1 is the classic case;
 * - `read-only`.
 */
export type NodeClass = 'snapshottable' | 'writable-unsnapshottable' | 'read-only';

export interface NodeClassification {
  readonly node: string;
  readonly class: NodeClass;
  /** The node that holds the snapshots (itself, or the child QEMU falls back to). */
  readonly snapshotsIn?: string;
  /**
   * Whether `savevm`/`snapshot-save` without a device list look at it: writable nodes
   * that a device or pflash uses, or that have no parent (QEMU's
   * `bdrv_all_snapshots_includes_bs`).
   */
  readonly savevmRelevant: boolean;
}

/** Drivers that pass I/O through to one child, and the member naming it. */
const FILTERS: Readonly<Record<string, string>> = {
  throttle: 'file',
  'copy-on-read': 'file',
  compress: 'file',
  preallocate: 'file',
  'copy-before-write': 'file',
  blklogwrites: 'file',
  blkdebug: 'image',
  blkreplay: 'image',
};

export class BlockGraph {
  readonly nodes: readonly GraphNode[];
  readonly edges: readonly BlockEdge[];
  readonly attachments: readonly Attachment[];
  readonly #byName: ReadonlyMap<string, GraphNode>;

  /**
   * Builds the graph. Throws `ConfigValidationError` when the configuration has dangling,
   * inline or looping block references, duplicate node names or shape problems; other
   * problems (e.g. an unknown bus) do not matter to the graph.
   */
  constructor(config: VmConfig) {
    const blocking = validate(config, { hotplugOnly: true }).filter(
      (p) =>
        p.code === 'format' ||
        ((p.subject.kind === 'node' ||
          p.field === 'drive' ||
          p.field === 'props.drive' ||
          p.field.startsWith('pflash')) &&
          (p.code === 'dangling-reference' ||
            p.code === 'inline-node' ||
            p.code === 'cycle' ||
            p.code === 'duplicate-id' ||
            p.code === 'wrong-kind')),
    );
    if (blocking.length > 0) throw new ConfigValidationError(blocking);
    const items = collectItems(config);
    const { references } = scanReferences(config, items);
    const nodes: GraphNode[] = [];
    for (const item of items) {
      if (item.kind !== 'node') continue;
      const options = item.value as BlockNode;
      const cow = blockChildMembers(options.driver).some((m) => m.name === 'backing');
      nodes.push({
        name: item.id,
        driver: options.driver,
        readOnly: options['read-only'] === true,
        implicitBacking: cow && (options as { backing?: unknown }).backing === undefined,
        options,
      });
    }
    this.nodes = nodes;
    this.#byName = new Map(nodes.map((n) => [n.name, n]));
    const edges: BlockEdge[] = [];
    const attachments: Attachment[] = [];
    for (const ref of references) {
      if (ref.target.kind !== 'node') continue;
      if (ref.from?.kind === 'node') {
        edges.push({
          parent: ref.from.id,
          child: ref.name,
          role: ref.role ?? 'child',
          field: ref.field,
        });
      } else if (ref.from?.kind === 'device') {
        const driver = (ref.from.value as { driver: string }).driver;
        attachments.push({ node: ref.name, consumer: { kind: 'device', id: ref.from.id, driver } });
      } else if (ref.from === undefined && (ref.field === 'pflash0' || ref.field === 'pflash1')) {
        attachments.push({ node: ref.name, consumer: { kind: 'pflash', slot: ref.field } });
      }
    }
    this.edges = edges;
    this.attachments = attachments;
  }

  node(name: string): GraphNode | undefined {
    return this.#byName.get(name);
  }

  #need(name: string, operation: string): GraphNode {
    const node = this.#byName.get(name);
    if (!node) throw new ModelError(operation, name, `no block node '${name}'`);
    return node;
  }

  /** Edges from `name` to its children, in member order. */
  children(name: string): BlockEdge[] {
    return this.edges.filter((e) => e.parent === name);
  }

  /** Edges from the nodes that use `name` as a child. */
  parents(name: string): BlockEdge[] {
    return this.edges.filter((e) => e.child === name);
  }

  /** The devices and pflash slots that use `name` directly. */
  consumers(name: string): Consumer[] {
    return this.attachments.filter((a) => a.node === name).map((a) => a.consumer);
  }

  /** Nodes no other node uses as a child (what devices and pflash should attach). */
  roots(): string[] {
    const children = new Set(this.edges.map((e) => e.child));
    return this.nodes.filter((n) => !children.has(n.name)).map((n) => n.name);
  }

  /** The node a device uses (`drive`), or `undefined` for devices without one. */
  topOf(device: string): string | undefined {
    return this.attachments.find((a) => a.consumer.kind === 'device' && a.consumer.id === device)
      ?.node;
  }

  /** The node behind `-machine pflash0=` / `pflash1=`. */
  pflash(slot: 'pflash0' | 'pflash1'): string | undefined {
    return this.attachments.find((a) => a.consumer.kind === 'pflash' && a.consumer.slot === slot)
      ?.node;
  }

  /** `name` and everything below it, parents before children (the `blockdev-del` order). */
  subtree(name: string): string[] {
    this.#need(name, 'subtree');
    const out: string[] = [];
    const visit = (n: string) => {
      if (out.includes(n)) return;
      out.push(n);
      for (const e of this.children(n)) visit(e.child);
    };
    visit(name);
    return out;
  }

  /**
   * The node guest writes land in below `name`: `name` itself, or, through filters
   * (throttle, copy-on-read, …), the first non-filter node. External snapshots put their
   * overlay on top of this node.
   */
  activeLayer(name: string): string {
    let current = this.#need(name, 'activeLayer');
    const seen = new Set<string>();
    for (;;) {
      const member = FILTERS[current.driver];
      if (!member || seen.has(current.name)) return current.name;
      seen.add(current.name);
      const child = this.children(current.name).find((e) => e.field === member);
      const next = child ? this.#byName.get(child.child) : undefined;
      if (!next) return current.name;
      current = next;
    }
  }

  /** The backing chain under `name`'s active layer, base first: `[base, …, active]`. */
  chain(name: string): string[] {
    const out: string[] = [];
    let current: string | undefined = this.activeLayer(name);
    while (current !== undefined && !out.includes(current)) {
      out.push(current);
      current = this.children(current).find((e) => e.role === 'backing')?.child;
    }
    return out.reverse();
  }

  /** What `name` means for snapshots (see `NodeClass`). */
  classify(name: string): NodeClassification {
    const node = this.#need(name, 'classify');
    const relevant =
      !node.readOnly && (this.consumers(name).length > 0 || this.parents(name).length === 0);
    const base = { node: name, savevmRelevant: relevant };
    if (node.readOnly) return { ...base, class: 'read-only' };
    const holder = this.#snapshotHolder(node, new Set());
    return holder === undefined
      ? { ...base, class: 'writable-unsnapshottable' }
      : { ...base, class: 'snapshottable', snapshotsIn: holder };
  }

  /** QEMU's `bdrv_can_snapshot`: qcow2 itself, else fall back to the only data child. */
  #snapshotHolder(node: GraphNode, seen: Set<string>): string | undefined {
    if (node.readOnly || seen.has(node.name)) return undefined;
    seen.add(node.name);
    if (node.driver === 'qcow2') return node.name;
    const data = this.children(node.name).filter((e) => e.role !== 'backing');
    const only = data.length === 1 ? data[0] : undefined;
    if (!only || (only.field !== 'file' && only.field !== 'image')) return undefined;
    const child = this.#byName.get(only.child);
    return child ? this.#snapshotHolder(child, seen) : undefined;
  }

  /**
   * Nodes an internal snapshot (`savevm`, `snapshot-save` `devices`) covers: writable,
   * snapshottable and considered by savevm. Pass these as `snapshot-save`'s `devices`.
   */
  snapshottableNodes(): string[] {
    return this.nodes
      .map((n) => this.classify(n.name))
      .filter((c) => c.savevmRelevant && c.class === 'snapshottable')
      .map((c) => c.node);
  }

  /** Writable nodes savevm considers but cannot snapshot: each one makes HMP `savevm` fail. */
  savevmBlockers(): string[] {
    return this.nodes
      .map((n) => this.classify(n.name))
      .filter((c) => c.savevmRelevant && c.class === 'writable-unsnapshottable')
      .map((c) => c.node);
  }

  readOnlyNodes(): string[] {
    return this.nodes.filter((n) => n.readOnly).map((n) => n.name);
  }

  /**
   * Active layers of every device and pflash slot whose node is writable: what an external
   * snapshot must put overlays on (each once, even when shared).
   */
  writableActiveLayers(): string[] {
    const out: string[] = [];
    for (const a of this.attachments) {
      const active = this.activeLayer(a.node);
      if (!this.#byName.get(active)?.readOnly && !out.includes(active)) out.push(active);
    }
    return out;
  }

  /** Node names, children before parents (the `-blockdev` / `blockdev-add` order). */
  creationOrder(): string[] {
    const out: string[] = [];
    const visit = (n: string, path: Set<string>) => {
      if (out.includes(n) || path.has(n)) return;
      path.add(n);
      for (const e of this.children(n)) visit(e.child, path);
      path.delete(n);
      out.push(n);
    };
    for (const n of this.nodes) visit(n.name, new Set());
    return out;
  }
}

/** The block graph of `config` (see `BlockGraph`). */
export function blockGraph(config: VmConfig): BlockGraph {
  return new BlockGraph(config);
}
