import { describe, expectTypeOf, it } from 'vitest';
import type {
  BlockdevDriver,
  BlockdevOptions,
  BlockJobCompletedEvent,
  Commands,
  Events,
  RunState,
  StatusInfo,
} from './gen/qemu-7.2/index.generated.js';
import { RunState as RunStateValues } from './gen/qemu-7.2/index.generated.js';

describe('@qmpkit/qapi/qemu-7.2 types', () => {
  it('query-status takes no arguments and returns StatusInfo with a RunState', () => {
    expectTypeOf<Commands['query-status']['args']>().toEqualTypeOf<undefined>();
    expectTypeOf<Commands['query-status']['returns']>().toEqualTypeOf<StatusInfo>();
    expectTypeOf<StatusInfo['status']>().toEqualTypeOf<RunState>();
    expectTypeOf<'running'>().toExtend<RunState>();
    expectTypeOf<'walking'>().not.toExtend<RunState>();
    expectTypeOf(RunStateValues['finish-migrate']).toEqualTypeOf<'finish-migrate'>();
  });

  it('blockdev-add arguments are a union discriminated by driver', () => {
    type Args = Commands['blockdev-add']['args'];
    expectTypeOf<Args>().toEqualTypeOf<BlockdevOptions>();
    expectTypeOf<Args['driver']>().toEqualTypeOf<BlockdevDriver>();
    const narrow = (options: Args) => {
      if (options.driver === 'qcow2') {
        expectTypeOf(options).toHaveProperty('file');
        expectTypeOf(options).toHaveProperty('lazy-refcounts');
        return options['lazy-refcounts'];
      }
      if (options.driver === 'file') {
        expectTypeOf(options.filename).toEqualTypeOf<string>();
      }
      return undefined;
    };
    expectTypeOf(narrow).returns.toEqualTypeOf<boolean | undefined>();
    // A qcow2 node needs its `file`; a file node its `filename`.
    // @ts-expect-error -- missing `file`
    const bad: Args = { driver: 'qcow2', 'node-name': 'disk0' };
    // @ts-expect-error -- `filename` belongs to the file driver, not qcow2
    const wrong: Args = { driver: 'qcow2', file: 'f', filename: 'x' };
    const good: Args = {
      driver: 'qcow2',
      'node-name': 'disk0',
      file: { driver: 'file', filename: 'disk.qcow2' },
    };
    expectTypeOf([bad, wrong, good]).toBeArray();
  });

  it('optional members are optional and exact', () => {
    type Add = Commands['blockdev-snapshot-sync']['args'];
    const minimal: Add = { 'snapshot-file': 'x.qcow2' };
    // @ts-expect-error -- exactOptionalPropertyTypes: undefined is not a value
    const withUndefined: Add = { 'snapshot-file': 'x.qcow2', format: undefined };
    expectTypeOf([minimal, withUndefined]).toBeArray();
  });

  it('commands without a return type return an empty object; lists stay lists', () => {
    expectTypeOf<Commands['stop']['returns']>().toEqualTypeOf<Record<string, never>>();
    expectTypeOf<Commands['query-block']['returns']>().toBeArray();
    expectTypeOf<Commands['query-block']['returns'][number]['device']>().toEqualTypeOf<string>();
  });

  it('events map wire names to their data', () => {
    expectTypeOf<Events['BLOCK_JOB_COMPLETED']['data']>().toEqualTypeOf<BlockJobCompletedEvent>();
    expectTypeOf<Events['STOP']['data']>().toEqualTypeOf<undefined>();
    expectTypeOf<Events['JOB_STATUS_CHANGE']['data']['status']>().toExtend<string>();
  });

  it('device_add takes any device property besides driver/bus/id', () => {
    const args: Commands['device_add']['args'] = {
      driver: 'virtio-blk-pci',
      id: 'vd0',
      drive: 'disk0',
      'num-queues': 2,
    };
    // @ts-expect-error -- driver is still required
    const noDriver: Commands['device_add']['args'] = { id: 'vd0' };
    expectTypeOf([args, noDriver]).toBeArray();
  });

  it('marks commands allowed out of band', () => {
    expectTypeOf<Commands['migrate-pause']['oob']>().toEqualTypeOf<true>();
  });
});
