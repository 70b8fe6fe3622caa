/**
 * The block graph: `blockdev-add`/`blockdev-del`, `query-named-block-nodes`, `query-block`,
 * `blockdev-snapshot`, `blockdev-snapshot-sync`, `transaction`, and the internal snapshots of
 * qcow2 nodes (used by savevm/snapshot-save). Drivers modelled: file, qcow2, raw, null-co,
 * null-aio; others are refused with a GenericError naming the fake.
 */

import { qmpError } from '../errors.js';
import { writeQemuJson } from '../json/writer.js';
import { type HandlerTable, handler, idWellformed, type ModelHost } from './host.js';
import { enumValues, membersOf } from './schema.js';
import { createQcow2Image, readQcow2Header } from './storage.js';

export interface InternalSnapshot {
  id: string;
  name: string;
  vmStateSize: number;
  dateSec: number;
  dateNsec: number;
  vmClockNs: bigint;
}

export class BlockNode {
  readonly children: { role: string; node: BlockNode }[] = [];
  readonly parents = new Set<BlockNode>();
  /** The device using this node as its root (a BlockBackend), as a QOM path. */
  attachedTo: string | undefined;
  monitorOwned = false;
  /** Block nodes are inactive after an outgoing migration completed (until `cont`). */
  inactive = false;
  readonly snapshots: InternalSnapshot[] = [];
  /** Dirty bitmaps, newest first (QEMU lists them so). */
  readonly bitmaps: DirtyBitmap[] = [];
  /** Block jobs and exports holding this node (QEMU: their BlockBackends), by id. */
  readonly users = new Set<string>();

  constructor(
    public nodeName: string,
    readonly driver: string,
    private readonly plainFilename: string,
    public virtualSize: number,
    public readOnly: boolean,
    readonly autoName: boolean,
    readonly extra: {
      backingFile?: string;
      backingFormat?: string;
      clusterSize?: number;
      /** Host file (file driver): the path whose size is the virtual size. */
      path?: string;
      /** Options that change what the node reads (QEMU's "strong" options), e.g. null's size. */
      strong?: Record<string, unknown>;
    } = {},
  ) {}

  /**
   * QEMU's `bdrv_refresh_filename`: the plain file name when the node's options can be
   * derived from it, else a `json:{…}` pseudo-filename with the options that matter.
   */
  get filename(): string {
    return this.needsJson() ? `json:${writeQemuJson(this.openOptions())}` : this.plainName();
  }

  private plainName(): string {
    if (this.driver === 'file' || this.driver.startsWith('null')) return this.plainFilename;
    return this.child('file')?.plainName() ?? this.plainFilename;
  }

  /** The backing child differs from what the image header names. */
  private backingMismatch(): boolean {
    if (this.driver !== 'qcow2') return false;
    const backing = this.backing;
    if (!backing) return false;
    return this.extra.backingFile === undefined || this.extra.backingFile !== backing.filename;
  }

  private needsJson(): boolean {
    if (this.extra.strong && Object.keys(this.extra.strong).length > 0) return true;
    if (this.backingMismatch()) return true;
    const file = this.child('file');
    return file?.needsJson() === true;
  }

  openOptions(): Record<string, unknown> {
    if (this.driver === 'file') return { driver: 'file', filename: this.plainFilename };
    if (this.driver.startsWith('null')) return { driver: this.driver, ...this.extra.strong };
    const out: Record<string, unknown> = { driver: this.driver };
    const file = this.child('file');
    if (file) out.file = file.openOptions();
    if (this.backingMismatch() && this.backing) out.backing = this.backing.openOptions();
    return out;
  }

  child(role: string): BlockNode | undefined {
    return this.children.find((c) => c.role === role)?.node;
  }

  get backing(): BlockNode | undefined {
    return this.child('backing');
  }

  get format(): string {
    return this.driver;
  }

