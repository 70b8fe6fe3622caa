/** Record a session with the real QEMU under test (7.2 or 10.0) through the proxy, then replay it with the fake. */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  privateTempDir,
  QEMU,
  qemuSkipReason,
  qemuSuite,
  skipNote,
  spawnQemu,
} from '@qmpkit/testguest/test-support';
import { connect } from '@qmpkit/transport';
import { describe, expect, it } from 'vitest';
import { parseConversation } from '../replay/conversation.js';
import { recordConversation } from '../replay/recorder.js';
import { createFakeQmp } from '../server/fake.js';

// Binary lookup (QMPKIT_QEMU still overrides), skip rules (never skip with CI=true) and
// killing every QEMU this file started: the shared test support.
qemuSuite();
const missing = qemuSkipReason();

async function script(address: Parameters<typeof connect>[0]) {
  const qmp = await connect(address);
  const stopped = qmp.expectEvent('STOP');
  await qmp.execute('stop');
  const event = await stopped.wait({ timeout: 5000 });
  const out = {
    greeting: qmp.greeting,
    version: await qmp.execute('query-version'),
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
  `record/replay with QEMU ${QEMU.version?.major}.${QEMU.version?.minor}${skipNote()}`,
  () => {
    it('a recorded conversation, read back from its file, replays with the same answers; a second client gets its own file', async () => {
      const { dir, remove } = privateTempDir('qmpkit-record-');
      const sock = path.join(dir, 'qmp.sock');
      let child: ChildProcess | undefined;
      try {
        child = spawnQemu(
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
        // Until QEMU listens (its socket file appears a moment before): one probe connection.
        await (await connect(`unix:${sock}`, { waitForListener: true })).close();
        const file = path.join(dir, 'session.qmp');
        const recorder = await recordConversation({ upstream: `unix:${sock}`, file });
        let finished = recorder.next();
        const live = await script(recorder.address);
        await finished;
        // A second client of the same recorder: recorded to its own file, not over the first.
        finished = recorder.next();
        const again = await connect(recorder.address);
        const version = await again.execute('query-version');
        await again.close();
        await finished;
        await recorder.close();
        expect(recorder.files).toEqual([file, path.join(dir, 'session-2.qmp')]);

        // What was recorded is the real QEMU under test.
        expect(live.version.qemu).toMatchObject({
          major: QEMU.version?.major,
          minor: QEMU.version?.minor,
        });
        expect(version).toEqual(live.version);

        // Replay what is on disk, not what the recorder kept in memory.
        const recorded = parseConversation(readFileSync(file, 'utf8'), file);
        expect(recorded.qemu).toEqual(live.version.qemu);
        const fake = await createFakeQmp({ replay: recorded });
        const replayed = await script(fake.pair());
        fake.verify();
        await fake.close();
        expect(replayed).toEqual(live);
        expect(live.error).toContain("Failed to find node with node-name='x'");

        const second = parseConversation(
          readFileSync(path.join(dir, 'session-2.qmp'), 'utf8'),
          'session-2.qmp',
        );
        expect(
          second.records.filter((r) => r.dir === 'in').map((r) => JSON.parse(r.line).execute),
        ).toEqual(['qmp_capabilities', 'query-version']);
      } finally {
        if (child && child.exitCode === null) {
          child.kill('SIGKILL');
          await new Promise((r) => child?.once('exit', r));
        }
        remove();
      }
    });
  },
);
