// The guest agent client's cost: boot of the Linux test guest to READY and to agent-ready
// (`waitForAgent`), then guest-ping round trips through `GuestAgent` beside the same pings
// written and read on a raw socket (the baseline: no sync, no session, no types), against
// the real qemu-ga under TCG and against the fake agent of @qmpkit/fake-qmp.
//
//   pnpm bench:guest-agent [--pings 200] [--agent bookworm|bookworm-backports]
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FakeGuestAgent } from '@qmpkit/fake-qmp';
import { GuestAgent } from '@qmpkit/guest-agent';
import { buildLinuxGuest, READY_MARKER, startLinuxGuest } from '@qmpkit/testguest';

const { values } = parseArgs({
  options: {
    pings: { type: 'string', default: '200' },
    agent: { type: 'string', default: 'bookworm' },
  },
});
const pings = Number(values.pings);
const agentSuite = values.agent === 'bookworm-backports' ? 'bookworm-backports' : 'bookworm';
const cacheDir = path.resolve(import.meta.dirname, '../../.cache');

/** guest-ping round trips per second on a raw connection: write a line, wait for a line. */
async function rawRate(socketPath: string, n: number): Promise<number> {
  const socket = net.createConnection({ path: socketPath });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buffered = '';
  let waiting: (() => void) | undefined;
  let lines = 0;
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
      buffered = buffered.slice(nl + 1);
      lines++;
    }
    waiting?.();
  });
  const exchange = async (text: string) => {
    const want = lines + 1;
    socket.write(text);
    while (lines < want) await new Promise<void>((resolve) => (waiting = resolve));
  };
  // Settle the pipe once (the raw client must sync too, or it may read a stale line).
  await exchange('{"execute":"guest-sync","arguments":{"id":1}}\n');
  const started = performance.now();
  for (let i = 0; i < n; i++) await exchange('{"execute":"guest-ping"}\n');
  const rate = n / ((performance.now() - started) / 1000);
  socket.destroy();
  return rate;
}

async function clientRate(agent: GuestAgent, n: number): Promise<number> {
  await agent.execute('guest-ping');
  const started = performance.now();
  for (let i = 0; i < n; i++) await agent.execute('guest-ping');
  return n / ((performance.now() - started) / 1000);
}

const dir = await mkdtemp(path.join(tmpdir(), 'bench-guest-agent-'));
const guest = await buildLinuxGuest({ cacheDir, agentSuite });
const vm = startLinuxGuest({ guest, dir });
try {
  const agent = new GuestAgent({ socket: vm.agentSocket });
  await agent.waitForAgent({ timeout: 300_000 });
  const agentReady = vm.elapsedMs();
  const ready = await vm.waitForLine(new RegExp(`^${READY_MARKER}$`));
  console.log(
    `qemu-ga (${agentSuite}) under TCG: READY ${(ready.atMs / 1000).toFixed(2)} s, agent ready ${(agentReady / 1000).toFixed(2)} s after spawn`,
  );
  const viaClient = await clientRate(agent, pings);
  await agent.disconnect();
  const raw = await rawRate(vm.agentSocket, pings);
  console.log(
    `real agent, ${pings} guest-ping: GuestAgent ${viaClient.toFixed(0)}/s, raw socket ${raw.toFixed(0)}/s (client/raw ${(viaClient / raw).toFixed(2)})`,
  );
  await agent.close();

  const fake = new FakeGuestAgent();
  const fakeSocket = path.join(dir, 'fake.sock');
  const server = await fake.listen(fakeSocket);
  const fakeAgent = new GuestAgent({ socket: fakeSocket });
  const fakeClient = await clientRate(fakeAgent, pings * 10);
  await fakeAgent.disconnect();
  const fakeRaw = await rawRate(fakeSocket, pings * 10);
  console.log(
    `fake agent, ${pings * 10} guest-ping: GuestAgent ${fakeClient.toFixed(0)}/s, raw socket ${fakeRaw.toFixed(0)}/s (client/raw ${(fakeClient / fakeRaw).toFixed(2)})`,
  );
  await fakeAgent.close();
  await server.close();
} finally {
  await vm.kill();
  await rm(dir, { recursive: true, force: true });
}
