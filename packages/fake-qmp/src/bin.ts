#!/usr/bin/env node
/** Process wiring for `qmpkit-fake-qmp`: signals stop the server, the result is the exit code. */
import { runCli } from './cli.js';

const controller = new AbortController();
for (const name of ['SIGTERM', 'SIGINT'] as const) process.once(name, () => controller.abort());
process.exitCode = await runCli(process.argv.slice(2), controller.signal);
