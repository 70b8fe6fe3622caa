/**
 * Dirty bitmaps: `block-dirty-bitmap-add/-remove/-enable/-disable/-clear/-merge`, also as
 * `transaction` actions, shown as `dirty-bitmaps` of `query-named-block-nodes`. Guest writes
 * are not modelled, so a bitmap's count is 0 unless the test sets it (`node.bitmaps`); what is
 * modelled is who may use a bitmap: one held by a backup job or an NBD export is busy.
 */
import { qmpError } from '../errors.js';
import type { BlockGraph, BlockNode, DirtyBitmap, TransactionAction } from './block.js';
import { type HandlerTable, handler } from './host.js';

interface BitmapArgs {
  node: string;
  name: string;
}

interface AddArgs extends BitmapArgs {
  granularity?: number;
  persistent?: boolean;
  disabled?: boolean;
}

interface MergeArgs {
  node: string;
  target: string;
  bitmaps: (string | { node: string; name: string })[];
}

/** QEMU's default granularity: the image's cluster size (64 KiB when it has none). */
function defaultGranularity(node: BlockNode): number {
  return node.extra.clusterSize ?? 65536;
}

export class DirtyBitmaps {
  constructor(private readonly block: BlockGraph) {}

  /** The bitmap on a node, or QEMU's error (`busy` refused unless `allowBusy`). */
  find(
    nodeName: string,
    name: string,
    allowBusy = false,
  ): { node: BlockNode; bitmap: DirtyBitmap } {
    const node = this.block.lookupBs(nodeName, nodeName);
    const bitmap = node.bitmaps.find((b) => b.name === name);
    if (!bitmap) throw qmpError(`Dirty bitmap '${name}' not found`);
    if (!allowBusy) checkUsable(bitmap);
    return { node, bitmap };
  }

  private prepareAdd(args: AddArgs): TransactionAction {
    const node = this.block.lookupBs(args.node, args.node);
    if (args.name === '') throw qmpError('Bitmap name cannot be empty');
    if (args.name.length > 1023) throw qmpError('Bitmap name is too long');
    const granularity = args.granularity ?? defaultGranularity(node);
    if (granularity < 512 || (granularity & (granularity - 1)) !== 0)
      throw qmpError('Granularity must be power of 2 and at least 512');
    if (node.bitmaps.some((b) => b.name === args.name))
      throw qmpError(`Bitmap already exists: ${args.name}`);
    const persistent = args.persistent === true;
    if (persistent && node.driver !== 'qcow2')
      throw qmpError(`Can't store persistent bitmaps to ${node.nodeName}: Operation not supported`);
    const bitmap: DirtyBitmap = {
      name: args.name,
      granularity,
      recording: args.disabled !== true,
      persistent,
      busy: false,
      inconsistent: false,
      count: 0,
    };
    node.bitmaps.unshift(bitmap);
    return {
      commit: () => {},
      abort: () => {
        const i = node.bitmaps.indexOf(bitmap);
        if (i >= 0) node.bitmaps.splice(i, 1);
      },
    };
  }

  private prepareRemove(args: BitmapArgs): TransactionAction {
    const { node, bitmap } = this.find(args.node, args.name);
    const at = node.bitmaps.indexOf(bitmap);
    node.bitmaps.splice(at, 1);
    return { commit: () => {}, abort: () => node.bitmaps.splice(at, 0, bitmap) };
  }

  private prepareRecording(args: BitmapArgs, recording: boolean): TransactionAction {
    const { bitmap } = this.find(args.node, args.name);
    const before = bitmap.recording;
    bitmap.recording = recording;
    return {
      commit: () => {},
      abort: () => {
        bitmap.recording = before;
      },
    };
  }

  private prepareClear(args: BitmapArgs): TransactionAction {
    const { bitmap } = this.find(args.node, args.name);
    const before = bitmap.count;
    bitmap.count = 0;
    return {
      commit: () => {},
      abort: () => {
        bitmap.count = before;
      },
    };
  }

  private prepareMerge(args: MergeArgs): TransactionAction {
    const { bitmap: target } = this.find(args.node, args.target);
    const sources = args.bitmaps.map((ref) =>
      typeof ref === 'string'
        ? this.find(args.node, ref, true).bitmap
        : this.find(ref.node, ref.name, true).bitmap,
    );
    const before = target.count;
    // Without guest writes the model keeps counts only: a union has at least the larger one.
    target.count = Math.max(target.count, ...sources.map((b) => b.count));
    return {
      commit: () => {},
      abort: () => {
        target.count = before;
      },
    };
  }

  handlers(table: HandlerTable): void {
    const add = <A>(name: string, prepare: (args: A) => TransactionAction) => {
      this.block.addAction(name, prepare);
      table.set(
        name,
        handler<A>((args) => {
          prepare(args).commit();
        }),
      );
    };
    add<AddArgs>('block-dirty-bitmap-add', (a) => this.prepareAdd(a));
    add<BitmapArgs>('block-dirty-bitmap-remove', (a) => this.prepareRemove(a));
    add<BitmapArgs>('block-dirty-bitmap-enable', (a) => this.prepareRecording(a, true));
    add<BitmapArgs>('block-dirty-bitmap-disable', (a) => this.prepareRecording(a, false));
    add<BitmapArgs>('block-dirty-bitmap-clear', (a) => this.prepareClear(a));
    add<MergeArgs>('block-dirty-bitmap-merge', (a) => this.prepareMerge(a));
  }
}

/** `bdrv_dirty_bitmap_check`: a busy or inconsistent bitmap cannot be changed or used. */
export function checkUsable(bitmap: DirtyBitmap): void {
  if (bitmap.busy)
    throw qmpError(
      `Bitmap '${bitmap.name}' is currently in use by another operation and cannot be used`,
    );
  if (bitmap.inconsistent)
    throw qmpError(
      `Bitmap '${bitmap.name}' is inconsistent and cannot be used\nTry block-dirty-bitmap-remove to delete this bitmap from disk`,
    );
}
