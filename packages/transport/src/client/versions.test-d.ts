import type { StatusInfo } from '@qmpkit/qapi/qemu-7.2';
import { describe, expectTypeOf, test } from 'vitest';
import type { QmpClient } from '../index.js';
import {
  connect,
  type QmpClientFor,
  supports,
  supportsFeature,
  supportsValue,
} from '../versions/index.js';

describe('a client typed for a range of QEMU versions', () => {
  test('compiles only what every version of the range accepts', async () => {
    const qmp = await connect<'5.2' | '7.2'>('unix:/tmp/x');
    expectTypeOf(qmp).toEqualTypeOf<QmpClientFor<'5.2' | '7.2'>>();
    const status = await qmp.execute('query-status');
    expectTypeOf(status.running).toBeBoolean();
    // @ts-expect-error -- snapshot-save is 6.0+, QEMU 5.2 lacks it
    await qmp.execute('snapshot-save', { 'job-id': 'j', tag: 't', vmstate: 'd', devices: ['d'] });
    // @ts-expect-error -- the preallocate driver is 6.0+
    await qmp.execute('blockdev-add', { driver: 'preallocate', 'node-name': 'p', file: 'f' });
    await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'n0' });
  });

  test('a capability check narrows the range', async () => {
    const qmp = await connect<'5.2' | '7.2'>('unix:/tmp/x');
    const jobs = await supports(qmp, 'snapshot-save');
    if (jobs) {
      expectTypeOf(jobs).toEqualTypeOf<QmpClientFor<'7.2'>>();
      await jobs.execute('snapshot-save', {
        'job-id': 'j',
        tag: 't',
        vmstate: 'd',
        devices: ['d'],
      });
    }
    const prealloc = await supportsValue(qmp, 'blockdev-add.driver=preallocate');
    if (prealloc)
      await prealloc.execute('blockdev-add', {
        driver: 'preallocate',
        'node-name': 'p',
        file: 'f',
      });
    const old = await supports(qmp, 'query-cpus'); // only 5.2 of the range has it
    expectTypeOf(old).toEqualTypeOf<QmpClientFor<'5.2'> | undefined>();
  });

  test('branch members narrow too', async () => {
    const qmp = await connect<'6.2' | '7.2'>('unix:/tmp/x');
    const nbd = { driver: 'nbd', 'node-name': 'n', server: { type: 'unix', path: '/s' } } as const;
    // @ts-expect-error -- open-timeout of nbd is 7.0+
    await qmp.execute('blockdev-add', { ...nbd, 'open-timeout': 5 });
    const q = await supports(qmp, 'blockdev-add', 'nbd.open-timeout');
    if (q) await q.execute('blockdev-add', { ...nbd, 'open-timeout': 5 });
  });

  test('typos in capability checks do not compile', async () => {
    const qmp = await connect<'6.2' | '7.2'>('unix:/tmp/x');
    // @ts-expect-error -- no such command in any version
    await supports(qmp, 'snapshot-sav');
    // @ts-expect-error -- no such argument
    await supports(qmp, 'blockdev-add', 'nbd.open-timout');
    // @ts-expect-error -- no such driver
    await supportsValue(qmp, 'blockdev-add.driver=qcow3');
  });

  test('has() on a range accepts what any version has; typos still fail', async () => {
    const qmp = await connect<'5.2' | '7.2'>('unix:/tmp/x');
    // snapshot-save is 6.0+: only 7.2 of the range has it, so this is the check worth making.
    expectTypeOf(qmp.has('snapshot-save')).toEqualTypeOf<Promise<boolean>>();
    await qmp.has('query-cpus'); // only 5.2 of the range has it
    await qmp.has('query-status');
    // members, values and branches only some versions have
    await qmp.has('blockdev-add', { member: 'driver', value: 'preallocate' }); // 6.0+
    await qmp.has('blockdev-add', { when: { driver: 'preallocate' } });
    await qmp.has('blockdev-add', { when: { driver: 'nbd' }, member: 'open-timeout' }); // 7.0+
    await qmp.has('snapshot-save', { member: 'vmstate' });
    // @ts-expect-error -- no version has snapshot-sav
    await qmp.has('snapshot-sav');
    // @ts-expect-error -- no version has that driver
    await qmp.has('blockdev-add', { member: 'driver', value: 'qcow3' });
    // @ts-expect-error -- no version has that member of nbd
    await qmp.has('blockdev-add', { when: { driver: 'nbd' }, member: 'open-timout' });
    // @ts-expect-error -- no version has that member of snapshot-save
    await qmp.has('snapshot-save', { member: 'vmstat' });
  });

  test('has() on one version accepts only what that version has', async () => {
    const old = await connect<'5.2'>('unix:/tmp/x');
    await old.has('query-cpus');
    // @ts-expect-error -- QEMU 5.2 has no snapshot-save: the answer is known at compile time
    await old.has('snapshot-save');
    const qmp = await connect('unix:/tmp/x');
    await qmp.has('snapshot-save');
    // @ts-expect-error -- 7.2 has no query-cpus any more
    await qmp.has('query-cpus');
  });

  test('one version keeps its exact named types', async () => {
    const qmp = await connect<'7.2'>('unix:/tmp/x');
    expectTypeOf(await qmp.execute('query-status')).toEqualTypeOf<StatusInfo>();
    // …and is a QmpClient of the default version (it only accepts more names in `has`).
    expectTypeOf(qmp).toExtend<QmpClient>();
  });
});

