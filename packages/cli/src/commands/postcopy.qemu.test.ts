/**
 * `qmpkit vm postcopy pause|recover` against a real QEMU (the binary under test, both ends):
 * the tiny guest under a supervisor migrates into a new VM directory in post-copy, the stream is
 * cut through the supervisor, the migration ends in `postcopy-paused` with both QEMUs kept, and
 * `recover` resumes it; the supervisor then serves the VM from the target's directory.
 *
 * Why the cut lands in post-copy, before the migration can complete, whatever the load: the
 * switch is immediate and the stream after it is limited to 1 KiB/s, while the rest of the
 * guest's 32 MiB (8192 pages; even a zero page costs ~9 bytes on the wire) needs well over a
 * minute at that rate. A busy machine only makes the stream slower; the pause waits for the
 * target to run the guest (its device state loaded), so the cut never loses it.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { MiB, toJSON, type VmConfig } from '@qmpkit/devices';
import { readState } from '@qmpkit/machine';
import { writeGuestImage } from '@qmpkit/testguest';
import { beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import { qemuSuite, SKIP_REASON, skipQemu, startVm } from '../qemu.test-support.js';
import type { MigrateSummary, PostcopyPauseResult, StatusResult } from '../vm/protocol.js';

const ENV = { PATH: process.env.PATH };

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIo(ENV);
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

const suite = qemuSuite({ prefix: 'qmpkit-vm-postcopy-' });

describe.skipIf(skipQemu)(`qmpkit vm postcopy pause|recover (real QEMU, tcg)${SKIP_REASON}`, () => {
  const work = suite.dir;
  let config: string;

  beforeAll(async () => {
    await writeGuestImage(path.join(work, 'guest.raw'), { intervalMs: 20 });
    const vm: VmConfig = {
      machine: { type: 'pc-i440fx-7.2' },
      memory: { size: 32 * MiB },
      chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }],
      blockdevs: [
        { driver: 'file', 'node-name': 'boot-file', filename: 'guest.raw' },
        { driver: 'raw', 'node-name': 'boot', file: 'boot-file' },
      ],
      devices: [
        { driver: 'ide-hd', id: 'boot0', drive: 'boot', bus: 'ide.0', bootindex: 0 },
        { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
      ],
    };
    config = path.join(work, 'vm.json');
    writeFileSync(config, toJSON(vm));
  });

  it('pause cuts a post-copy stream (both QEMUs kept), recover resumes it; refused without one', async () => {
    const from = path.join(work, 'a');
    const to = path.join(work, 'b');
    const before = await startVm(suite, from, config);

    // No migration: both verbs are refused with the typed error, the VM runs on.
    const noPause = await run('vm', 'postcopy', 'pause', '--dir', from);
    expect(noPause.code).toBe(1);
    expect(noPause.err).toMatch(/PostcopyStateError: no migration .* reports 'none'/);
    const noRecover = await run('vm', 'postcopy', 'recover', '--dir', from);
    expect(noRecover.code).toBe(1);
    expect(noRecover.err).toMatch(/PostcopyStateError: no post-copy migration .* is paused/);

    // The migration, held in post-copy by its 1 KiB/s limit; no recovery of its own.
    const io = recordingIo(ENV);
    const inPostcopy = new Promise<void>((resolve) => {
      let text = '';
      io.stderr.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
        if (/: confirming/.test(text)) resolve();
      });
    });
    const migrating = main(
      [
        'vm',
        'migrate',
        '--dir',
        from,
        '--to',
        to,
        '--postcopy-immediate',
        '--max-bandwidth',
        '1024',
        '--postcopy-bandwidth',
        '1024',
        '--recover-attempts',
        '0',
      ],
      io,
    );
    await Promise.race([inPostcopy, migrating]);
    // While it runs a recover is refused: the migration is not paused.
    const early = await run('vm', 'postcopy', 'recover', '--dir', from);
    expect(early.code).toBe(1);
    expect(early.err).toMatch(/PostcopyStateError: the migration to .* is still under way/);

    const paused = await run('vm', 'postcopy', 'pause', '--dir', from, '--json');
    expect(paused.err).toBe('');
    expect(paused.code).toBe(0);
    expect(JSON.parse(paused.out) as PostcopyPauseResult).toEqual({ to, recovers: false });
    // The migrate ends in postcopy-paused and says how to go on.
    expect(await migrating).toBe(1);
    expect(io.err()).toMatch(/postcopy-paused/);
    expect(io.err()).toMatch(/resume with: qmpkit vm postcopy recover --dir /);

    // Both QEMUs are kept: the source's supervisor says where the guest is, the records agree.
    const held = JSON.parse(
      (await run('vm', 'status', '--dir', from, '--json')).out,
    ) as StatusResult;
    expect(held.postcopyPaused).toEqual({ to });
    expect(held.qemu.pid).toBe(before.qemu.pid);
    const target = await readState(path.join(to, 'state.json'));
    if (target.runtime.pid !== null) suite.trackPid(target.runtime.pid);
    expect(target.runtime.migration).toMatchObject({ role: 'target', phase: 'postcopy-paused' });
    expect((await readState(path.join(from, 'state.json'))).runtime.migration).toMatchObject({
      role: 'source',
      phase: 'postcopy-paused',
    });
    // A second pause, and a new migration, are refused while it is paused.
    const again = await run('vm', 'postcopy', 'pause', '--dir', from);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/PostcopyStateError: .* already paused/);
    const elsewhere = await run('vm', 'migrate', '--dir', from, '--to', path.join(work, 'c'));
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.err).toMatch(/PostcopyStateError: a post-copy migration to .* is paused/);

    // Recover on a socket of our choosing, the rest at full speed.
    const socket = path.join(to, 'again.sock');
    const recovered = await run(
      'vm',
      'postcopy',
      'recover',
      '--dir',
      from,
      '--to',
      `unix:${socket}`,
      '--postcopy-bandwidth',
      '0',
      '--json',
    );
    expect(recovered.err).toBe('');
    expect(recovered.code).toBe(0);
    const summary = JSON.parse(recovered.out) as MigrateSummary;
    expect(summary).toMatchObject({ dir: to, postcopy: true });
    expect(summary.qemu?.pid).toBe(target.runtime.pid);

    const after = JSON.parse(
      (await run('vm', 'status', '--dir', to, '--json')).out,
    ) as StatusResult;
    expect(after).toMatchObject({
      dir: to,
      pid: before.pid,
      qemu: { pid: target.runtime.pid, runState: 'running' },
    });
    expect(after.postcopyPaused).toBeUndefined();
    expect((await run('vm', 'status', '--dir', from)).code).toBe(2);
    expect((await readState(path.join(from, 'state.json'))).runtime.migration).toMatchObject({
      role: 'source',
      phase: 'done',
    });
    expect((await readState(path.join(to, 'state.json'))).runtime.migration).toBeUndefined();
    expect((await run('vm', 'stop', '--dir', to)).code).toBe(0);
  });
});
