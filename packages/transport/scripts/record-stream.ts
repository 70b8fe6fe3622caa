/**
 * Records the raw bytes QEMU writes on a QMP monitor, for codec tests and the benchmark:
 *   node --conditions=@qmpkit/source --import tsx packages/transport/scripts/record-stream.ts
 * Writes src/codec/fixtures/qemu-7.2-session.qmp (greeting, replies, errors, events,
 * one query-qmp-schema reply) — QEMU output only, byte for byte, CRLF included.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

const out = path.join(import.meta.dirname, '../src/codec/fixtures/qemu-7.2-session.qmp');
const child = spawn(
  'qemu-system-x86_64',
  [
    '-machine',
    'pc',
    '-m',
    '16',
    '-accel',
    'tcg',
    '-nodefaults',
    '-display',
    'none',
    '-S',
    '-qmp',
    'stdio',
  ],
  { stdio: ['pipe', 'pipe', 'inherit'] },
);
const chunks: Buffer[] = [];
let text = '';
child.stdout.on('data', (c: Buffer) => {
  chunks.push(c);
  text += c.toString('latin1');
});
const waitFor = async (needle: string): Promise<void> => {
  while (!text.includes(needle)) await new Promise((r) => setTimeout(r, 5));
};
const send = (line: string): void => {
  child.stdin.write(`${line}\n`);
};
await waitFor('"QMP"');
send('{"execute":"qmp_capabilities","arguments":{"enable":["oob"]},"id":1}');
await waitFor('"id": 1');
send('{"execute":"query-status","id":2}');
send('{"execute":"cont","id":3}');
send('{"execute":"stop","id":4}');
send('{"execute":"nope","id":5}');
send('{"execute":"human-monitor-command","arguments":{"command-line":"info status"},"id":6}');
send('{"execute":"query-qmp-schema","id":7}');
send('{"execute":"query-version","id":"eight"}');
send('{"exec-oob":"migrate-recover","arguments":{"uri":"tcp:x"},"id":9}');
send('{"execute":"qom-set","arguments":{"path":"/machine","property":"nope","value":1},"id":10}');
await waitFor('"id": "eight"');
await waitFor('"id": 10');
send('{"execute":"quit","id":11}');
await new Promise((r) => child.on('exit', r));
await writeFile(out, Buffer.concat(chunks));
console.log(
  `recorded ${Buffer.concat(chunks).length} bytes → ${path.relative(process.cwd(), out)}`,
);
