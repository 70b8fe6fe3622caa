// Frozen against unfrozen disk-only snapshots of the Linux test guest while a loop in the
// guest writes 64 KiB files (temp name + rename) to its ext4 disk: for every snapshot the
// disk is read from its overlay chain (qemu-img convert to raw), `e2fsck -fn` must be clean
// and every file complete. First the crash-consistent saves (`quiesce: false`), then the
// frozen ones (`quiesce`: the guest agent) on the same VM: they must not alternate, because a
// freeze syncs the guest's page cache and a crash snapshot right after one sees that clean
// state. `lag` is how many files the writer had completed at the save that the snapshot
// lacks. Also prints how long the guest's filesystems stayed frozen (freeze + switch + thaw).
//
//   pnpm bench:freeze [--trials 20] [--qemu qemu-system-x86_64]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { GuestAgent } from '@qmpkit/guest-agent';
import { launch, type Machine } from '@qmpkit/machine';
import { openSnapshots } from '@qmpkit/snapshots';
import {
  checkDisk,
  LINUX_READY,
  linuxVmConfig,
  makeExt4,
  startWriter,
  writerPast,
} from '../../packages/snapshots/src/__tests__/linux-guest.test-support.js';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '20' },
    qemu: { type: 'string', default: 'qemu-system-x86_64' },
  },
});
const trials = Number(values.trials);
const cacheDir = path.resolve(import.meta.dirname, '../../.cache');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? Number.NaN
    : ((s[(s.length - 1) >> 1] ?? Number.NaN) + (s[s.length >> 1] ?? Number.NaN)) / 2;
};

const dir = await mkdtemp(path.join(tmpdir(), 'qmpkit-freeze-bench-'));
let m: Machine | undefined;
let agent: GuestAgent | undefined;
try {
  const data = path.join(dir, 'data.img');
  await makeExt4(data, 32);
  const config = await linuxVmConfig({ dir, dataDisk: data });
  const started = performance.now();
  m = await launch(config, { qemu: values.qemu, cacheDir, consoles: ['ser0'], runDirParent: dir });
  await m.console('ser0').expect(LINUX_READY, { timeout: 300_000 });
  const readyMs = performance.now() - started;
  agent = new GuestAgent({ socket: path.join(dir, 'qga.sock') });
  await agent.waitForAgent({ timeout: 120_000 });
  const agentMs = performance.now() - started;
  console.log(
    `boot: READY ${(readyMs / 1000).toFixed(1)} s, agent ${(agentMs / 1000).toFixed(1)} s`,
  );
  await startWriter(agent);
  const snaps = await openSnapshots(m, { dir: path.join(dir, 'store'), strategy: 'external' });
  const taken: { kind: 'frozen' | 'crash'; layer: string; frozenMs: number; index: number }[] = [];
  let index = await writerPast(agent, 0);
  for (const kind of ['crash', 'frozen'] as const) {
    for (let t = 1; t <= trials; t++) {
      index = await writerPast(agent, index);
      const r = await snaps.save(`${kind}-${t}`, {
        diskOnly: true,
        quiesce: kind === 'frozen' ? agent : false,
      });
      if (r.snapshot.consistency !== (kind === 'frozen' ? 'filesystem' : 'crash'))
        throw new Error(`${kind}-${t}: consistency ${r.snapshot.consistency}`);
      const p = r.timings.phases;
      taken.push({
        kind,
        layer: r.snapshot.layers[0] ?? '',
        frozenMs: (p.freeze ?? 0) + (p.switch ?? 0) + (p.thaw ?? 0),
        index,
      });
    }
  }
  const results = { frozen: [] as string[], crash: [] as string[] };
  const tally = { frozen: { clean: 0, complete: 0 }, crash: { clean: 0, complete: 0 } };
  for (const s of taken) {
    const check = await checkDisk(s.layer, s.layer === data ? 'raw' : 'qcow2');
    if (check.fsckCode === 0) tally[s.kind].clean++;
    if (check.incomplete.length === 0) tally[s.kind].complete++;
    results[s.kind].push(
      `e2fsck=${check.fsckCode} files=${check.files} last=${check.last} lag=${s.index - check.last} incomplete=${check.incomplete.length}`,
    );
  }
  for (const kind of ['crash', 'frozen'] as const) {
    console.log(`\n${kind} (${trials}):`);
    for (const [i, line] of results[kind].entries()) console.log(`  ${i + 1}: ${line}`);
  }
  const frozenMs = taken.filter((s) => s.kind === 'frozen').map((s) => s.frozenMs);
  const crashMs = taken.filter((s) => s.kind === 'crash').map((s) => s.frozenMs);
  console.log(
    '\n| snapshots | e2fsck -fn clean | only complete files | freeze→thaw (or switch) median |',
  );
  console.log('|---|---|---|---|');
  console.log(
    `| frozen (agent) | ${tally.frozen.clean}/${trials} | ${tally.frozen.complete}/${trials} | ${median(frozenMs).toFixed(0)} ms (max ${Math.max(...frozenMs).toFixed(0)}) |`,
  );
  console.log(
    `| crash (no freeze) | ${tally.crash.clean}/${trials} | ${tally.crash.complete}/${trials} | ${median(crashMs).toFixed(0)} ms |`,
  );
  if (tally.frozen.clean !== trials || tally.frozen.complete !== trials) process.exitCode = 1;
} finally {
  await agent?.close();
  await m?.stop();
  await rm(dir, { recursive: true, force: true });
}
