/** object-add/object-del and HMP info version (the contract scenario "objects" checks QEMU's words). */
import { connect } from '@qmpkit/transport';
import { afterEach, expect, it } from 'vitest';
import { createFakeQmp, type FakeQmp } from '../server/fake.js';

const fakes: FakeQmp[] = [];
afterEach(async () => {
  for (const f of fakes.splice(0)) await f.close();
});

it('adds, lists and deletes objects with QEMU errors for duplicates, missing and in-use ones', async () => {
  const fake = await createFakeQmp({
    machine: 'pc',
    storage: 'memory',
    object: [{ 'qom-type': 'memory-backend-ram', id: 'ram0', size: 16 << 20 }],
    memoryBackend: 'ram0',
  });
  fakes.push(fake);
  const qmp = await connect(fake.pair());
  await qmp.execute('object-add', { 'qom-type': 'iothread', id: 'io0' });
  await expect(
    qmp.execute('object-add', { 'qom-type': 'secret', id: 'io0', data: 'x' }),
  ).rejects.toMatchObject({
    desc: "attempt to add duplicate property 'io0' to object (type 'container')",
  });
  await qmp.execute('object-add', { 'qom-type': 'secret', id: 's0', data: 'x' });
  expect((await qmp.execute('query-iothreads')).map((t) => t.id)).toEqual(['io0']);
  await expect(qmp.execute('object-del', { id: 'ram0' })).rejects.toMatchObject({
    desc: "object 'ram0' is in use, can not be deleted",
  });
  await qmp.execute('object-del', { id: 'io0' });
  await expect(qmp.execute('object-del', { id: 'io0' })).rejects.toMatchObject({
    desc: "object 'io0' not found",
  });
  expect((await qmp.execute('qom-list', { path: '/objects' })).map((p) => p.name).sort()).toEqual([
    'ram0',
    's0',
    'type',
  ]);
  expect(await qmp.hmp('info version')).toBe('7.2.22Debian 1:7.2+dfsg-7+deb12u18+b3\r\n');
  await qmp.close();
});
