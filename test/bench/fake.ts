/**
 * `pnpm bench:fake` — how fast the fake QMP server answers, next to a real QEMU 7.2 measured
 * in the same run with the same client code, and the fake's memory after 1M commands.
 *
 *   rate, 1 client:   sequential `query-status` with ids over a unix socket (write a line,
 *                     read a line), real QEMU (-machine none, TCG) vs the fake (in this process)
 *   rate, 50 clients: 50 connections each running the same loop at once (real QEMU: 50 QMP
 *                     monitors, its dispatcher serves them one command at a time)
 *   memory:           1,000,000 commands through the fake (pipelined, 100 in flight), heap and
 *                     RSS before and after with a forced GC
 *   fairness:         4 clients' query-status latency (mean, p99) with and without a fifth
 *                     client sending 512 KiB of garbage (one parse error per line) back to
 *                     back, quiet and garbage blocks alternating; the ratio is garbage/quiet
 * Contenders alternate in blocks so load from other processes hits both alike. Goal: the
 * fake ≥ 5× real QEMU.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createFakeQmp, type FakeQmp } from '@qmpkit/fake-qmp';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const N = Number(process.env.BENCH_N ?? 10_000); // commands per contender and mode
const CLIENTS = 50;
const BLOCK = 500;
const MEMORY_COMMANDS = Number(process.env.BENCH_MEMORY_N ?? 1_000_000);
const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-bench-fake-'));

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const mb = (bytes: number) => `${fmt(bytes / 1024 / 1024, 1)} MB`;

/** A raw QMP client: greeting, negotiation, then lines in / lines out. */
class Raw {
  private pending = '';
  private waiting: ((line: string) => void)[] = [];
  private lines: string[] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      const parts = (this.pending + d.toString('latin1')).split('\n');
      this.pending = parts.pop() ?? '';
      for (const p of parts) {
        const w = this.waiting.shift();
        if (w) w(p);
        else this.lines.push(p);
      }
    });
  }

  static async open(socketPath: string): Promise<Raw> {
    const socket = net.connect(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    const raw = new Raw(socket);
    await raw.line(); // greeting
    raw.socket.write('{"execute":"qmp_capabilities"}\n');
    await raw.line();
    return raw;
  }

  line(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** n sequential round trips; returns nanoseconds spent. */
  async run(n: number, from: number): Promise<bigint> {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      this.socket.write(`{"execute":"query-status","id":${from + i}}\n`);
      const reply = await this.line();
      if (!reply.startsWith('{"return"')) throw new Error(`unexpected reply: ${reply}`);
    }
    return process.hrtime.bigint() - start;
  }

  /** n sequential round trips; returns each one's latency in nanoseconds. */
  async latencies(n: number): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const start = process.hrtime.bigint();
      this.socket.write(`{"execute":"query-status","id":${i}}\n`);
      const reply = await this.line();
      out.push(Number(process.hrtime.bigint() - start));
      if (!reply.startsWith('{"return"')) throw new Error(`unexpected reply: ${reply}`);
    }
    return out;
  }

  /** Sends 512 KiB of garbage and a marker command; resolves when the marker is answered. */
  async garbage(): Promise<void> {
    this.socket.write(`${GARBAGE}{"execute":"query-status","id":"g"}`);
    for (;;) if ((await this.line()).includes('"id": "g"')) return;
  }

  close(): void {
    this.socket.destroy();
  }
}

const GARBAGE = 'garbage\n'.repeat(65536);