  /** QEMU's `bdrv_can_snapshot`: writable, and qcow2 (or a filter/raw over one). */
  canSnapshot(): boolean {
    if (this.readOnly) return false;
    if (this.driver === 'qcow2') return true;
    return false;
  }
}

/** A dirty bitmap: guest writes are not modelled, so its count stays 0 unless merged. */
export interface DirtyBitmap {
  readonly name: string;
  readonly granularity: number;
  recording: boolean;
  readonly persistent: boolean;
  /** Held by a backup job or an NBD export. */
  busy: boolean;
  inconsistent: boolean;
  count: number;
}

export interface TransactionAction {
  commit(): void;
  abort(): void;
}

type BlockdevArgs = Record<string, unknown> & { driver: string; 'node-name'?: string };

export class BlockGraph {
  /** Named nodes in the order their names were assigned (QEMU's graph list). */
  private readonly nodes: BlockNode[] = [];
  private autoCounter = 0;
  /**
   * `transaction` actions other parts of the model add (dirty bitmaps, blockdev-backup): each
   * prepares its action (throwing QEMU's error) and returns how to commit or undo it.
   */
  readonly actions = new Map<string, (data: Record<string, unknown>) => TransactionAction>();

  /** Adds a `transaction` action whose data (checked against the schema) is read as `A`. */
  addAction<A>(type: string, prepare: (data: A) => TransactionAction): void {
    this.actions.set(type, prepare as (data: Record<string, unknown>) => TransactionAction);
  }

  constructor(private readonly host: ModelHost) {}

  find(name: string): BlockNode | undefined {
    return this.nodes.find((n) => n.nodeName === name);
  }

  all(): readonly BlockNode[] {
    return this.nodes;
  }

  /** QEMU's `bdrv_first/bdrv_next`: device roots, then monitor-owned nodes. */
  iterate(): BlockNode[] {
    const attached = this.nodes.filter((n) => n.attachedTo !== undefined);
    const owned = this.nodes.filter((n) => n.monitorOwned && n.attachedTo === undefined);
    return [...attached, ...owned];
  }

  /** `bdrv_all_snapshots_includes_bs`. */
  includedInSnapshots(node: BlockNode): boolean {
    if (node.readOnly) return false;
    return node.attachedTo !== undefined || node.parents.size === 0;
  }

  private autoName(): string {
    // QEMU: "#block" + counter + two random digits.
    const rnd = Math.floor(Math.random() * 100)
      .toString()
      .padStart(2, '0');
    return `#block${this.autoCounter++}${rnd}`;
  }

  /** `blockdev-add`: opens a node tree; throws QEMU's errors. */
  add(args: BlockdevArgs): BlockNode {
    const name = args['node-name'];
    if (typeof name !== 'string') throw qmpError("'node-name' must be specified for the root node");
    const created: BlockNode[] = [];
    try {
      const node = this.open(args, created);
      node.monitorOwned = true;
      return node;
    } catch (error) {
      for (const node of created) this.forget(node);
      throw error;
    }
  }

  private assignName(node: BlockNode, requested: string | undefined, created: BlockNode[]): void {
    if (requested !== undefined) {
      if (!idWellformed(requested)) throw qmpError(`Invalid node-name: '${requested}'`);
      if (this.find(requested)) throw qmpError(`Duplicate nodes with node-name='${requested}'`);
      if (requested.length >= 32) throw qmpError('Node name too long');
    }
    node.nodeName = requested ?? this.autoName();
    this.nodes.push(node);
    if (!created.includes(node)) created.push(node);
  }

  private forget(node: BlockNode): void {
    const i = this.nodes.indexOf(node);
    if (i >= 0) this.nodes.splice(i, 1);
    for (const { node: child } of node.children) child.parents.delete(node);
  }

  private lookupRef(ref: string): BlockNode {
    const node = this.find(ref);
    if (!node) throw qmpError(`Cannot find device='${ref}' nor node-name='${ref}'`);
    return node;
  }

  private openChild(ref: unknown, created: BlockNode[]): BlockNode {
    if (typeof ref === 'string') return this.lookupRef(ref);
    return this.open(ref as BlockdevArgs, created);
  }

