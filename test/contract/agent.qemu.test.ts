/**
 * The fake guest agent (`FakeGuestAgent` of @qmpkit/fake-qmp) against the real qemu-ga in the
 * Linux test guest: the same raw conversation — a 0xFF and a sync, pings, unknown commands,
 * bad arguments, file round trips, paths and handles the agent rejects, exec (a missing
 * program, a scripted one), freeze with commands refused while frozen, input that is not an
 * object or not JSON — must produce the same bytes from both, for qemu-ga 7.2 and 10.0.
 * Only pids are normalised. `guest-info` is left out: the fake lists every command of the
 * schema, the real agent only those built for Linux.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { FakeGuestAgent } from '@qmpkit/fake-qmp';
import { GuestAgent } from '@qmpkit/guest-agent';
import {
  buildLinuxGuest,
  type LinuxGuestProcess,
  linuxGuestKey,
  READY_MARKER,
  startLinuxGuest,
} from '@qmpkit/testguest';
import { qemuSkipReason, qemuSuite } from '@qmpkit/testguest/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const cacheDir = path.join(repoRoot, '.cache');
const ci = process.env.CI === 'true';
const suite = qemuSuite({ prefix: 'qmpkit-agent-contract-' });

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const SCRIPT = 'printf out; printf err >&2; exit 2';

/** One step: the request bytes (given the handle of the last `guest-file-open`), reply lines expected. */
type Step = { send: (handle: number) => string; replies?: number; poll?: true };
const line = (value: unknown) => () => `${JSON.stringify(value)}\n`;
const STEPS: Step[] = [
  { send: () => '\xff{"execute":"guest-sync-delimited","arguments":{"id":4242}}\n', replies: 2 },
  { send: line({ execute: 'guest-ping', id: 'ping' }) },
  { send: line({ execute: 'no-such-command', id: 1 }) },
  { send: line({ execute: 'guest-file-open', id: 2 }) },
  { send: line({ execute: 'guest-file-open', arguments: { path: 1 }, id: 3 }) },
  { send: line({ execute: 'guest-file-open', arguments: { path: '/no/such' }, id: 4 }) },
  { send: line({ execute: 'guest-file-open', arguments: { path: '/run/x', mode: 'zz' }, id: 5 }) },
  { send: line({ execute: 'guest-exec', arguments: { path: '/no/such/program' }, id: 6 }) },
  { send: line({ execute: 'guest-ping', arguments: { x: 1 }, id: 7 }) },
  { send: line({ execute: 'guest-file-read', arguments: { handle: 999 }, id: 8 }) },
  { send: line({ execute: 'guest-sync', arguments: { id: 5 } }) },
  { send: line({ execute: 'guest-exec-status', arguments: { pid: 99999 }, id: 9 }) },
  { send: line({ execute: 'guest-fsfreeze-status', id: 's' }) },
  {
    send: line({
      execute: 'guest-file-open',
      arguments: { path: '/run/c.txt', mode: 'w' },
      id: 10,
    }),
  },
  {
    send: (h) =>
      `${JSON.stringify({ execute: 'guest-file-write', arguments: { handle: h, 'buf-b64': b64('hello') }, id: 11 })}\n`,
  },
  {
    send: (h) =>
      `${JSON.stringify({ execute: 'guest-file-close', arguments: { handle: h }, id: 12 })}\n`,
  },
  { send: line({ execute: 'guest-file-open', arguments: { path: '/run/c.txt' }, id: 13 }) },
  {
    send: (h) =>
      `${JSON.stringify({ execute: 'guest-file-read', arguments: { handle: h, count: 3 }, id: 14 })}\n`,
  },
  {
    send: (h) =>
      `${JSON.stringify({ execute: 'guest-file-read', arguments: { handle: h, count: 10 }, id: 15 })}\n`,
  },
  {
    send: (h) =>
      `${JSON.stringify({ execute: 'guest-file-close', arguments: { handle: h }, id: 16 })}\n`,
  },
  { send: line({ execute: 'guest-fsfreeze-freeze', id: 17 }) },
  { send: line({ execute: 'guest-exec', arguments: { path: '/bin/true' }, id: 18 }) },
  { send: line({ execute: 'guest-fsfreeze-freeze', id: 19 }) },
  { send: line({ execute: 'guest-fsfreeze-status', id: 20 }) },
  { send: line({ execute: 'guest-fsfreeze-thaw', id: 21 }) },
  { send: line({ execute: 'guest-fsfreeze-thaw', id: 22 }) },
  {
    send: line({
      execute: 'guest-exec',
      arguments: { path: '/bin/sh', arg: ['-c', SCRIPT], 'capture-output': true },
      id: 23,
    }),
    poll: true,
  },
  { send: () => '[1]\n' },
  { send: line({ execute: 1, id: 24 }) },
  { send: () => 'nonsense\n' },
  { send: line({ execute: 'guest-ping', id: 25 }) },
];