async function startQemu(monitors: string[]): Promise<ChildProcess> {
  const args = monitors.flatMap((socketPath, i) => [
    '-chardev',
    `socket,id=m${i},path=${socketPath},server=on,wait=off`,
    '-mon',
    `chardev=m${i},mode=control`,
  ]);
  const child = spawn(
    'qemu-system-x86_64',
    ['-machine', 'none', '-accel', 'tcg', '-nodefaults', '-display', 'none', ...args],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  for (let i = 0; i < 1000 && !monitors.every((m) => existsSync(m)); i++)
    await new Promise((r) => setTimeout(r, 10));
  return child;
}

interface Contender {
  readonly name: string;
  readonly clients: Raw[];
  ns: bigint;
  commands: number;
}

/** Runs all contenders in alternating blocks; each block runs all clients of one contender at once. */
async function race(contenders: Contender[], perClient: number): Promise<void> {
  for (let done = 0; done < perClient; done += BLOCK) {
    const n = Math.min(BLOCK, perClient - done);
    for (const c of contenders) {
      const start = process.hrtime.bigint();
      await Promise.all(c.clients.map((client) => client.run(n, done)));
      c.ns += process.hrtime.bigint() - start;
      c.commands += n * c.clients.length;
    }
  }
}

const rate = (c: Contender) => c.commands / (Number(c.ns) / 1e9);

async function memoryRun(
  fake: FakeQmp,
): Promise<{ before: NodeJS.MemoryUsage; after: NodeJS.MemoryUsage; seconds: number }> {
  const stream = fake.connectStream();
  let replies = 0;
  let wake: (() => void) | undefined;
  stream.on('data', (d: Uint8Array) => {
    for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) replies++;
    wake?.();
  });
  const until = async (n: number) => {
    while (replies < n) await new Promise<void>((r) => (wake = r));
  };
  await until(1);
  stream.write('{"execute":"qmp_capabilities"}\n');
  await until(2);
  gc();
  const before = process.memoryUsage();
  const t = performance.now();
  const batch = '{"execute":"query-status","id":1}\n'.repeat(100);
  for (let sent = 0; sent < MEMORY_COMMANDS; sent += 100) {
    stream.write(batch);
    await until(2 + sent + 100);
  }
  const seconds = (performance.now() - t) / 1000;
  gc();
  const after = process.memoryUsage();
  stream.destroy();
  return { before, after, seconds };
}

const FAIR_CLIENTS = 4;
const FAIR_BLOCKS = Number(process.env.BENCH_FAIR_BLOCKS ?? 6);
const FAIR_PER_BLOCK = 200;

function summary(ns: number[]): { mean: number; p99: number } {
  const sorted = [...ns].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { mean: mean / 1e6, p99: sorted[Math.floor(sorted.length * 0.99)]! / 1e6 };
}

/**
 * The garbage sender runs in a child process (this file with `--garbage-sender SOCKET`), so
 * reading its 65,536 error replies per blob does not load the event loop that runs the fake.
 */
async function garbageSender(socketPath: string): Promise<void> {
  const sender = await Raw.open(socketPath);
  let blobs = 0;
  let stop = false;
  process.once('SIGTERM', () => {
    stop = true;
  });
  process.stdout.write('ready\n');
  while (!stop) {
    await sender.garbage();
    blobs++;
  }
  process.stdout.write(`${blobs}\n`);
  sender.close();
}

/** Other clients' latency, quiet vs beside a garbage sender, in alternating blocks. */
async function fairnessRun(socketPath: string): Promise<void> {
  const others = await Promise.all(
    Array.from({ length: FAIR_CLIENTS }, () => Raw.open(socketPath)),
  );
  const quiet: number[] = [];
  const noisy: number[] = [];
  let blobs = 0;
  for (let block = 0; block < FAIR_BLOCKS; block++) {
    const measure = () => Promise.all(others.map((c) => c.latencies(FAIR_PER_BLOCK)));
    if (block % 2 === 0) {
      for (const l of await measure()) quiet.push(...l);
      continue;
    }
    const child = spawn(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), '--garbage-sender', socketPath],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    while (!out.includes('ready\n')) await new Promise((r) => setTimeout(r, 5));
    for (const l of await measure()) noisy.push(...l);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    blobs += Number(out.split('\n')[1] ?? 0);
  }
  for (const c of others) c.close();
  const q = summary(quiet);
  const n = summary(noisy);
  console.log(
    `Fairness, ${FAIR_CLIENTS} clients' query-status latency, quiet vs beside a client (another process) sending 512 KiB of garbage back to back (${blobs} blobs answered during the run)`,
  );
  console.log(
    `  quiet            mean ${fmt(q.mean, 3).padStart(8)} ms   p99 ${fmt(q.p99, 3).padStart(8)} ms`,
  );
  console.log(
    `  beside garbage   mean ${fmt(n.mean, 3).padStart(8)} ms   p99 ${fmt(n.p99, 3).padStart(8)} ms   ratio mean ${fmt(n.mean / q.mean, 2)}×  p99 ${fmt(n.p99 / q.p99, 2)}×`,
  );
}