describe('supportsFeature', () => {
  test('narrows to the versions where the subject carries the feature', async () => {
    const qmp = await connect<'4.2' | '7.2'>('unix:/tmp/x');
    // blockdev-snapshot is in both; its allow-write-only-overlay feature is 5.0+.
    const overlay = await supportsFeature(qmp, 'blockdev-snapshot', 'allow-write-only-overlay');
    expectTypeOf(overlay).toEqualTypeOf<QmpClientFor<'7.2'> | undefined>();
    // device_add: json-cli is 6.2+, json-cli-hotplug 7.0+.
    const cli = await supportsFeature(
      await connect<'6.1' | '6.2' | '7.2'>('unix:/tmp/x'),
      'device_add',
      'json-cli-hotplug',
    );
    expectTypeOf(cli).toEqualTypeOf<QmpClientFor<'7.2'> | undefined>();
    // deprecated and unstable are features too, on arguments, branches and argument values.
    const base = await supportsFeature(qmp, 'block-commit.base', 'deprecated');
    expectTypeOf(base).toEqualTypeOf<QmpClientFor<'7.2'> | undefined>();
    const dirty = await supportsFeature(qmp, 'blockdev-add.nbd.x-dirty-bitmap', 'unstable');
    expectTypeOf(dirty).toEqualTypeOf<QmpClientFor<'7.2'> | undefined>();
    const auto = await supportsFeature(qmp, 'blockdev-add[file]', 'dynamic-auto-read-only');
    expectTypeOf(auto).toEqualTypeOf<QmpClientFor<'4.2' | '7.2'> | undefined>();
    const remote = await supportsFeature(qmp, 'object-add.qom-type=x-remote-object', 'unstable');
    expectTypeOf(remote).toEqualTypeOf<QmpClientFor<'7.2'> | undefined>();
  });

  test('the narrowed client compiles what those versions accept', async () => {
    const qmp = await connect<'5.2' | '7.2'>('unix:/tmp/x');
    const virtio = await supportsFeature(qmp, 'x-query-virtio', 'unstable'); // 7.2+
    // @ts-expect-error -- x-query-virtio is 7.2+: QEMU 5.2 lacks it
    await qmp.execute('x-query-virtio');
    if (virtio) await virtio.execute('x-query-virtio');
  });

  test('typos and features outside the range do not compile', async () => {
    const qmp = await connect<'4.2' | '7.2'>('unix:/tmp/x');
    // @ts-expect-error -- no such feature of blockdev-snapshot
    await supportsFeature(qmp, 'blockdev-snapshot', 'allow-write-only-overlai');
    // @ts-expect-error -- a feature, but of device_add, not of blockdev-snapshot
    await supportsFeature(qmp, 'blockdev-snapshot', 'json-cli');
    // @ts-expect-error -- blockdev-snapshot is never deprecated
    await supportsFeature(qmp, 'blockdev-snapshot', 'deprecated');
    // @ts-expect-error -- no such subject
    await supportsFeature(qmp, 'blockdev-snapshots', 'allow-write-only-overlay');
    // @ts-expect-error -- query-status carries no feature in any version
    await supportsFeature(qmp, 'query-status', 'deprecated');
    const old = await connect<'4.2' | '5.2'>('unix:/tmp/x');
    // @ts-expect-error -- json-cli is 6.2+: no version of the range has it
    await supportsFeature(old, 'device_add', 'json-cli');
    // @ts-expect-error -- query-cpus is deprecated in 5.0–5.2, not in 7.2
    await supportsFeature(await connect<'7.2'>('unix:/tmp/x'), 'query-cpus', 'deprecated');
  });
});