  /**
   * Links a child. `created` (while opening) records the parent even before it has a name,
   * so a failure later in the same open (a duplicate node-name, a bad backing) drops the
   * reference it took on an existing child.
   */
  private link(parent: BlockNode, role: string, child: BlockNode, created?: BlockNode[]): void {
    parent.children.push({ role, node: child });
    child.parents.add(parent);
    if (created && !created.includes(parent)) created.push(parent);
  }

  private open(args: BlockdevArgs, created: BlockNode[]): BlockNode {
    const driver = args.driver;
    const readOnly = args['read-only'] === true;
    const requested = args['node-name'];
    switch (driver) {
      case 'file': {
        const filename = String(args.filename);
        const problem = this.host.storage.openError(filename);
        if (problem !== undefined) throw qmpError(`Could not open '${filename}': ${problem}`);
        const size = this.host.storage.stat(filename)?.size ?? 0;
        const node = new BlockNode('', 'file', filename, size, readOnly, requested === undefined, {
          path: filename,
        });
        this.assignName(node, requested, created);
        return node;
      }
      case 'null-co':
      case 'null-aio': {
        const size = typeof args.size === 'number' ? args.size : 1 << 30;
        const strong: Record<string, unknown> = {};
        for (const key of ['size', 'latency-ns', 'read-zeroes'])
          if (args[key] !== undefined) strong[key] = args[key];
        const node = new BlockNode(
          '',
          driver,
          `${driver}://`,
          size,
          readOnly,
          requested === undefined,
          { strong },
        );
        this.assignName(node, requested, created);
        return node;
      }
      case 'raw':
      case 'qcow2': {
        const file = this.openChild(args.file, created);
        let size = file.virtualSize;
        let extra: BlockNode['extra'] = {};
        if (driver === 'qcow2') {
          const header = file.extra.path
            ? readQcow2Header(this.host.storage.read(file.extra.path, 0, 65536))
            : undefined;
          if (!header) throw qmpError('Image is not in qcow2 format');
          size = header.size;
          // Opening read-write, QEMU rewrites the L1 table as whole sectors: an image from
          // qemu-img (file size 0x30008) grows to the next 512-byte boundary.
          const path = file.extra.path;
          const stat = path ? this.host.storage.stat(path) : undefined;
          if (!readOnly && path && stat && stat.size % 512 !== 0) {
            const padded = Math.ceil(stat.size / 512) * 512;
            this.host.storage.resize(path, padded);
            file.virtualSize = padded;
          }
          extra = {
            clusterSize: 1 << header.clusterBits,
            ...(header.backingFile !== undefined ? { backingFile: header.backingFile } : {}),
            ...(header.backingFormat !== undefined ? { backingFormat: header.backingFormat } : {}),
          };
        } else {
          if (typeof args.size === 'number') size = args.size;
        }
        const node = new BlockNode(
          '',
          driver,
          file.filename,
          size,
          readOnly,
          requested === undefined,
          extra,
        );
        this.link(node, 'file', file, created);
        this.assignName(node, requested, created);
        if (driver === 'qcow2') this.openBacking(node, args.backing, created);
        return node;
      }
      default:
        throw qmpError(`qmpkit fake-qmp does not model block driver '${driver}'`);
    }
  }

  private openBacking(node: BlockNode, backing: unknown, created: BlockNode[]): void {
    if (backing === null) return;
    if (backing !== undefined) {
      this.link(node, 'backing', this.openChild(backing, created), created);
      return;
    }
    const file = node.extra.backingFile;
    if (file === undefined) return;
    const fmt = node.extra.backingFormat ?? 'raw';
    // Backing layers QEMU opens by itself are read-only, their file nodes too.
    const inner: BlockNode = this.open(
      { driver: 'file', filename: file, 'read-only': true },
      created,
    );
    const opened = this.open(
      { driver: fmt === 'qcow2' ? 'qcow2' : 'raw', file: inner.nodeName, 'read-only': true },
      created,
    );
    this.link(node, 'backing', opened, created);
  }

