#!/usr/bin/env node
/** `qmpkit-fake-qemu`: the fake as a QEMU process (see process.ts for the switches). */
import { runFakeQemu } from './process.js';

process.exitCode = await runFakeQemu(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
});
// Exit even with the monitor socket still open (QEMU exits after quit).
setImmediate(() => process.exit());