/** Runs the steps on a raw connection; returns every reply line (0xFF kept, pids zeroed). */
async function converse(socketPath: string): Promise<string[]> {
  const socket = net.createConnection({ path: socketPath });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buffered = '';
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
      lines.push(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
    wake?.();
  });
  const next = async (): Promise<string> => {
    while (lines.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return lines.shift() as string;
  };
  const out: string[] = [];
  let handle = 0;
  try {
    for (const step of STEPS) {
      socket.write(Buffer.from(step.send(handle), 'latin1'));
      for (let i = 0; i < (step.replies ?? 1); i++) {
        const reply = await next();
        const opened = /^\{"return": (\d+), "id": (10|13)\}$/.exec(reply);
        if (opened) handle = Number(opened[1]);
        out.push(reply.replace(/"pid": \d+/g, '"pid": 0'));
        const pid = /"pid": (\d+)/.exec(reply)?.[1];
        if (step.poll && pid !== undefined) {
          // The real program may still run: ask until it has exited, keep the final answer.
          for (;;) {
            socket.write(`{"execute":"guest-exec-status","arguments":{"pid":${pid}},"id":"st"}\n`);
            const status = await next();
            if (!status.includes('"exited": false')) {
              out.push(status);
              break;
            }
          }
        }
      }
    }
  } finally {
    socket.destroy();
  }
  return out;
}

for (const [agentSuite, agent] of [
  ['bookworm', '7.2'],
  ['bookworm-backports', '10.0'],
] as const) {
  const built = existsSync(path.join(cacheDir, 'linux-guest', linuxGuestKey(agentSuite, 'none')));
  const skip =
    qemuSkipReason() ??
    (!built && !ci
      ? `the Linux guest with the ${agentSuite} agent is not built (CI builds it)`
      : undefined);

  describe(`fake guest agent vs qemu-ga ${agent}`, () => {
    let vm: LinuxGuestProcess | undefined;
    let fakeClose: (() => Promise<void>) | undefined;
    beforeAll(async () => {
      if (skip !== undefined) return;
      const guest = await buildLinuxGuest({ cacheDir, agentSuite });
      const dir = path.join(suite.dir, agent);
      spawnSync('mkdir', ['-p', dir]);
      const data = path.join(dir, 'data.img');
      writeFileSync(data, '');
      const mkfs = spawnSync('mkfs.ext4', ['-q', '-F', data, '16M'], { encoding: 'utf8' });
      if (mkfs.status !== 0) throw new Error(`mkfs.ext4: ${mkfs.stderr}`);
      vm = suite.adopt(startLinuxGuest({ guest, dir, qemu: suite.binary.system, dataDisk: data }));
      await vm.waitForLine(new RegExp(`^${READY_MARKER}$`));
      const client = new GuestAgent({ socket: vm.agentSocket });
      await client.waitForAgent({ timeout: 120_000 });
      await client.close();
    }, 600_000);
    afterAll(async () => {
      await fakeClose?.();
      await vm?.kill();
    });

    it.skipIf(skip !== undefined)('answers the same conversation with the same bytes', async () => {
      const fake = new FakeGuestAgent({
        agent,
        programs: {
          '/bin/sh': ({ argv }) =>
            argv[2] === SCRIPT ? { exitcode: 2, stdout: 'out', stderr: 'err' } : { exitcode: 127 },
        },
      });
      const fakeSocket = path.join(suite.dir, `fake-${agent}.sock`);
      fakeClose = (await fake.listen(fakeSocket)).close;
      const real = await converse(vm?.agentSocket ?? '');
      const faked = await converse(fakeSocket);
      expect(faked).toEqual(real);
      expect(real).toContain('\xff{"return": 4242}');
    });
  });
}
