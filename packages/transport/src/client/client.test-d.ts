import type { Commands, Events } from '@qmpkit/qapi';
import { describe, expectTypeOf, test } from 'vitest';
import { connect, defineBindings, type QmpClient, type QmpEvent } from '../index.js';

declare const qmp: QmpClient;

describe('execute', () => {
  test('returns the bindings’ type for the command', () => {
    expectTypeOf(qmp.execute('query-status')).resolves.toEqualTypeOf<
      Commands['query-status']['returns']
    >();
    expectTypeOf(qmp.execute('query-block')).resolves.toEqualTypeOf<
      Commands['query-block']['returns']
    >();
    expectTypeOf(qmp.execute('stop')).resolves.toEqualTypeOf<Record<string, never>>();
    expectTypeOf(qmp.hmp('info status')).resolves.toBeString();
  });

  test('commands without arguments take none', () => {
    qmp.execute('stop');
    qmp.execute('stop', undefined, { timeout: 100 });
    // @ts-expect-error stop takes no arguments
    qmp.execute('stop', { now: true });
  });

  test('all-optional arguments may be omitted or given', () => {
    qmp.execute('qmp_capabilities');
    qmp.execute('qmp_capabilities', { enable: ['oob'] });
    // @ts-expect-error not a capability
    qmp.execute('qmp_capabilities', { enable: ['obb'] });
  });

  test('required arguments are required and checked', () => {
    qmp.execute('human-monitor-command', { 'command-line': 'info status' });
    // @ts-expect-error command-line is required
    qmp.execute('human-monitor-command');
    // @ts-expect-error command-line is a string
    qmp.execute('human-monitor-command', { 'command-line': 1 });
    // @ts-expect-error unknown member
    qmp.execute('human-monitor-command', { 'command-line': 'x', bogus: 1 });
  });

  test('union arguments are narrowed by their discriminator', () => {
    qmp.execute('blockdev-add', { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' });
    qmp.execute('blockdev-add', { driver: 'file', 'node-name': 'f', filename: '/tmp/x' });
    // @ts-expect-error no such driver
    qmp.execute('blockdev-add', { driver: 'qcow3', file: 'x' });
    // @ts-expect-error filename belongs to the file branch, not qcow2
    qmp.execute('blockdev-add', { driver: 'qcow2', file: 'x', filename: '/tmp/x' });
  });

  test('command names are checked', () => {
    // @ts-expect-error typo
    qmp.execute('query-stauts');
    expectTypeOf(qmp.executeUnchecked('x-anything', { a: 1 })).resolves.toBeUnknown();
  });

  test('executeOob only takes OOB-capable commands', () => {
    qmp.executeOob('migrate-recover', { uri: 'tcp:127.0.0.1:1' });
    qmp.executeOob('query-yank');
    // @ts-expect-error query-status is not allowed out of band
    qmp.executeOob('query-status');
  });
});

describe('events', () => {
  test('listeners get typed data', () => {
    qmp.on('STOP', (e) => {
      expectTypeOf(e.event).toEqualTypeOf<'STOP'>();
      expectTypeOf(e.data).toEqualTypeOf<undefined>();
      expectTypeOf(e.timestamp.seconds).toBeNumber();
    });
    qmp.on('JOB_STATUS_CHANGE', (e) => {
      expectTypeOf(e.data).toEqualTypeOf<Events['JOB_STATUS_CHANGE']['data']>();
    });
    // @ts-expect-error typo in an event name
    qmp.on('JOB_STATUS_CHANGED', () => {});
  });

  test('iterators and expectations narrow by name', async () => {
    for await (const e of qmp.events({ names: ['STOP', 'RESUME'] })) {
      expectTypeOf(e.event).toEqualTypeOf<'STOP' | 'RESUME'>();
    }
    const job = qmp.expectEvent('JOB_STATUS_CHANGE', (e) => e.data.status === 'concluded');
    expectTypeOf(job.wait()).resolves.toEqualTypeOf<QmpEvent<Events, 'JOB_STATUS_CHANGE'>>();
    // @ts-expect-error not a status
    qmp.expectEvent('JOB_STATUS_CHANGE', (e) => e.data.status === 'finished');
  });
});

describe('capability queries', () => {
  test('names, members, values, branches and features are checked', () => {
    qmp.has('snapshot-save');
    qmp.has('JOB_STATUS_CHANGE', { member: 'status', value: 'concluded' });
    qmp.has('blockdev-add', { member: 'driver', value: 'qcow2' });
    qmp.has('blockdev-add', { when: { driver: 'qcow2' }, member: 'data-file' });
    qmp.has('block-commit', { member: 'base', feature: 'deprecated' });
    qmp.has('x-query-irq', { feature: 'unstable' });
    qmp.has('migrate-set-capabilities', {
      member: 'capabilities',
      inner: { member: 'capability', value: 'background-snapshot' },
    });
    qmp.has('blockdev-create', {
      member: 'options',
      inner: { when: { driver: 'qcow2' }, member: 'data-file' },
    });
    qmp.has('migrate-set-capabilities', {
      member: 'capabilities',
      // @ts-expect-error mapped-ram is not a 7.2 migration capability
      inner: { member: 'capability', value: 'mapped-ram' },
    });
    // @ts-expect-error typo in a command name
    qmp.has('snapshot-sav');
    // @ts-expect-error typo in a member
    qmp.has('blockdev-add', { member: 'discrad' });
    // @ts-expect-error not a driver
    qmp.has('blockdev-add', { member: 'driver', value: 'qcow3' });
    // @ts-expect-error filename is not a member of the qcow2 branch
    qmp.has('blockdev-add', { when: { driver: 'qcow2' }, member: 'filename' });
    // @ts-expect-error typo in a feature
    qmp.has('block-commit', { member: 'base', feature: 'deprecatd' });
    // discard-no-unref is newer than 7.2: with 7.2 bindings the query does not compile.
    // @ts-expect-error not in QEMU 7.2's schema
    qmp.has('blockdev-add', { when: { driver: 'qcow2' }, member: 'discard-no-unref' });
  });
});

describe('jobs', () => {
  test('runJob takes job commands; job-id is optional', () => {
    qmp.runJob('snapshot-save', { tag: 't', vmstate: 'disk0', devices: ['disk0'] });
    qmp.runJob('blockdev-create', {
      'job-id': 'c1',
      options: { driver: 'file', filename: '/tmp/x', size: 1 },
    });
    // @ts-expect-error query-status is not a job
    qmp.runJob('query-status', {});
    // @ts-expect-error devices is required
    qmp.runJob('snapshot-save', { tag: 't', vmstate: 'disk0' });
  });
});

describe('bindings', () => {
  interface MyCommands {
    'x-hello': { args: { name: string }; returns: { greeting: string } };
    ping: { args: undefined; returns: Record<string, never> };
  }
  interface MyEvents {
    HELLO: { data: { name: string } };
  }

  test('connect infers the maps from defineBindings', async () => {
    const client = await connect('unix:/tmp/x', {
      bindings: defineBindings<MyCommands, MyEvents>(),
    });
    expectTypeOf(client).toEqualTypeOf<QmpClient<MyCommands, MyEvents, never>>();
    expectTypeOf(client.execute('x-hello', { name: 'a' })).resolves.toEqualTypeOf<{
      greeting: string;
    }>();
    client.execute('ping');
    // @ts-expect-error query-status is not in these bindings
    client.execute('query-status');
    client.on('HELLO', (e) => expectTypeOf(e.data.name).toBeString());
  });

  test('defaults to QEMU 7.2', async () => {
    const client = await connect('unix:/tmp/x');
    expectTypeOf(client).toEqualTypeOf<QmpClient<Commands, Events>>();
  });
});

describe('executeAndWait', () => {
  test('types the result by command and the event by name; typos do not compile', () => {
    const done = qmp.executeAndWait(
      { event: 'DEVICE_DELETED', where: (e) => e.data.device === 'disk1' },
      'device_del',
      { id: 'disk1' },
    );
    expectTypeOf(done).resolves.toEqualTypeOf<{
      readonly result: Commands['device_del']['returns'];
      readonly event: QmpEvent<Events, 'DEVICE_DELETED'>;
    }>();
    // @ts-expect-error no such event
    qmp.executeAndWait({ event: 'DEVICE_DELETD' }, 'device_del', { id: 'x' });
    // @ts-expect-error device_del needs its id
    qmp.executeAndWait({ event: 'DEVICE_DELETED' }, 'device_del');
    // @ts-expect-error STOP carries no data member `device`
    qmp.executeAndWait({ event: 'STOP', where: (e) => e.data.device === 'x' }, 'stop');
  });
});
