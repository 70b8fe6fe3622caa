import { describe, expect, it } from 'vitest';
import { model72 } from '../cli.test-support.js';
import { type CompletionContext, complete, transactionActions } from './complete.js';
import { BUILTINS } from './engine.js';

async function qmp(inTransaction = false): Promise<CompletionContext> {
  return { mode: 'qmp', model: await model72(), inTransaction, builtins: BUILTINS };
}

describe('completion from the live schema (QEMU 7.2 capture)', () => {
  it('command names: a unique prefix completes with a space; an ambiguous one lists', async () => {
    const ctx = await qmp();
    expect(complete('query-statu', ctx)).toEqual([['query-status '], 'query-statu']);
    const [hits, part] = complete('query-st', ctx);
    expect(part).toBe('query-st');
    expect(hits).toEqual(['query-stats', 'query-stats-schemas', 'query-status']);
    expect(complete('', ctx)[0]).toContain('help');
    expect(complete('transac', ctx)[0]).toEqual(['transaction', 'transaction(']);
  });

  it('argument keys end in = (or . for objects), skip keys already given, follow the union tag', async () => {
    const ctx = await qmp();
    expect(complete('blockdev-add dri', ctx)).toEqual([['driver='], 'dri']);
    const base = complete('blockdev-add ', ctx)[0];
    expect(base).toContain('node-name=');
    expect(base).toContain('cache.');
    expect(base).not.toContain('lazy-refcounts='); // a qcow2 member: not before driver=qcow2
    expect(complete('blockdev-add driver=qcow2 lazy', ctx)[0]).toEqual(['lazy-refcounts=']);
    expect(complete('blockdev-add lazy', ctx)[0]).toEqual([]);
    expect(complete('blockdev-add driver=qcow2 node-name=a node-', ctx)[0]).toEqual([]);
    expect(complete('blockdev-add cache.', ctx)[0]).toEqual(['cache.direct=', 'cache.no-flush=']);
  });

  it('values of enum, bool and alternate keys', async () => {
    const ctx = await qmp();
    expect(complete('blockdev-add driver=qco', ctx)[0]).toEqual(['driver=qcow', 'driver=qcow2']);
    expect(complete('blockdev-add driver=qcow2', ctx)[0]).toEqual(['driver=qcow2 ']);
    expect(complete('blockdev-add driver=null-co read-zeroes=', ctx)[0]).toEqual([
      'read-zeroes=false',
      'read-zeroes=true',
    ]);
    expect(complete('blockdev-add detect-zeroes=u', ctx)[0]).toEqual(['detect-zeroes=unmap ']);
  });

  it('nothing to offer inside JSON, after unknown commands, or in an open quote', async () => {
    const ctx = await qmp();
    expect(complete('blockdev-add {"dri', ctx)[0]).toEqual([]);
    expect(complete('no-such-command a', ctx)[0]).toEqual([]);
    expect(complete('blockdev-add node-name="a b', ctx)[0]).toEqual([]);
  });

  it('help completes command names; transaction( completes action types and their data keys', async () => {
    const ctx = await qmp();
    expect(complete('help query-versio', ctx)[0]).toEqual(['query-version ']);
    const actions = transactionActions(ctx.model!);
    expect(actions).toContain('blockdev-snapshot-sync');
    expect(complete('transaction( block-dirty-bitmap-a', ctx)[0]).toEqual([
      'block-dirty-bitmap-add ',
    ]);
    const inside = await qmp(true);
    expect(complete('', inside)[0]).toContain(')');
    expect(complete('block-dirty-bitmap-add gran', inside)[0]).toEqual(['granularity=']);
  });

  it('HMP mode completes command names and info topics from help output', () => {
    const ctx: CompletionContext = {
      mode: 'hmp',
      model: undefined,
      inTransaction: false,
      builtins: [],
      hmp: { commands: ['c', 'cont', 'info', 'stop'], info: ['status', 'snapshots', 'block'] },
    };
    expect(complete('con', ctx)[0]).toEqual(['cont ']);
    expect(complete('info st', ctx)[0]).toEqual(['status ']);
  });
});