  /** `blockdev-del`. */
  del(name: string): void {
    const node = this.find(name);
    if (!node) throw qmpError(`Failed to find node with node-name='${name}'`);
    if (node.attachedTo !== undefined || node.users.size > 0)
      throw qmpError(`Node ${name} is in use`);
    const asBacking = [...node.parents].find((p) => p.backing === node);
    if (asBacking)
      throw qmpError(
        `Node '${name}' is busy: node is used as backing hd of '${asBacking.nodeName}'`,
      );
    if (!node.monitorOwned) throw qmpError(`Node ${name} is not owned by the monitor`);
    if (node.parents.size > 0) throw qmpError(`Block device ${name} is in use`);
    this.release(node);
  }

  /** Drops a node and every child nobody else holds. */
  private release(node: BlockNode): void {
    this.forget(node);
    for (const { node: child } of node.children) {
      if (child.parents.size === 0 && !child.monitorOwned && child.attachedTo === undefined)
        this.release(child);
    }
  }

  // ---- info ---------------------------------------------------------------------------

  private imageInfo(node: BlockNode, flat: boolean): Record<string, unknown> {
    const stat = node.extra.path ? this.host.storage.stat(node.extra.path) : undefined;
    const fileNode = node.driver === 'file' ? node : node.child('file');
    const fileStat = fileNode?.extra.path ? this.host.storage.stat(fileNode.extra.path) : stat;
    const info: Record<string, unknown> = {
      filename: node.filename,
      format: node.driver,
      'dirty-flag': node.driver === 'null-co' || node.driver === 'null-aio' ? undefined : false,
      'actual-size': fileStat ? fileStat.allocated : node.driver.startsWith('null') ? 0 : undefined,
      // A file's length in whole 512-byte sectors (`bdrv_getlength` counts sectors).
      'virtual-size':
        node.driver === 'file'
          ? Math.ceil((stat?.size ?? node.virtualSize) / 512) * 512
          : node.virtualSize,
      'cluster-size': node.extra.clusterSize,
    };
    const backing = node.backing;
    if (node.extra.backingFile !== undefined) {
      info['backing-filename'] = node.extra.backingFile;
      info['full-backing-filename'] = backing?.filename ?? node.extra.backingFile;
      if (node.extra.backingFormat !== undefined)
        info['backing-filename-format'] = node.extra.backingFormat;
    }
    if (node.snapshots.length > 0) {
      info.snapshots = node.snapshots.map((s) => ({
        id: s.id,
        name: s.name,
        'vm-state-size': s.vmStateSize,
        'date-sec': s.dateSec,
        'date-nsec': s.dateNsec,
        'vm-clock-sec': Number(s.vmClockNs / 1_000_000_000n),
        'vm-clock-nsec': Number(s.vmClockNs % 1_000_000_000n),
      }));
    }
    if (node.driver === 'qcow2') {
      info['format-specific'] = {
        type: 'qcow2',
        data: {
          compat: '1.1',
          'lazy-refcounts': false,
          corrupt: false,
          'refcount-bits': 16,
          'extended-l2': false,
          'compression-type': 'zlib',
        },
      };
    }
    // A `file` branch of ImageInfoSpecific exists from QEMU 8.0 (extent-size-hint only on XFS).
    if (
      node.driver === 'file' &&
      enumValues(this.host.tables, 'ImageInfoSpecificKind').includes('file')
    )
      info['format-specific'] = { type: 'file', data: {} };
    if (!flat && backing) info['backing-image'] = this.imageInfo(backing, flat);
    return info;
  }

