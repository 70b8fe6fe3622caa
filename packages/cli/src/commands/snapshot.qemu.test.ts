/**
 * `qmpkit vm` and `qmpkit snapshot` against a real QEMU: the tiny test guest under a
 * supervisor started by `vm start`, snapshots of two strategies, the tree, load, delete,
 * Ctrl-C during a save (in-process and as SIGINT to a real `qmpkit` process), stop, and the
 * read-only list without a supervisor. One VM for the whole file, to stay lean.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { toJSON } from '@qmpkit/devices';
import { readState } from '@qmpkit/machine';
import { createQcow2Guest } from '@qmpkit/testguest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RecordingIo, recordingIo, runCli } from '../cli.test-support.js';
import { main } from '../main.js';
import {
  QEMU_BINARY,
  qemuSuite,
  SKIP_REASON,
  skipQemu,
  testVmConfig,
} from '../qemu.test-support.js';

import type { ListResult, StatusResult } from '../vm/protocol.js';
import { cliEntry } from '../vm/spawn.js';

/** The binary under test (`QMPKIT_TEST_QEMU`), as `vm status` prints it: `7\.2`, `10\.0`. */
const VERSION = String.raw`${QEMU_BINARY.version?.major}\.${QEMU_BINARY.version?.minor}`;