async function main(): Promise<void> {
  console.log(
    `fake-qmp vs QEMU 7.2, query-status with ids over unix sockets, ${fmt(N)} commands per contender and mode, ${BLOCK}-command blocks interleaved`,
  );
  console.log(
    `  host: ${cpus().length} CPUs, load average before ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const realSockets = Array.from({ length: CLIENTS + 1 }, (_, i) =>
    path.join(dir, `qemu-${i}.sock`),
  );
  const qemu = await startQemu(realSockets);
  const fake = await createFakeQmp({
    machine: 'none',
    storage: 'memory',
    listen: { unix: path.join(dir, 'fake.sock') },
  });
  const fakeSocket = fake.address.slice('unix:'.length);
  try {
    // Warm-up (JIT, QEMU's first commands).
    const warmReal = await Raw.open(realSockets[0]!);
    const warmFake = await Raw.open(fakeSocket);
    await warmReal.run(500, 0);
    await warmFake.run(2000, 0);
    // 1 client.
    const one: Contender[] = [
      { name: 'real QEMU, 1 client', clients: [warmReal], ns: 0n, commands: 0 },
      { name: 'fake, 1 client', clients: [warmFake], ns: 0n, commands: 0 },
    ];
    await race(one, N);
    // 50 clients.
    const realMany = await Promise.all(realSockets.slice(1).map((s) => Raw.open(s)));
    const fakeMany = await Promise.all(Array.from({ length: CLIENTS }, () => Raw.open(fakeSocket)));
    const many: Contender[] = [
      { name: `real QEMU, ${CLIENTS} clients`, clients: realMany, ns: 0n, commands: 0 },
      { name: `fake, ${CLIENTS} clients`, clients: fakeMany, ns: 0n, commands: 0 },
    ];
    await race(many, Math.max(BLOCK, Math.floor(N / CLIENTS)));
    const [r1, f1] = one.map(rate) as [number, number];
    const [rn, fn] = many.map(rate) as [number, number];
    console.log(`  real QEMU, 1 client           ${fmt(r1).padStart(9)} cmd/s  1.00×`);
    console.log(
      `  fake, 1 client                ${fmt(f1).padStart(9)} cmd/s  ${fmt(f1 / r1, 2)}× of real   goal ≥ 5`,
    );
    console.log(`  real QEMU, ${CLIENTS} clients         ${fmt(rn).padStart(9)} cmd/s  1.00×`);
    console.log(
      `  fake, ${CLIENTS} clients              ${fmt(fn).padStart(9)} cmd/s  ${fmt(fn / rn, 2)}× of real   goal ≥ 5`,
    );
    for (const c of [...one, ...many]) for (const client of c.clients) client.close();
    await fairnessRun(fakeSocket);
    // Memory.
    const { before, after, seconds } = await memoryRun(fake);
    console.log(
      `Memory, ${fmt(MEMORY_COMMANDS)} query-status through one in-memory client (100 in flight), ${fmt(MEMORY_COMMANDS / seconds)} cmd/s`,
    );
    console.log(
      `  heap used  before ${mb(before.heapUsed).padStart(9)}   after ${mb(after.heapUsed).padStart(9)}   growth ${mb(after.heapUsed - before.heapUsed)}`,
    );
    console.log(
      `  RSS        before ${mb(before.rss).padStart(9)}   after ${mb(after.rss).padStart(9)}`,
    );
    console.log(`  history kept: ${fake.history.length} exchanges (option history, default 1000)`);
  } finally {
    await fake.close();
    qemu.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--garbage-sender') await garbageSender(process.argv[3]!);
else await main();