  deviceInfo(node: BlockNode, flat: boolean): Record<string, unknown> {
    let depth = 0;
    for (let b = node.backing; b; b = b.backing) depth++;
    return {
      file: node.filename,
      'node-name': node.nodeName,
      ro: node.readOnly,
      drv: node.driver,
      backing_file: node.backing?.filename,
      backing_file_depth: flat ? 0 : depth,
      encrypted: false,
      detect_zeroes: 'off',
      bps: 0,
      bps_rd: 0,
      bps_wr: 0,
      iops: 0,
      iops_rd: 0,
      iops_wr: 0,
      image: this.imageInfo(node, flat),
      cache: { writeback: true, direct: false, 'no-flush': false },
      write_threshold: 0,
      ...(node.bitmaps.length > 0
        ? {
            'dirty-bitmaps': node.bitmaps.map((b) => ({
              name: b.name,
              count: b.count,
              granularity: b.granularity,
              recording: b.recording,
              busy: b.busy,
              persistent: b.persistent,
              ...(b.inconsistent ? { inconsistent: true } : {}),
            })),
          }
        : {}),
      // BlockDeviceInfo.active (QEMU ≥ 10.0): the fake has no inactive nodes.
      ...(membersOf(this.host.tables, 'BlockDeviceInfo').has('active') ? { active: true } : {}),
    };
  }

  /** `query-named-block-nodes`: newest name first (QEMU prepends while walking its list). */
  namedNodes(flat: boolean): Record<string, unknown>[] {
    return [...this.nodes].reverse().map((n) => this.deviceInfo(n, flat));
  }

  // ---- external snapshots ---------------------------------------------------------------

  /** `bdrv_append`: the overlay takes the node's place for all its parents. */
  private append(overlay: BlockNode, base: BlockNode): void {
    for (const parent of [...base.parents]) {
      for (const c of parent.children) if (c.node === base) c.node = overlay;
      base.parents.delete(parent);
      overlay.parents.add(parent);
    }
    if (base.attachedTo !== undefined) {
      overlay.attachedTo = base.attachedTo;
      base.attachedTo = undefined;
    }
    this.link(overlay, 'backing', base);
  }

  private checkOverlay(overlay: BlockNode): void {
    if (overlay.attachedTo !== undefined || overlay.parents.size > 0)
      throw qmpError('The overlay is already in use');
    if (overlay.backing) throw qmpError('The overlay already has a backing image');
    if (overlay.driver !== 'qcow2') throw qmpError('The overlay does not support backing images');
  }

  /** QEMU's `bdrv_lookup_bs`: a device's root or a node name, else its error. */
  lookupBs(device: string | undefined, nodeName: string | undefined): BlockNode {
    const node =
      (device !== undefined ? this.find(device) : undefined) ??
      (nodeName !== undefined ? this.find(nodeName) : undefined);
    if (!node)
      throw qmpError(`Cannot find device='${device ?? ''}' nor node-name='${nodeName ?? ''}'`);
    return node;
  }

  /** Prepares an external snapshot action; returns commit/abort. */
  snapshotAction(
    type: 'blockdev-snapshot' | 'blockdev-snapshot-sync',
    data: Record<string, unknown>,
  ): { commit(): void; abort(): void } {
    if (type === 'blockdev-snapshot') {
      const base = this.lookupBs(data.node as string, data.node as string);
      const overlay = this.lookupRef(data.overlay as string);
      this.checkOverlay(overlay);
      this.append(overlay, base);
      return {
        commit: () => this.commitSnapshot(overlay, base),
        abort: () => this.undoAppend(overlay, base),
      };
    }
    const device = data.device as string | undefined;
    const nodeName = data['node-name'] as string | undefined;
    const base = this.lookupBs(device, nodeName);
    const format = (data.format as string | undefined) ?? 'qcow2';
    const snapshotNodeName = data['snapshot-node-name'] as string | undefined;
    if (nodeName !== undefined && snapshotNodeName === undefined)
      throw qmpError('New overlay node-name missing');
    if (snapshotNodeName !== undefined && this.find(snapshotNodeName))
      throw qmpError('New overlay node-name already in use');
    const file = String(data['snapshot-file']);
    const mode = (data.mode as string | undefined) ?? 'absolute-paths';
    if (mode !== 'existing') {
      if (format !== 'qcow2')
        throw qmpError(`qmpkit fake-qmp does not model creating '${format}' images`);
      const image = createQcow2Image(base.virtualSize, {
        backingFile: base.filename,
        backingFormat: base.driver,
      });
      this.host.storage.create(file, 0);
      this.host.storage.write(file, 0, image);
    }
    const created: BlockNode[] = [];
    let overlay: BlockNode;
    try {
      const fileNode = this.open({ driver: 'file', filename: file }, created);
      overlay = this.open(
        {
          driver: format,
          file: fileNode.nodeName,
          backing: null,
          ...(snapshotNodeName !== undefined ? { 'node-name': snapshotNodeName } : {}),
        },
        created,
      );
      this.checkOverlay(overlay);
    } catch (error) {
      // The nodes opened for the refused overlay go away again (QEMU drops its references).
      for (const node of created) this.forget(node);
      throw error;
    }
    this.append(overlay, base);
    return {
      commit: () => this.commitSnapshot(overlay, base),
      abort: () => {
        this.undoAppend(overlay, base);
        for (const node of created) this.forget(node);
      },
    };
  }

