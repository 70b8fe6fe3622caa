/**
 * `qmpkit vm clone` against a real QEMU: a VM under a supervisor with its RAM in a shared
 * memory-backend-file and its COM1 kept as a console, `snapshot save --shared-ram`, then three
 * clones, each under a supervisor of its own that outlives the command: `vm status --dir`
 * answers for each, a `snapshot save` on each records a console that continues the template's
 * exactly (its text at the save, then n+1, n+2, …), `vm stop --dir` ends each, and no QEMU or
 * supervisor is left. Refused inputs create nothing and start nothing; a clone that cannot
 * start leaves no directory.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MiB, toJSON } from '@qmpkit/devices';
import { createQcow2Guest, parseCounterLine } from '@qmpkit/testguest';
import { pidfileQemus, waitForPidGone } from '@qmpkit/testguest/test-support';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliRunner, runCli as run } from '../cli.test-support.js';
import {
  QEMU_BINARY,
  qemuSuite,
  SKIP_REASON,
  skipQemu,
  startVm,
  testVmConfig,
} from '../qemu.test-support.js';
import type { StatusResult } from '../vm/protocol.js';

const suite = qemuSuite({ prefix: 'qmpkit-vm-clone-' });

/** The unread text of `chardev` recorded with snapshot `name` in the store of VM dir `dir`. */
function recordedConsole(dir: string, name: string, chardev = 'ser0'): string {
  const manifest = JSON.parse(readFileSync(path.join(dir, 'snapshots', 'manifest.json'), 'utf8'));
  const record = (
    manifest.snapshots as { name: string; consoles: { chardev: string; unread: string }[] }[]
  ).find((s) => s.name === name);
  const text = record?.consoles.find((c) => c.chardev === chardev)?.unread;
  expect(text, `${name}: console ${chardev} recorded`).toBeTypeOf('string');
  return text ?? '';
}

function counters(text: string): number[] {
  return text
    .split('\r\n')
    .map(parseCounterLine)
    .filter((n): n is number => n !== undefined);
}

/**
 * A `--qemu` for the partial-failure test: a fixed POSIX sh script (its inputs come through
 * the environment and its arguments, never into its text) that exits 1 with a message when an
 * argument names `$QMPKIT_TEST_REFUSE`, else logs `<pid> <args>` to `$QMPKIT_TEST_LOG` and
 * execs the QEMU under test (`$QMPKIT_TEST_QEMU_REAL`, with `-L $QMPKIT_TEST_QEMU_DATA` when
 * set) under the same pid.
 */
function writeRefusingQemu(dir: string): string {
  const file = path.join(dir, 'refusing-qemu');
  writeFileSync(
    file,
    [
      '#!/bin/sh',
      'for a in "$@"; do',
      '  case "$a" in',
      '    *"$QMPKIT_TEST_REFUSE"*) echo "refusing-qemu: this clone is refused by the test" >&2; exit 1 ;;',
      '  esac',
      'done',
      'echo "$$ $*" >> "$QMPKIT_TEST_LOG"',
      'if [ -n "$QMPKIT_TEST_QEMU_DATA" ]; then',
      '  exec "$QMPKIT_TEST_QEMU_REAL" -L "$QMPKIT_TEST_QEMU_DATA" "$@"',
      'fi',
      'exec "$QMPKIT_TEST_QEMU_REAL" "$@"',
      '',
    ].join('\n'),
    { mode: 0o700 },
  );
  return file;
}

/** Pids of the processes whose command line names `text` (a leaked supervisor or QEMU). */
function processesNaming(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // Ended while we looked: not a leak.
    }
  }
  return pids;
}

