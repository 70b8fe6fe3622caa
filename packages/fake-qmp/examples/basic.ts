// A fake QEMU 7.2 for a client's tests: typed client, simulated VM, scripting, faults.
// Run: node --conditions=@qmpkit/source --import tsx packages/fake-qmp/examples/basic.ts
import { createFakeQmp, qmpError } from '@qmpkit/fake-qmp';
import { connect } from '@qmpkit/transport';

const fake = await createFakeQmp({ machine: 'pc', storage: 'memory', listen: { unix: true } });
console.log('listening on', fake.address); // unix:/tmp/qmpkit-fake-XXXX/qmp.sock (0700 dir)

const qmp = await connect(fake.address); // or connect(fake.pair()) in memory
console.log(await qmp.execute('query-status')); // { running: true, singlestep: false, status: 'running' }

// The simulated VM answers like QEMU, with QEMU's events and error texts.
const stopped = qmp.expectEvent('STOP');
await qmp.execute('stop');
console.log('STOP at', (await stopped.wait({ timeout: 1000 })).timestamp.seconds);
await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'disk0' });
await qmp.executeUnchecked('blockdev-add', { driver: 'qcow2' }).catch((e: Error) => {
  console.log(e.message); // blockdev-add: GenericError: Parameter 'file' is missing
});

// Scripting: replace a command, fall back to the model, inject events and faults.
fake.handle('device_del', (args, ctx) => {
  if (args.id === 'locked') throw qmpError(`Device '${args.id}' is locked`);
  return ctx.fallback();
});
fake.emit('BALLOON_CHANGE', { actual: 1 << 30 });
fake.inject({ kind: 'delay', command: 'query-version', ms: 50, times: 1 });
console.log((await qmp.execute('query-version')).qemu); // { major: 7, minor: 2, micro: 22 } after 50 ms

await qmp.close();
await fake.close();