const run = runCli;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves when `read()` contains `text` (polling), or rejects after `timeout`. */
async function waitFor(read: () => string, text: string | RegExp, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  while (!(typeof text === 'string' ? read().includes(text) : text.test(read()))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${text} in:\n${read()}`);
    await sleep(5);
  }
}

// A private dir for the file; after it (also after a failure or timeout) every QEMU whose
// pidfile lies under the dir (the supervisor's) and every tracked pid (the supervisors) is
// killed, and the dir is removed. Top level, so its hooks run even when the suite skips.
const suite = qemuSuite({ prefix: 'qmpkit-vm-' });

describe.skipIf(skipQemu)(`qmpkit vm + qmpkit snapshot (real QEMU, tcg)${SKIP_REASON}`, () => {
  const work = suite.dir;
  const dir = path.join(work, 'vm');
  let config: string;

  beforeAll(async () => {
    // 64 MiB, every page filled: a save streams ~64 MiB, long enough to interrupt.
    await createQcow2Guest(path.join(work, 'guest.qcow2'), { intervalMs: 50, fillRam: true });
    // The disk's file name is relative to the configuration file's directory.
    const vm = testVmConfig({ memoryMiB: 64 });
    config = path.join(work, 'vm.json');
    writeFileSync(config, toJSON(vm));
  });

  afterAll(async () => {
    if (process.env.QMPKIT_TEST_LOG)
      console.log(readFileSync(path.join(dir, 'supervisor.log'), 'utf8'));
  });

  it('vm start returns once the VM runs; vm status shows pids, QEMU version, accelerator, run state', async () => {
    const start = await run(
      'vm',
      'start',
      config,
      '--dir',
      dir,
      '--accel',
      'tcg',
      '--console',
      'ser0',
      '--qemu',
      QEMU_BINARY.system,
    );
    expect(start.err).toBe('');
    expect(start.code).toBe(0);
    expect(start.out).toMatch(
      new RegExp(
        String.raw`^VM started: QEMU ${VERSION}\.\d+ \(pid \d+, accelerator tcg, running\); supervisor pid \d+; snapshots use external\n$`,
      ),
    );
    const json = await run('vm', 'status', '--dir', dir, '--json');
    expect(json.code).toBe(0);
    const status = JSON.parse(json.out) as StatusResult;
    suite.trackPid(status.pid);
    suite.trackPid(status.qemu.pid);
    expect(status.qemu).toMatchObject({ accel: 'tcg', runState: 'running' });
    const text = await run('vm', 'status', '--dir', dir);
    expect(text.out).toMatch(
      new RegExp(String.raw`^qemu +pid \d+, QEMU ${VERSION}\.\d+, accelerator tcg$`, 'm'),
    );
    expect(text.out).toMatch(/^run state +running$/m);
    // A second supervisor on the same directory is refused.
    const again = await run('vm', 'start', config, '--dir', dir);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/already runs at .*qmpkit vm stop --dir/);
  });

  it('saves; mixing strategy families is refused; a duplicate name needs --overwrite; list shows the tree', async () => {
    const first = await run('snapshot', 'save', 'first', '--dir', dir, '--strategy', 'external');
    expect(first.err).toMatch(/^save first: pause$/m); // plain progress lines off a terminal
    expect(first.code).toBe(0);
    expect(first.out).toMatch(
      /^saved 'first': external, \d+ ms \(guest downtime \d+ ms\), [\d.]+ MiB of VM state\n$/,
    );
    // An internal snapshot on top of external ones could never load (issue #12 §4): refused.
    const mixed = await run(
      'snapshot',
      'save',
      'second',
      '--dir',
      dir,
      '--strategy',
      'internal-jobs',
    );
    expect(mixed.code).toBe(1);
    expect(mixed.err).toMatch(/the store holds external snapshots \('first'\)/);
    const second = await run(
      'snapshot',
      'save',
      'second',
      '--dir',
      dir,
      '--strategy',
      'external',
      '--description',
      'after first',
      '--portable',
    );
    expect(second.code).toBe(0);
    expect(second.out).toMatch(/^saved 'second': external, /);
    // QEMU >= 9.0 (10.0 here) writes mapped-ram by default; --portable always the stream.
    const manifest = JSON.parse(
      readFileSync(path.join(dir, 'snapshots', 'manifest.json'), 'utf8'),
    ) as { snapshots: { name: string; stateFile: { encoding: { format: string } } }[] };
    expect(manifest.snapshots.map((s) => [s.name, s.stateFile.encoding.format])).toEqual([
      ['first', (QEMU_BINARY.version?.major ?? 0) >= 9 ? 'mapped-ram' : 'stream'],
      ['second', 'stream'],
    ]);

    const dup = await run('snapshot', 'save', 'first', '--dir', dir);
    expect(dup.code).toBe(1);
    expect(dup.err).toBe(
      "qmpkit: snapshot 'first' already exists; use --overwrite to replace it\n",
    );

    const list = await run('snapshot', 'list', '--dir', dir);
    expect(list.code).toBe(0);
    const lines = list.out.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^ {2}first +external +[\d.]+ MiB {2}(just now|\d+ s ago)$/);
    expect(lines[1]).toMatch(
      /^\* └─ second {2}external +[\d.]+ MiB {2}(just now|\d+ s ago) {2}← current {2}after first$/,
    );
    const json = JSON.parse(
      (await run('snapshot', 'list', '--dir', dir, '--json')).out,
    ) as ListResult;
    expect(json.snapshots.map((s) => [s.name, s.strategy, s.parent])).toEqual([
      ['first', 'external', null],
      ['second', 'external', 'first'],
    ]);
    expect(json.current).toBe(json.snapshots[1]?.id);
  });

  it('loads the first snapshot; an unknown name exits 1 with a suggestion', async () => {
    const typo = await run('snapshot', 'load', 'frist', '--dir', dir);
    expect(typo.code).toBe(1);
    expect(typo.err).toBe(
      "qmpkit: no snapshot 'frist'; did you mean first? (snapshots: first, second)\n",
    );
    const load = await run('snapshot', 'load', 'first', '--dir', dir);
    expect(load.err).toMatch(/^load first: restart$/m);
    expect(load.code).toBe(0);
    expect(load.out).toMatch(/^loaded 'first': external, \d+ ms \(guest downtime \d+ ms\)/);
    const json = JSON.parse(
      (await run('snapshot', 'list', '--dir', dir, '--json')).out,
    ) as ListResult;
    expect(json.current).toBe(json.snapshots[0]?.id);
    // An external load restarts QEMU: the supervisor keeps it and reports the new pid.
    const status = JSON.parse(
      (await run('vm', 'status', '--dir', dir, '--json')).out,
    ) as StatusResult;
    suite.trackPid(status.qemu.pid);
    expect(status.qemu.runState).toBe('running');
  });

  it('Ctrl-C during a save (in-process interrupt): exit 130, the store is unchanged, the VM runs', async () => {
    const io: RecordingIo = recordingIo({ PATH: process.env.PATH });
    const saving = main(['snapshot', 'save', 'doomed', '--dir', dir, '--strategy', 'external'], io);
    // Interrupted while QEMU streams the RAM (the `save` phase), not before it started.
    await waitFor(io.err, 'save doomed: save ');
    io.interrupt();
    expect(await saving).toBe(130);
    expect(io.out()).toBe('');
    expect(io.err()).toMatch(
      /qmpkit: save of 'doomed' aborted; the store is unchanged \('doomed' does not exist\); the VM is running\n$/,
    );
    const list = await run('snapshot', 'list', '--dir', dir);
    expect(list.out).not.toContain('doomed');
    const status = await run('vm', 'status', '--dir', dir);
    expect(status.code).toBe(0);
    expect(status.out).toMatch(/^run state +running$/m);
  });

  it('SIGINT to a real `qmpkit snapshot save` process: exit 130 after the supervisor confirms', async () => {
    const child = spawn(
      process.execPath,
      [...cliEntry(), 'snapshot', 'save', 'doomed2', '--dir', dir, '--strategy', 'external'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      err += s;
    });
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    );
    await waitFor(() => err, 'save doomed2: ');
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(out).toBe('');
    expect(err).toMatch(/qmpkit: interrupted: aborting the save of 'doomed2'/);
    expect(err).toMatch(
      /save of 'doomed2' aborted; the store is unchanged .*; the VM is running\n$/,
    );
    const list = JSON.parse(
      (await run('snapshot', 'list', '--dir', dir, '--json')).out,
    ) as ListResult;
    expect(list.snapshots.map((s) => s.name)).toEqual(['first', 'second']);
    expect((await run('vm', 'status', '--dir', dir)).out).toMatch(/^run state +running$/m);
  });

  it('deletes a snapshot; the tree follows', async () => {
    const del = await run('snapshot', 'delete', 'second', '--dir', dir);
    expect(del.code).toBe(0);
    expect(del.out).toMatch(/^deleted 'second' \(external\) in \d+ ms\n$/);
    const missing = await run('snapshot', 'delete', 'second', '--dir', dir);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^qmpkit: no snapshot 'second'/);
  });

  it('QEMU killed: the supervisor exits; a config on frozen images is refused; vm start --dir picks up from the state file', async () => {
    const before = JSON.parse(
      (await run('vm', 'status', '--dir', dir, '--json')).out,
    ) as StatusResult;
    process.kill(before.qemu.pid, 'SIGKILL');
    await waitFor(() => (existsSync(path.join(dir, 'control.sock')) ? '' : 'gone'), 'gone', 10_000);
    expect((await run('vm', 'status', '--dir', dir)).code).toBe(2);
    expect((await readState(path.join(dir, 'state.json'))).runtime.status).toBe('exited');

    // guest.qcow2 is the frozen layer under snapshot 'first': booting the config would change it.
    const refused = await run('vm', 'start', config, '--dir', dir, '--accel', 'tcg');
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(
      /guest\.qcow2 is a frozen layer of snapshot 'first'.*qmpkit vm start --dir/,
    );

    const again = await run('vm', 'start', '--dir', dir);
    expect(again.err).toBe('');
    expect(again.code).toBe(0);
    const status = JSON.parse(
      (await run('vm', 'status', '--dir', dir, '--json')).out,
    ) as StatusResult;
    suite.trackPid(status.pid);
    suite.trackPid(status.qemu.pid);
    expect(status.qemu.runState).toBe('running');
    const load = await run('snapshot', 'load', 'first', '--dir', dir);
    expect(load.code).toBe(0);
  });

  it('supervisor killed: QEMU is left without its owner; vm start --dir kills that QEMU and starts again', async () => {
    const before = JSON.parse(
      (await run('vm', 'status', '--dir', dir, '--json')).out,
    ) as StatusResult;
    process.kill(before.pid, 'SIGKILL');
    await waitFor(() => (alive(before.pid) ? '' : 'gone'), 'gone', 10_000);
    const status = await run('vm', 'status', '--dir', dir);
    expect(status.code).toBe(2);
    expect(status.err).toMatch(/ECONNREFUSED on control\.sock/); // the socket file is stale
    expect(alive(before.qemu.pid)).toBe(true);

    const again = await run('vm', 'start', '--dir', dir);
    expect(again.code).toBe(0);
    const after = JSON.parse(
      (await run('vm', 'status', '--dir', dir, '--json')).out,
    ) as StatusResult;
    suite.trackPid(after.pid);
    suite.trackPid(after.qemu.pid);
    expect(after.qemu.pid).not.toBe(before.qemu.pid);
    await waitFor(() => (alive(before.qemu.pid) ? '' : 'gone'), 'gone', 10_000);
    expect((await run('snapshot', 'list', '--dir', dir)).out).toMatch(/^\* first /m);
  });

  it('vm stop ends QEMU and the supervisor; afterwards list reads the disk and the rest exits 2', async () => {
    const stateFile = path.join(dir, 'state.json');
    const stop = await run('vm', 'stop', '--dir', dir);
    expect(stop.err).toBe('');
    expect(stop.code).toBe(0);
    expect(stop.out).toMatch(/^stopped \(QEMU exit code 0\)\n$/);
    expect((await readState(stateFile)).runtime.status).toBe('stopped');

    const status = await run('vm', 'status', '--dir', dir);
    expect(status.code).toBe(2);
    expect(status.err).toMatch(
      /^qmpkit: no qmpkit VM supervisor is running at .* \(ENOENT on control\.sock\); start one with: qmpkit vm start/,
    );
    const save = await run('snapshot', 'save', 'late', '--dir', dir);
    expect(save.code).toBe(2);

    const list = await run('snapshot', 'list', '--dir', dir);
    expect(list.code).toBe(0);
    expect(list.err).toMatch(/no supervisor runs at .*; read .*manifest\.json/);
    expect(list.out).toMatch(/^\* first +external .*← current$/m);
  });

  it("vm start with a configuration QEMU refuses: exit 2 with QEMU's own error", async () => {
    const bad = path.join(work, 'bad.json');
    const vm = testVmConfig(
      { boot: null, memoryMiB: 16 },
      {
        blockdevs: [{ driver: 'file', 'node-name': 'f', filename: path.join(work, 'missing.img') }],
      },
    );
    writeFileSync(bad, toJSON(vm));
    const start = await run(
      'vm',
      'start',
      bad,
      '--dir',
      path.join(work, 'bad'),
      '--accel',
      'tcg',
      '--qemu',
      QEMU_BINARY.system,
    );
    expect(start.code).toBe(2);
    expect(start.err).toMatch(/^qmpkit: the VM did not start: /);
    expect(start.err).toMatch(/missing\.img.*No such file or directory/);
    expect(start.out).toBe('');
  });
});
