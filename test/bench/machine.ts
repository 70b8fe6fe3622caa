// Time from `launch()` to a ready QMP session for the tiny test guest, next to a bare QEMU
// started the usual way, in the same run.
//
//   pnpm bench:machine [--runs N] [--accel tcg | kvm,tcg]
//
// (a) `launch(config)` of @qmpkit/machine: validate, private run dir, spawn with QMP on an
//     inherited socketpair, greeting + qmp_capabilities, query-kvm, state file written with
//     fsync. Resolves when the session is negotiated.
// (a0) the same with `stateFile: false` (no state file writes).
// (b) baseline: spawn qemu-system-x86_64 with the same arguments but
//     `-qmp unix:<path>,server=on,wait=off`, connect (retry every 1 ms on ENOENT /
//     ECONNREFUSED while QEMU creates the socket), read the greeting line.
// (b1) the baseline plus `qmp_capabilities` and its reply (what (a) also waits for).
// Contenders alternate (a a0 b b1, then reversed) so load from other processes spreads evenly;
// medians are printed with the ratio to (b). QEMU processes are ended by their own pid.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type AccelConfig, toArgv } from '@qmpkit/devices';
import { launch } from '@qmpkit/machine';
import { writeGuestImage } from '@qmpkit/testguest';
import { guestConfig } from './guest-config.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '15' },
    accel: { type: 'string', default: 'tcg' },
  },
});
const runs = Number(values.runs);
const accel: AccelConfig[] = values.accel.split(',').filter((a) => a !== '');

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

const dir = await mkdtemp(join(tmpdir(), 'qmpkit-bench-machine-'));
try {
  const image = await writeGuestImage(join(dir, 'guest.raw'));
  const config = guestConfig(image, accel, 32);

  const bareArgs = toArgv(config);
  let accelUsed = { machine: '', bare: '' };

  async function viaLaunch(stateFile: boolean): Promise<number> {
    const started = performance.now();
    const m = await launch(config, {
      runDirParent: dir,
      ...(stateFile ? {} : { stateFile: false as const }),
    });
    const took = performance.now() - started;
    accelUsed = { ...accelUsed, machine: m.accel };
    await m.kill();
    return took;
  }

  async function bare(negotiate: boolean, n: number): Promise<number> {
    const socket = join(dir, `bare-${n}.sock`);
    const started = performance.now();
    const child = spawn(
      'qemu-system-x86_64',
      [...bareArgs, '-qmp', `unix:${socket},server=on,wait=off`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr.resume();
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      let conn: net.Socket | undefined;
      while (conn === undefined) {
        conn = await new Promise<net.Socket | undefined>((resolve, reject) => {
          const s = net.connect(socket);
          s.once('connect', () => resolve(s));
          s.once('error', (error: NodeJS.ErrnoException) => {
            s.destroy();
            if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
              setTimeout(() => resolve(undefined), 1);
            } else reject(error);
          });
        });
        if (performance.now() - started > 30_000) throw new Error('no QMP socket within 30 s');
      }
      const lines: string[] = [];
      let buffer = '';
      const nextLine = () =>
        new Promise<string>((resolve) => {
          const take = () => {
            const at = buffer.indexOf('\n');
            if (at < 0) return false;
            resolve(buffer.slice(0, at));
            buffer = buffer.slice(at + 1);
            return true;
          };
          if (take()) return;
          const onData = (chunk: Buffer) => {
            buffer += chunk.toString('utf8');
            if (take()) conn?.off('data', onData);
          };
          conn?.on('data', onData);
        });
      lines.push(await nextLine()); // greeting
      if (negotiate) {
        conn.write('{"execute":"qmp_capabilities"}\n');
        lines.push(await nextLine());
      }
      const took = performance.now() - started;
      if (!lines[0]?.includes('"QMP"')) throw new Error(`not a greeting: ${lines[0]}`);
      if (negotiate) {
        conn.write('{"execute":"query-kvm"}\n');
        const kvm = JSON.parse(await nextLine()) as { return?: { enabled?: boolean } };
        accelUsed = { ...accelUsed, bare: kvm.return?.enabled ? 'kvm' : 'tcg' };
      }
      conn.destroy();
      return took;
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  }

  const results: Record<'a' | 'a0' | 'b' | 'b1', number[]> = { a: [], a0: [], b: [], b1: [] };
  // Warm-up (page cache, dynamic linker) for both, not counted.
  await viaLaunch(true);
  await bare(true, -1);
  for (let i = 0; i < runs; i++) {
    const order: Array<keyof typeof results> =
      i % 2 ? ['b1', 'b', 'a0', 'a'] : ['a', 'a0', 'b', 'b1'];
    for (const which of order) {
      const t =
        which === 'a'
          ? await viaLaunch(true)
          : which === 'a0'
            ? await viaLaunch(false)
            : await bare(which === 'b1', i);
      results[which].push(t);
    }
  }
  const base = median(results.b);
  const row = (label: string, xs: number[]) =>
    `  ${label.padEnd(58)} ${median(xs).toFixed(1).padStart(7)} ms  ${(median(xs) / base).toFixed(2)}× of (b)`;
  const [l1, l5, l15] = loadavg().map((x) => x.toFixed(2));
  console.log(
    `launch → ready QMP, tiny test guest (pc, 32 MiB, -accel ${accel.join(' -accel ')}), QEMU 7.2, ${runs} runs each, medians, interleaved`,
  );
  console.log(
    `  accelerator used: launch() ${accelUsed.machine}, bare ${accelUsed.bare}; load average before ${l1} ${l5} ${l15}`,
  );
  console.log(row('(a)  launch(): socketpair, negotiated, state file', results.a));
  console.log(row('(a0) launch() with stateFile: false', results.a0));
  console.log(row('(b)  bare: -qmp unix:…,wait=off, connect retry, greeting', results.b));
  console.log(row('(b1) bare + qmp_capabilities reply', results.b1));
  console.log(
    `  ratio (a)/(b) = ${(median(results.a) / base).toFixed(2)}, (a)/(b1) = ${(median(results.a) / median(results.b1)).toFixed(2)}`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
