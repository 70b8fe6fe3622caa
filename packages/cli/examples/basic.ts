// qmpkit's subcommands from code: `main(argv)` resolves to the exit code and prints like the CLI.
// Run from the repository root: node --conditions=@qmpkit/source --import tsx packages/cli/examples/basic.ts
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { main } from '@qmpkit/cli';

const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-example-')); // mode 0700
const socket = path.join(dir, 'qmp.sock');
const args = ['-machine', 'none', '-nodefaults', '-display', 'none'];
const qemu = spawn('qemu-system-x86_64', [...args, '-qmp', `unix:${socket},server=on,wait=off`]);
// The socket file appears at bind(), a moment before QEMU listens: wait until it accepts.
const accepts = () =>
  new Promise<boolean>((resolve) => {
    const probe = net.connect(socket, () => resolve(true)).once('error', () => resolve(false));
    probe.once('connect', () => probe.destroy());
  });
while (!(await accepts())) await sleep(20);
const address = `unix:${socket}`;

// Prints {"qemu":{"micro":…,"minor":…,"major":…},"package":…}; exit code 0.
console.log('exit', await main(['exec', address, 'query-version']));
// Checked against this QEMU's schema before sending: "$.size: expected an integer"; exit 2.
console.log('exit', await main(['exec', address, 'blockdev-add', 'driver=null-co', 'size=big']));
// The committed 7.2 capture against the running QEMU: "no changes" on QEMU 7.2.
console.log('exit', await main(['schema', 'diff', 'schemas/qemu-7.2', address]));

qemu.kill();
rmSync(dir, { recursive: true, force: true });
