// Start QEMU with QMP on an inherited socketpair, run typed commands, watch events.
// Run: node --conditions=@qmpkit/source --import tsx packages/transport/examples/basic.ts
import { spawn } from 'node:child_process';
import { connect } from '@qmpkit/transport';
import { InheritedFds } from '@qmpkit/transport/fd';

const fds = new InheritedFds();
const monitor = fds.socketpair(); // child fd 3; no socket file, no connect race
const machine = '-machine pc -m 64 -accel kvm -accel tcg -S -nodefaults -display none';
const qemu = spawn('qemu-system-x86_64', [...machine.split(' '), ...monitor.monitorArgs()], {
  stdio: fds.stdio,
});
const qmp = await connect(monitor.address(qemu), { validate: 'warn' });
console.log('QEMU', qmp.greeting.version.qemu, 'capabilities', qmp.capabilities);

const status = await qmp.execute('query-status'); // typed: { running, singlestep, status }
console.log('status:', status.status);

// Arm the wait *before* the command whose event it awaits.
const resumed = qmp.expectEvent('RESUME');
await qmp.execute('cont');
const event = await resumed.wait({ timeout: 5000 });
console.log('RESUME at', event.timestamp.seconds);

// Capability questions, checked against the bindings at compile time.
console.log('snapshot-save:', await qmp.has('snapshot-save'));
console.log(
  'qcow2 data-file:',
  await qmp.has('blockdev-add', { when: { driver: 'qcow2' }, member: 'data-file' }),
);

console.log(await qmp.hmp('info status'));
await qmp.execute('quit');
await qmp.closed;
