#!/usr/bin/env node
/** `qmpkit-fake-qemu-storage-daemon`: the fake as a qemu-storage-daemon process (see storage-daemon-process.ts). */
import { runFakeStorageDaemon } from './storage-daemon-process.js';

process.exitCode = await runFakeStorageDaemon(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  argv0: process.argv[1] ?? 'qemu-storage-daemon',
});
// Exit even with the monitor socket still open (the daemon exits after quit).
setImmediate(() => process.exit());