  /**
   * `external_snapshot_commit` + clean: the old top is reopened read-only (with the children
   * it opened itself), and the transaction drops its reference to the overlay — which frees
   * an overlay nobody else holds (a `blockdev-snapshot-sync` on a node without a device).
   */
  private commitSnapshot(overlay: BlockNode, base: BlockNode): void {
    const readOnly = (node: BlockNode) => {
      node.readOnly = true;
      for (const { node: child } of node.children) if (!child.monitorOwned) readOnly(child);
    };
    readOnly(base);
    if (overlay.parents.size === 0 && overlay.attachedTo === undefined && !overlay.monitorOwned) {
      const i = overlay.children.findIndex((c) => c.node === base);
      if (i >= 0) overlay.children.splice(i, 1);
      base.parents.delete(overlay);
      this.release(overlay);
    }
  }

  /**
   * `bdrv_replace_node`: every parent of `from` (and the device using it) uses `to` instead —
   * a mirror's or active commit's pivot.
   */
  replaceNode(from: BlockNode, to: BlockNode): void {
    for (const parent of [...from.parents]) {
      if (parent === to) continue;
      for (const c of parent.children) if (c.node === from) c.node = to;
      from.parents.delete(parent);
      to.parents.add(parent);
    }
    if (from.attachedTo !== undefined) {
      to.attachedTo = from.attachedTo;
      from.attachedTo = undefined;
    }
  }

  /**
   * `bdrv_drop_intermediate` (inner commit, stream): `overlay`'s backing becomes `base` (or
   * nothing) and the image header names it; layers nobody else holds are closed.
   */
  dropIntermediate(overlay: BlockNode, base: BlockNode | undefined): void {
    const i = overlay.children.findIndex((c) => c.role === 'backing');
    if (i < 0) return;
    const old = overlay.children[i]!.node;
    if (old === base) return;
    old.parents.delete(overlay);
    if (base) {
      overlay.children[i] = { role: 'backing', node: base };
      base.parents.add(overlay);
      overlay.extra.backingFile = base.filename;
      overlay.extra.backingFormat = base.driver;
    } else {
      overlay.children.splice(i, 1);
      delete overlay.extra.backingFile;
      delete overlay.extra.backingFormat;
    }
    if (old.parents.size === 0 && !old.monitorOwned && old.attachedTo === undefined)
      this.release(old);
  }

  private undoAppend(overlay: BlockNode, base: BlockNode): void {
    const i = overlay.children.findIndex((c) => c.role === 'backing' && c.node === base);
    if (i >= 0) overlay.children.splice(i, 1);
    base.parents.delete(overlay);
    for (const parent of [...overlay.parents]) {
      for (const c of parent.children) if (c.node === overlay) c.node = base;
      overlay.parents.delete(parent);
      base.parents.add(parent);
    }
    if (overlay.attachedTo !== undefined) {
      base.attachedTo = overlay.attachedTo;
      overlay.attachedTo = undefined;
    }
  }