describe.skipIf(skipQemu)(`qmpkit vm clone (real QEMU, tcg)${SKIP_REASON}`, () => {
  const work = suite.dir;
  const dir = path.join(work, 'vm');
  let config: string;

  beforeAll(async () => {
    await createQcow2Guest(path.join(work, 'guest.qcow2'), { intervalMs: 20 });
    const vm = testVmConfig(
      { memoryMiB: 16 },
      {
        machine: { type: 'pc-i440fx-7.2', 'memory-backend': 'ram0' },
        objects: [
          {
            'qom-type': 'memory-backend-file',
            id: 'ram0',
            size: 16 * MiB,
            'mem-path': path.join(work, 'vm.ram'),
            share: true,
          },
        ],
      },
    );
    config = path.join(work, 'vm.json');
    writeFileSync(config, toJSON(vm));
  });

  it('clones run under supervisors of their own: status, save and stop through --dir; the console continues exactly; nothing left', async () => {
    const template = await startVm(suite, dir, config, '--console', 'ser0');

    // A template whose console shows a counter (the guest may not have printed one yet: save
    // again until it has; each save is a complete template).
    let tpl = '';
    let n: number | undefined;
    for (let i = 1; n === undefined && i <= 10; i++) {
      tpl = `tpl${i}`;
      const save = await run('snapshot', 'save', tpl, '--dir', dir, '--shared-ram');
      expect(save.code).toBe(0);
      expect(save.out).toMatch(/^RAM file kept for clones: /m);
      n = counters(recordedConsole(dir, tpl)).at(-1);
    }
    expect(n).toBeTypeOf('number');
    const saved = recordedConsole(dir, tpl);
    const last = n ?? -1;

    const into = path.join(work, 'farm');
    const clone = await run('vm', 'clone', dir, '--count', '3', '--snapshot', tpl, '--into', into);
    expect(clone.err).toBe('');
    expect(clone.code).toBe(0);
    const lines = clone.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^3 clones of '${tpl}' in .+ \\(RAM: private-map\\)$`));
    const rows = lines.slice(1).map((l) => {
      const m = /^(\S+) {2}supervisor pid (\d+) {2}qemu pid (\d+) {2}running$/.exec(l);
      expect(m, l).not.toBeNull();
      const pids = [Number(m?.[2]), Number(m?.[3])];
      for (const pid of pids) suite.trackPid(pid);
      return { dir: m?.[1] ?? '', pids };
    });
    const dirs = [1, 2, 3].map((i) => path.join(into, `${tpl}-${i}`));
    expect(rows.map((r) => r.dir)).toEqual(dirs);

    // The command has returned: each clone is a VM of its own, reached through its supervisor.
    for (const [i, c] of rows.entries()) {
      const status = await run('vm', 'status', '--dir', c.dir, '--json');
      expect(status.code).toBe(0);
      const s = JSON.parse(status.out) as StatusResult;
      expect(s).toMatchObject({ dir: c.dir, pid: c.pids[0], qemu: { pid: c.pids[1] } });
      expect(s.qemu.runState).toBe('running');
      expect(s.qemu.version.startsWith(`${QEMU_BINARY.version?.major}.`)).toBe(true);

      // A save on the clone records its console: the template's text at the save (restored
      // by the load), then the clone's own lines, counting on from the saved counter.
      const save = await run('snapshot', 'save', `own${i}`, '--dir', c.dir);
      expect(save.code, save.err).toBe(0);
      const text = recordedConsole(c.dir, `own${i}`);
      expect(text.startsWith(saved)).toBe(true);
      const own = counters(text.slice(saved.length));
      expect(own.length).toBeGreaterThan(0);
      expect(own).toEqual(own.map((_, k) => last + 1 + k));
      const list = await run('snapshot', 'list', '--dir', c.dir);
      expect(list.out).toContain(`own${i}`);
    }

    for (const c of rows) {
      const stop = await run('vm', 'stop', '--dir', c.dir);
      expect(stop.code).toBe(0);
      const gone = await run('vm', 'status', '--dir', c.dir);
      expect(gone.code).toBe(2);
    }
    expect((await run('vm', 'stop', '--dir', dir)).code).toBe(0);
    for (const pid of [template.pid, template.qemu.pid, ...rows.flatMap((r) => r.pids)])
      expect(await waitForPidGone(pid, 30_000), `pid ${pid} ended`).toBe(true);
    expect(pidfileQemus(work)).toEqual([]);
  }, 240_000);

  it('refused inputs: typed errors, nothing created, nothing started', async () => {
    const store = path.join(dir, 'snapshots', 'manifest.json');
    expect(existsSync(store)).toBe(true);
    const into = path.join(work, 'refused');

    const zero = await run('vm', 'clone', dir, '--count', '0', '--into', into);
    expect(zero.code).toBe(2);
    expect(zero.err).toMatch(/--count must be a positive integer/);
    expect(existsSync(into)).toBe(false);

    const missing = await run('vm', 'clone', dir, '--count', '2', '--snapshot', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/SnapshotNotFoundError: .*nope/);
    expect(existsSync(path.join(dir, 'clones'))).toBe(false);

    // `--into` holds a directory a clone of this call would get: refused before anything.
    mkdirSync(path.join(into, 'tpl1-2'), { recursive: true, mode: 0o700 });
    const exists = await run(
      'vm',
      'clone',
      dir,
      '--count',
      '3',
      '--snapshot',
      'tpl1',
      '--into',
      into,
    );
    expect(exists.code).toBe(1);
    expect(exists.err).toMatch(/SnapshotCloneError \(exists\): clone directory .*tpl1-2 exists/);
    expect(readdirSync(into)).toEqual(['tpl1-2']);
    expect(readdirSync(path.join(into, 'tpl1-2'))).toEqual([]);
  });

  it('a clone that cannot start: exit 2, every directory of the call removed, no process left', async () => {
    const into = path.join(work, 'broken');
    const r = await run(
      'vm',
      'clone',
      dir,
      '--count',
      '2',
      '--snapshot',
      'tpl1',
      '--into',
      into,
      '--qemu',
      path.join(work, 'no-such-qemu'),
    );
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/did not start: .*no-such-qemu/);
    expect(r.err).toMatch(
      /\nqmpkit: vm clone .*: no clone of this call had started; every clone directory removed\n$/,
    );
    expect(existsSync(into)).toBe(false);
    expect(pidfileQemus(work)).toEqual([]);
  }, 120_000);
  it('one clone of three does not start: the two started are stopped, every directory removed, the report says so; nothing left', async () => {
    // Clone 3's QEMU refuses (its command line names its directory); 1 and 2 start first or
    // beside it, whatever the concurrency: the queue hands them out before clone 3.
    const into = path.join(work, 'partial');
    const refused = path.join(into, 'tpl1-3');
    const log = path.join(work, 'partial-qemu.log');
    writeFileSync(log, '');
    const runWith = cliRunner({
      ...QEMU_BINARY.env,
      QMPKIT_TEST_QEMU_REAL: QEMU_BINARY.system,
      // The data dir of an unpacked QEMU (10.0): its `-L` (none for the system's).
      QMPKIT_TEST_QEMU_DATA: QEMU_BINARY.baseArgs.includes('-L')
        ? QEMU_BINARY.baseArgs[QEMU_BINARY.baseArgs.indexOf('-L') + 1]
        : '',
      QMPKIT_TEST_REFUSE: `${refused}/`,
      QMPKIT_TEST_LOG: log,
    });
    const r = await runWith(
      'vm',
      'clone',
      dir,
      '--count',
      '3',
      '--snapshot',
      'tpl1',
      '--into',
      into,
      '--qemu',
      writeRefusingQemu(work),
    );
    expect(r.out).toBe('');
    // The reason (with QEMU's stderr), then the outcome on a line of its own.
    const [reason, outcome, ...rest] = r.err.split(/\n(?=qmpkit: )/);
    expect(reason).toMatch(
      new RegExp(
        `^qmpkit: vm clone ${dir}: clone ${refused} did not start: [\\s\\S]*refused by the test$`,
      ),
    );
    expect(outcome).toBe(
      `qmpkit: vm clone ${dir}: the 2 clones started by this call (tpl1-1, tpl1-2) were stopped; every clone directory removed\n`,
    );
    expect(rest).toEqual([]);
    expect(r.code).toBe(2);
    // Checked at once: the CLI waits for the stopped clones' supervisors to exit before it
    // reports (before it did, both still ran here, their directories removed under them).
    expect(processesNaming(into)).toEqual([]);
    // The two clones' QEMUs did start (the wrapper ran them), and have ended.
    const launched = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l.includes(into))
      .map((l) => ({
        pid: Number(l.split(' ')[0]),
        clone: /\/(tpl1-\d)\//.exec(l)?.[1],
      }));
    expect(launched.map((l) => l.clone).sort()).toEqual(['tpl1-1', 'tpl1-2']);
    for (const { pid } of launched)
      expect(await waitForPidGone(pid, 30_000), `clone QEMU ${pid} ended`).toBe(true);
    // No directory and no QEMU of the call is left.
    expect(existsSync(into)).toBe(false);
    expect(pidfileQemus(work)).toEqual([]);
  }, 180_000);
});
