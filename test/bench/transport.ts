/**
 * `pnpm bench:transport` — QMP round trips against a real QEMU 7.2, the codec's decode
 * throughput, and event-buffer memory. Every ratio is computed from this run's baseline.
 *
 *   (a) raw Node socket loop: write one line, read one line (the practical limit)
 *   (b) qmpkit, sequential `await qmp.execute('query-status')`
 *   (c) qmpkit, 32 commands in flight
 * once with ids on every command (qmpkit's default) and once without (`correlate: 'order'`),
 * each against a raw loop sending the same bytes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { connect } from '@qmpkit/transport';
import { encodeEvent, encodeGreeting, encodeReturn, QmpDecoder } from '@qmpkit/transport/codec';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const N = Number(process.env.BENCH_N ?? 20_000);
const BLOCK = 500;
const WARMUP = 1000;
const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-bench-'));
/** One QEMU, one QMP monitor per contender, so every mode talks to the same process. */
const sockets = ['a', 'b', 'c', 'a0', 'b0', 'c0'].map((m) => path.join(dir, `qmp-${m}.sock`));
let qemu: ChildProcess | undefined;

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

async function startQemu(): Promise<void> {
  const monitors = sockets.flatMap((socketPath, i) => [
    '-chardev',
    `socket,id=m${i},path=${socketPath},server=on,wait=off`,
    '-mon',
    `chardev=m${i},mode=control`,
  ]);
  qemu = spawn(
    'qemu-system-x86_64',
    [
      '-machine',
      'none',
      '-accel',
      'kvm',
      '-accel',
      'tcg',
      '-nodefaults',
      '-display',
      'none',
      ...monitors,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const deadline = Date.now() + 5000;
  while (!sockets.every((s) => existsSync(s))) {
    if (Date.now() > deadline) throw new Error('QEMU did not create its QMP sockets');
    await new Promise((r) => setTimeout(r, 5));
  }
}

type Runner = (n: number) => Promise<void>;

/** (a) write a line, read a line; nothing else. */
async function rawLoop(socketPath: string, withIds: boolean): Promise<Runner> {
  const socket = net.createConnection({ path: socketPath });
  await new Promise((r) => socket.once('connect', r));
  let onLine: () => void = () => {};
  socket.on('data', (chunk: Buffer) => {
    let i = chunk.indexOf(0x0a);
    while (i >= 0) {
      onLine();
      i = chunk.indexOf(0x0a, i + 1);
    }
  });
  const nextLine = () =>
    new Promise<void>((r) => {
      onLine = () => r();
    });
  await nextLine(); // greeting
  socket.write('{"execute":"qmp_capabilities"}\n');
  await nextLine();
  let id = 0;
  // The same bytes qmpkit sends: with an increasing id, or without one.
  const request = () =>
    withIds ? `{"execute":"query-status","id":${++id}}\n` : '{"execute":"query-status"}\n';
  return (n: number) =>
    new Promise<void>((resolve) => {
      let left = n;
      onLine = () => {
        if (--left === 0) resolve();
        else socket.write(request());
      };
      socket.write(request());
    });
}

/** (b)/(c) qmpkit with `inFlight` concurrent callers. */
async function qmpkit(
  socketPath: string,
  inFlight: number,
  correlate: 'id' | 'order',
): Promise<{ run: Runner; accel: string }> {
  const qmp = await connect(`unix:${socketPath}`, { correlate });
  const kvm = await qmp.execute('query-kvm');
  const run = async (n: number) => {
    let left = n;
    const worker = async () => {
      while (left > 0) {
        left--;
        await qmp.execute('query-status');
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
  };
  return { run, accel: kvm.enabled ? 'kvm' : 'tcg' };
}

/**
 * Runs the contenders in small alternating blocks (a b c a b c …) and sums each one's
 * time, so load from other processes on the host hits all of them alike.
 */
async function roundTrips(): Promise<{ rates: number[]; accel: string }> {
  const a = await rawLoop(sockets[0]!, true);
  const b = await qmpkit(sockets[1]!, 1, 'id');
  const c = await qmpkit(sockets[2]!, 32, 'id');
  const a0 = await rawLoop(sockets[3]!, false);
  const b0 = await qmpkit(sockets[4]!, 1, 'order');
  const c0 = await qmpkit(sockets[5]!, 32, 'order');
  const runners = [a, b.run, c.run, a0, b0.run, c0.run];
  for (const run of runners) await run(WARMUP);
  const totals = runners.map(() => 0);
  for (let done = 0; done < N; done += BLOCK) {
    for (let i = 0; i < runners.length; i++) {
      const t0 = performance.now();
      await runners[i]!(BLOCK);
      totals[i]! += performance.now() - t0;
    }
  }
  return { rates: totals.map((ms) => (N / ms) * 1000), accel: b.accel };
}

function decodeThroughput(smallOnly: boolean): {
  codec: number;
  baseline: number;
  bytes: number;
  messages: number;
} {
  const full = readFileSync(
    path.join(
      import.meta.dirname,
      '../../packages/transport/src/codec/fixtures/qemu-7.2-session.qmp',
    ),
  );
  // smallOnly: the session without its 200 KB query-qmp-schema line (per-message cost).
  const recorded = smallOnly
    ? Buffer.from(
        full
          .toString('latin1')
          .split('\n')
          .filter((l) => !l.includes('"meta-type"'))
          .join('\n'),
        'latin1',
      )
    : full;
  const copies = smallOnly ? 20_000 : 100;
  const stream = Buffer.concat(Array.from({ length: copies }, () => recorded));
  const chunk = 64 * 1024;
  let messages = 0;
  const count = () => {
    messages++;
  };
  const decoder = new QmpDecoder(
    {
      greeting: count,
      return: count,
      error: count,
      event: count,
      command: count,
      protocolError: (e) => {
        throw e;
      },
    },
    { chunksAreImmutable: true },
  ); // as the session uses it
  const decode = () => {
    for (let i = 0; i < stream.length; i += chunk) decoder.push(stream.subarray(i, i + chunk));
  };
  // Baseline: the floor any decoder pays — one toString + split + JSON.parse per line.
  const baseline = () => {
    for (const line of stream.toString('utf8').split('\n')) if (line.length > 1) JSON.parse(line);
  };
  const time = (fn: () => void) => {
    const t0 = performance.now();
    fn();
    return performance.now() - t0;
  };
  decode();
  baseline();
  messages = 0;
  // Alternate the two, best of 7 each, so host noise hits both alike.
  let codecMs = Number.POSITIVE_INFINITY;
  let baselineMs = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 7; i++) {
    codecMs = Math.min(codecMs, time(decode));
    baselineMs = Math.min(baselineMs, time(baseline));
  }
  const mb = stream.length / 1e6;
  return {
    codec: mb / (codecMs / 1000),
    baseline: mb / (baselineMs / 1000),
    bytes: stream.length,
    messages: messages / 7,
  };
}

/** 100k events from an in-process QMP peer, buffered in an iterator vs consumed as they come. */
async function eventMemory(
  total: number,
): Promise<{ buffered: number; streamed: number; bufferedPeak: number; streamedPeak: number }> {
  const evPath = path.join(dir, 'events.sock');
  const line = encodeEvent('BLOCK_JOB_READY', {
    type: 'mirror',
    device: 'drive0',
    len: 1048576,
    offset: 1048576,
    speed: 0,
  });
  const server = net.createServer((s) => {
    s.write(encodeGreeting({ qemu: { major: 7, minor: 2, micro: 0 }, package: 'bench' }, []));
    s.on('data', (c: Buffer) => {
      const text = c.toString();
      const id = JSON.parse(text.slice(0, text.indexOf('\n'))).id;
      if (text.includes('qmp_capabilities')) s.write(encodeReturn({}, id));
      else {
        const batch = line.repeat(1000);
        for (let i = 0; i < total / 1000; i++) s.write(batch);
        s.write(encodeReturn({}, id));
      }
    });
  });
  await new Promise<void>((r) => server.listen(evPath, r));
  const measure = async (consume: boolean) => {
    gc();
    const before = process.memoryUsage().heapUsed;
    const qmp = await connect(`unix:${evPath}`);
    const stream = qmp.events({ capacity: total + 1 });
    let consumed = 0;
    let peak = 0;
    const consumer = consume
      ? (async () => {
          for await (const _ of stream) {
            if (++consumed % 10_000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
            if (consumed === total) break;
          }
        })()
      : Promise.resolve();
    await qmp.executeUnchecked('x-flood');
    await consumer;
    peak = Math.max(peak, process.memoryUsage().heapUsed);
    gc();
    const retained = process.memoryUsage().heapUsed - before;
    if (!consume && stream.buffered !== total) throw new Error(`buffered ${stream.buffered}`);
    await stream.return();
    await qmp.close();
    return { retained, peak: peak - before };
  };
  const buffered = await measure(false);
  const streamed = await measure(true);
  server.close();
  return {
    buffered: buffered.retained,
    streamed: streamed.retained,
    bufferedPeak: buffered.peak,
    streamedPeak: streamed.peak,
  };
}

try {
  const load = loadavg();
  await startQemu();
  console.log(
    `QMP round trips, query-status, QEMU 7.2 -machine none, unix socket, N=${fmt(N)}, ${BLOCK}-command blocks interleaved a b c a b c …`,
  );
  const { rates, accel } = await roundTrips();
  const [a = 0, b = 0, c = 0, a0 = 0, b0 = 0, c0 = 0] = rates;
  console.log(
    `  accelerator: ${accel} (query-kvm); host: ${cpus().length} CPUs, load average before ${load.map((l) => l.toFixed(2)).join(' ')}`,
  );
  const row = (label: string, rate: number, base: number, goal: string) =>
    console.log(
      `  ${label.padEnd(34)} ${fmt(rate).padStart(7)} cmd/s  ${fmt(rate / base, 2)}×${goal}`,
    );
  console.log('  every command with an id (qmpkit default, correlate: id):');
  row('(a) raw socket loop, same bytes', a, a, '');
  row('(b) qmpkit sequential', b, a, ' of (a)   goal ≥ 0.90');
  row('(c) qmpkit 32 in flight', c, a, ' of (a)   goal ≥ 1.00');
  console.log('  in-band commands without id (correlate: order):');
  row('(a0) raw socket loop, no id', a0, a0, `   (${fmt(a0 / a, 2)}× of (a): QEMU's cost of ids)`);
  row('(b0) qmpkit sequential', b0, a0, ' of (a0)  goal ≥ 0.90');
  row('(c0) qmpkit 32 in flight', c0, a0, ' of (a0)  goal ≥ 1.00');

  for (const smallOnly of [false, true]) {
    const d = decodeThroughput(smallOnly);
    console.log(
      `Codec decode, recorded QEMU 7.2 stream${smallOnly ? ' without the schema line' : ''} (${fmt(d.bytes / 1e6, 1)} MB, ${fmt(d.messages)} messages, 64 KiB chunks)`,
    );
    console.log(`  QmpDecoder                         ${fmt(d.codec).padStart(6)} MB/s`);
    console.log(
      `  baseline toString+split+JSON.parse ${fmt(d.baseline).padStart(6)} MB/s   codec ${fmt(d.codec / d.baseline, 2)}× of baseline`,
    );
  }

  const m = await eventMemory(100_000);
  console.log('Event memory, 100k BLOCK_JOB_READY events from an in-process QMP peer');
  console.log(
    `  buffered in one iterator  retained ${fmt(m.buffered / 1e6, 1).padStart(5)} MB (${fmt(m.buffered / 100_000)} B/event), peak heap +${fmt(m.bufferedPeak / 1e6, 1)} MB`,
  );
  console.log(
    `  streamed (consumed live)  retained ${fmt(m.streamed / 1e6, 1).padStart(5)} MB, peak heap +${fmt(m.streamedPeak / 1e6, 1)} MB (garbage not yet collected)`,
  );
} finally {
  qemu?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
