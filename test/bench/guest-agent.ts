// The guest agent client's cost: boot of the Linux test guest to READY and to agent-ready
// (`waitForAgent`), then guest-ping round trips through `GuestAgent` beside the same pings
// written and read on a raw socket (the baseline: no sync, no session, no types), against
// the real qemu-ga under TCG and against the fake agent of @qmpkit/fake-qmp.
// The two are measured in alternating rounds (client first in even rounds, raw first in odd
// ones) and the medians compared: on a shared machine one pass of each, always in the same
// order, measured the load of the moment as much as the client (a pass right after boot ran
// while the guest was still settling). The CPU time this process spends per ping is shown
// beside: unlike the rates it hardly depends on the machine's load.
//
//   pnpm bench:guest-agent [--pings 200] [--rounds 5] [--agent bookworm|bookworm-backports]
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FakeGuestAgent } from '@qmpkit/fake-qmp';
import { GuestAgent } from '@qmpkit/guest-agent';
import { buildLinuxGuest, READY_MARKER, startLinuxGuest } from '@qmpkit/testguest';

const { values } = parseArgs({
  options: {
    pings: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '5' },
    agent: { type: 'string', default: 'bookworm' },
  },
});
const pings = Number(values.pings);
const rounds = Math.max(1, Number(values.rounds));
const agentSuite = values.agent === 'bookworm-backports' ? 'bookworm-backports' : 'bookworm';
const cacheDir = path.resolve(import.meta.dirname, '../../.cache');

/** guest-ping round trips per second on a raw connection: write a line, wait for a line. */
interface Pass {
  /** Pings per second (wall clock). */
  readonly rate: number;
  /** CPU time of this process per ping, µs (user + system): the client's own cost. */
  readonly cpuUs: number;
}

/** Times `n` awaited calls of `ping`: wall-clock rate and this process's CPU per call. */
async function timed(n: number, ping: () => Promise<unknown>): Promise<Pass> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < n; i++) await ping();
  const used = process.cpuUsage(cpu);
  return {
    rate: n / ((performance.now() - started) / 1000),
    cpuUs: (used.user + used.system) / n,
  };
}

async function rawRate(socketPath: string, n: number): Promise<Pass> {
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
  const pass = await timed(n, () => exchange('{"execute":"guest-ping"}\n'));
  socket.destroy();
  return pass;
}

async function clientRate(agent: GuestAgent, n: number): Promise<Pass> {
  await agent.execute('guest-ping');
  const pass = await timed(n, () => agent.execute('guest-ping'));
  // The host end of the chardev takes one client at a time: free it for the raw rounds.
  await agent.disconnect();
  return pass;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1
    ? (s[mid] as number)
    : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

/** Alternating rounds of both; the medians, and every round's ratio. */
async function compare(
  agent: GuestAgent,
  socketPath: string,
  n: number,
): Promise<{ client: number; raw: number; ratios: number[]; clientCpu: number; rawCpu: number }> {
  const client: Pass[] = [];
  const raw: Pass[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      client.push(await clientRate(agent, n));
      raw.push(await rawRate(socketPath, n));
    } else {
      raw.push(await rawRate(socketPath, n));
      client.push(await clientRate(agent, n));
    }
  }
  return {
    client: median(client.map((p) => p.rate)),
    raw: median(raw.map((p) => p.rate)),
    ratios: client.map((c, i) => c.rate / (raw[i] as Pass).rate),
    clientCpu: median(client.map((p) => p.cpuUs)),
    rawCpu: median(raw.map((p) => p.cpuUs)),
  };
}

const show = (what: string, n: number, m: Awaited<ReturnType<typeof compare>>) =>
  console.log(
    `${what}, ${rounds} rounds of ${n} guest-ping (medians): GuestAgent ${m.client.toFixed(0)}/s, raw socket ${m.raw.toFixed(0)}/s (client/raw ${(m.client / m.raw).toFixed(2)}; per round ${m.ratios.map((x) => x.toFixed(2)).join(' ')}); CPU of this process per ping ${m.clientCpu.toFixed(0)} µs vs ${m.rawCpu.toFixed(0)} µs raw; load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );

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
  show('real agent (TCG)', pings, await compare(agent, vm.agentSocket, pings));
  await agent.close();

  const fake = new FakeGuestAgent();
  const fakeSocket = path.join(dir, 'fake.sock');
  const server = await fake.listen(fakeSocket);
  const fakeAgent = new GuestAgent({ socket: fakeSocket });
  show('fake agent (same process)', pings * 10, await compare(fakeAgent, fakeSocket, pings * 10));
  await fakeAgent.close();
  await server.close();
} finally {
  await vm.kill();
  await rm(dir, { recursive: true, force: true });
}
