// qmpkit's subcommands from code: `main(argv)` resolves to the exit code and prints like the CLI.
// Run from the repository root: node --conditions=@qmpkit/source --import tsx packages/cli/examples/basic.ts
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { main } from '@qmpkit/cli';
import { connect } from '@qmpkit/transport';

const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-example-')); // mode 0700
const socket = path.join(dir, 'qmp.sock');
const args = ['-machine', 'none', '-nodefaults', '-display', 'none'];
const qemu = spawn('qemu-system-x86_64', [...args, '-qmp', `unix:${socket},server=on,wait=off`]);
const address = `unix:${socket}`;
// QEMU creates the socket file a moment before it listens: connect once, retrying until then.
await (await connect(address, { waitForListener: true })).close();

// Prints {"qemu":{"micro":…,"minor":…,"major":…},"package":…}; exit code 0.
console.log('exit', await main(['exec', address, 'query-version']));
// Checked against this QEMU's schema before sending: "$.size: expected an integer"; exit 2.
console.log('exit', await main(['exec', address, 'blockdev-add', 'driver=null-co', 'size=big']));
// The committed 7.2 capture against the running QEMU: "no changes" on QEMU 7.2.
console.log('exit', await main(['schema', 'diff', 'schemas/qemu-7.2', address]));

qemu.kill();
rmSync(dir, { recursive: true, force: true });
