/** Record a session with a real QEMU 7.2 through the proxy, then replay it with the fake. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from '@qmpkit/transport';
import { describe, expect, it } from 'vitest';
import { formatConversation, parseConversation } from '../replay/conversation.js';
import { recordConversation } from '../replay/recorder.js';
import { createFakeQmp } from '../server/fake.js';

const QEMU = process.env.QMPKIT_QEMU ?? 'qemu-system-x86_64';
const probe = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
const missing = probe.error || probe.status !== 0 ? `${QEMU} not runnable` : undefined;
if (missing && process.env.CI === 'true') throw new Error(missing);

async function script(address: Parameters<typeof connect>[0]) {
  const qmp = await connect(address);
  const stopped = qmp.expectEvent('STOP');
  await qmp.execute('stop');
  const event = await stopped.wait({ timeout: 5000 });
  const out = {
    greeting: qmp.greeting,
    event: event.event,
    status: await qmp.execute('query-status'),
    named: await qmp.execute('query-named-block-nodes'),
    error: await qmp.execute('blockdev-del', { 'node-name': 'x' }).catch((e: Error) => e.message),
    hmp: await qmp.hmp('info status'),
  };
  await qmp.close();
  return out;
}

describe.skipIf(missing !== undefined)(
  `record/replay with QEMU 7.2${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    it('a recorded conversation replays with the same answers', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-record-'));
      const sock = path.join(dir, 'qmp.sock');
      let child: ChildProcess | undefined;
      try {
        child = spawn(
          QEMU,
          [
            '-machine',
            'none',
            '-nodefaults',
            '-display',
            'none',
            '-accel',
            'tcg',
            '-qmp',
            `unix:${sock},server=on,wait=off`,
          ],
          {
            stdio: ['ignore', 'ignore', 'pipe'],
          },
        );
        for (let i = 0; i < 500 && !existsSync(sock); i++)
          await new Promise((r) => setTimeout(r, 10));
        const recorder = await recordConversation({
          upstream: `unix:${sock}`,
          file: path.join(dir, 'session.qmp'),
        });
        const finished = recorder.next();
        const live = await script(recorder.address);
        const conversation = await finished;
        await recorder.close();
        const fake = await createFakeQmp({
          replay: parseConversation(formatConversation(conversation)),
        });
        const replayed = await script(fake.pair());
        fake.verify();
        await fake.close();
        expect(replayed).toEqual(live);
        expect(live.error).toContain("Failed to find node with node-name='x'");
      } finally {
        if (child && child.exitCode === null) {
          child.kill('SIGKILL');
          await new Promise((r) => child?.once('exit', r));
        }
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);
