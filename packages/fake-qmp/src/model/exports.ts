/**
 * The NBD server and block exports as QMP sees them: `nbd-server-start`/`-stop`,
 * `block-export-add`/`-del` (type nbd, writable, bitmaps), `query-block-exports`,
 * BLOCK_EXPORT_DELETED. The fake keeps the server's address but does not listen on it: no NBD
 * data is served (an NBD client connecting to the address finds nothing there).
 */
import { qmpError } from '../errors.js';
import type { BlockGraph, BlockNode, DirtyBitmap } from './block.js';
import { type HandlerTable, handler, type ModelHost } from './host.js';

interface Export {
  readonly id: string;
  readonly name: string;
  readonly node: BlockNode;
  readonly writable: boolean;
  readonly bitmaps: readonly DirtyBitmap[];
}

/** `block-export-add`'s arguments as the fake reads them (type `nbd` only). */
export interface ExportAddArgs {
  readonly type: string;
  readonly id: string;
  readonly 'node-name': string;
  readonly name?: string;
  readonly writable?: boolean;
  readonly bitmaps?: readonly string[];
}

export class BlockExports {
  /** Newest first, like QEMU's export list. */
  private readonly list: Export[] = [];
  /** The address `nbd-server-start` was given, while the server runs. */
  private server: unknown;

  constructor(
    private readonly host: ModelHost,
    private readonly block: BlockGraph,
  ) {}

  /** The running NBD server's address (as given to `nbd-server-start`), or undefined. */
  get serverAddress(): unknown {
    return this.server;
  }

  /** `nbd-server-start` (also the storage daemon's `--nbd-server`). */
  start(addr: unknown): void {
    if (this.server !== undefined) throw qmpError('NBD server already running');
    this.server = addr;
  }

  /** `block-export-add` (also the storage daemon's `--export`). */
  addExport(args: ExportAddArgs): void {
    this.add(args);
  }

  private add(args: ExportAddArgs): void {
    if (args.type !== 'nbd')
      throw qmpError(`qmpkit fake-qmp does not model block exports of type '${args.type}'`);
    if (this.server === undefined) throw qmpError('NBD server not running');
    if (this.list.some((e) => e.id === args.id))
      throw qmpError(`Block export id '${args.id}' is already in use`);
    const node = this.block.lookupBs(undefined, args['node-name']);
    const name = args.name ?? args['node-name'];
    if (this.list.some((e) => e.name === name))
      throw qmpError(`NBD server already has export named '${name}'`);
    const bitmaps = (args.bitmaps ?? []).map((b) => {
      for (let n: BlockNode | undefined = node; n; n = n.backing ?? n.child('file')) {
        const found = n.bitmaps.find((x) => x.name === b);
        if (found) {
          if (found.busy) throw qmpError(`Bitmap '${b}' is in use`);
          return found;
        }
      }
      throw qmpError(`Bitmap '${b}' is not found`);
    });
    if (args.writable === true && node.readOnly)
      throw qmpError('Cannot export read-only node as writable');
    for (const b of bitmaps) b.busy = true;
    node.users.add(`export:${args.id}`);
    this.list.unshift({ id: args.id, name, node, writable: args.writable === true, bitmaps });
  }

  /** Every export closed (QEMU's `blk_exp_close_all` at exit), in the version's order. */
  closeAll(): void {
    const newestFirst = [...this.list];
    for (const entry of this.host.facts.exitClosesExportsNewestFirst
      ? newestFirst
      : newestFirst.reverse())
      this.remove(entry);
  }

  private remove(entry: Export): void {
    const i = this.list.indexOf(entry);
    if (i >= 0) this.list.splice(i, 1);
    for (const b of entry.bitmaps) b.busy = false;
    entry.node.users.delete(`export:${entry.id}`);
    this.host.emit('BLOCK_EXPORT_DELETED', { id: entry.id });
  }

  handlers(table: HandlerTable): void {
    table.set(
      'nbd-server-start',
      handler<{ addr: unknown }>((args) => this.start(args.addr)),
    );
    table.set('nbd-server-stop', () => {
      if (this.server === undefined) throw qmpError('NBD server not running');
      for (const entry of [...this.list]) this.remove(entry);
      this.server = undefined;
    });
    table.set(
      'block-export-add',
      handler<ExportAddArgs>((args) => this.add(args)),
    );
    table.set(
      'block-export-del',
      handler<{ id: string }>((args) => {
        const entry = this.list.find((e) => e.id === args.id);
        if (!entry) throw qmpError(`Export '${args.id}' is not found`);
        this.remove(entry);
      }),
    );
    table.set('query-block-exports', () =>
      this.list.map((e) => ({
        type: 'nbd',
        id: e.id,
        'node-name': e.node.nodeName,
        'shutting-down': false,
      })),
    );
  }
}