  /** Creates an image file for `blockdev-create` (file and qcow2 drivers). */
  createImage(options: Record<string, unknown>): void {
    const driver = options.driver;
    if (driver === 'file') {
      const filename = String(options.filename);
      this.host.storage.create(filename, Number(options.size ?? 0));
      return;
    }
    if (driver === 'qcow2') {
      const ref = options.file;
      const file = typeof ref === 'string' ? this.lookupRef(ref) : undefined;
      if (!file?.extra.path)
        throw qmpError('qmpkit fake-qmp models blockdev-create qcow2 only on a file node');
      const image = createQcow2Image(Number(options.size), {
        ...(typeof options['backing-file'] === 'string'
          ? { backingFile: options['backing-file'] }
          : {}),
        ...(typeof options['backing-fmt'] === 'string'
          ? { backingFormat: options['backing-fmt'] }
          : {}),
      });
      this.host.storage.create(file.extra.path, 0);
      this.host.storage.write(file.extra.path, 0, image);
      file.virtualSize = image.length;
      return;
    }
    throw qmpError(`qmpkit fake-qmp does not model blockdev-create for driver '${String(driver)}'`);
  }

  /**
   * `x-debug-query-block-graph`, the driver part only: every node (ids are positions, QEMU's are
   * pointers) and each parent → child edge with its role. Backends (devices, jobs, exports) and
   * permissions are not modelled (`perm`/`shared-perm` are empty): what a reader of the chain
   * needs, not a picture of QEMU's permission system.
   */
  private debugGraph(): { nodes: unknown[]; edges: unknown[] } {
    const ids = new Map(this.nodes.map((n, i) => [n, i + 1]));
    return {
      nodes: this.nodes.map((n) => ({ id: ids.get(n), type: 'block-driver', name: n.nodeName })),
      edges: this.nodes.flatMap((n) =>
        n.children.map((c) => ({
          parent: ids.get(n),
          child: ids.get(c.node),
          name: c.role,
          perm: [],
          'shared-perm': [],
        })),
      ),
    };
  }

  handlers(table: HandlerTable): void {
    table.set(
      'blockdev-add',
      handler<BlockdevArgs>((args) => {
        this.add(args);
      }),
    );
    table.set(
      'blockdev-del',
      handler<{ 'node-name': string }>((args) => {
        this.del(args['node-name']);
      }),
    );
    table.set(
      'query-named-block-nodes',
      handler<{ flat?: boolean }>((args) => this.namedNodes(args.flat === true)),
    );
    table.set('x-debug-query-block-graph', () => this.debugGraph());
    table.set(
      'blockdev-snapshot',
      handler<Record<string, unknown>>((args) => {
        this.snapshotAction('blockdev-snapshot', args).commit();
      }),
    );
    table.set(
      'blockdev-snapshot-sync',
      handler<Record<string, unknown>>((args) => {
        this.snapshotAction('blockdev-snapshot-sync', args).commit();
      }),
    );
    table.set(
      'transaction',
      handler<{ actions: { type: string; data: Record<string, unknown> }[] }>((args) => {
        const done: { commit(): void; abort(): void }[] = [];
        try {
          for (const action of args.actions) {
            if (action.type === 'abort') throw qmpError('Transaction aborted using Abort action');
            const other = this.actions.get(action.type);
            if (other) {
              done.push(other(action.data));
              continue;
            }
            if (action.type !== 'blockdev-snapshot' && action.type !== 'blockdev-snapshot-sync')
              throw qmpError(`qmpkit fake-qmp does not model transaction action '${action.type}'`);
            done.push(this.snapshotAction(action.type, action.data));
          }
        } catch (error) {
          for (const d of done.reverse()) d.abort();
          throw error;
        }
        for (const d of done) d.commit();
      }),
    );
  }
}
