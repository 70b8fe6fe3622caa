/**
 * `qmpkit vm migrate` against a real QEMU (the binary under test; the target runs on the same
 * one, `vm migrate`'s default): the tiny guest under a supervisor moves into a new
 * VM directory; the supervisor then answers there, the old directory has no supervisor and a
 * state file that says where the VM went; bad targets are refused with the VM running on.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { toJSON } from '@qmpkit/devices';
import { readState } from '@qmpkit/machine';
import { writeGuestImage } from '@qmpkit/testguest';
import { beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import { qemuSuite, SKIP_REASON, skipQemu, startVm, testVmConfig } from '../qemu.test-support.js';
import type { MigrateSummary, StatusResult } from '../vm/protocol.js';

const ENV = { PATH: process.env.PATH };

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIo(ENV);
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

const suite = qemuSuite({ prefix: 'qmpkit-vm-migrate-' });

describe.skipIf(skipQemu)(`qmpkit vm migrate (real QEMU, tcg)${SKIP_REASON}`, () => {
  const work = suite.dir;
  const from = path.join(work, 'a');
  const to = path.join(work, 'b');
  let config: string;

  beforeAll(async () => {
    await writeGuestImage(path.join(work, 'guest.raw'), { intervalMs: 20 });
    const vm = testVmConfig({ boot: 'guest.raw' });
    config = path.join(work, 'vm.json');
    writeFileSync(config, toJSON(vm));
  });

  it('moves the VM; the supervisor serves it from --to; the old dir says where it went', async () => {
    const before = await startVm(suite, from, config);

    // Bad targets first: refused, the VM runs on where it is.
    const here = await run('vm', 'migrate', '--dir', from, '--to', from);
    expect(here.code).toBe(2);
    expect(here.err).toMatch(/already there/);

    const moved = await run('vm', 'migrate', '--dir', from, '--to', to, '--json');
    expect(moved.err).toMatch(/^migrate to .*: (transferring|switchover|confirming)/m);
    expect(moved.code).toBe(0);
    const summary = JSON.parse(moved.out) as MigrateSummary;
    // A local target: the summary names its QEMU (null only for a move to an address).
    const qemu = summary.qemu ?? { pid: -1, version: '' };
    expect(qemu.pid).toBeGreaterThan(0);
    suite.trackPid(qemu.pid);
    expect(summary.dir).toBe(to);
    expect(qemu.pid).not.toBe(before.qemu.pid);
    expect(summary.downtimeMs).toBeGreaterThanOrEqual(0);

    const after = JSON.parse(
      (await run('vm', 'status', '--dir', to, '--json')).out,
    ) as StatusResult;
    expect(after).toMatchObject({
      dir: to,
      pid: before.pid,
      qemu: { pid: qemu.pid, runState: 'running' },
    });
    expect((await run('vm', 'status', '--dir', from)).code).toBe(2);
    const old = await readState(path.join(from, 'state.json'));
    expect(old.runtime.migration).toMatchObject({ role: 'source', phase: 'done' });
    expect(old.runtime.migration?.peer?.stateFile).toBe(path.join(to, 'state.json'));
    // Starting the old directory again would be a second copy of the VM: refused.
    const again = await run('vm', 'start', '--dir', from);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/LiveMigrationError|handed over/);

    // A directory that holds a VM is no target.
    const occupied = await run('vm', 'migrate', '--dir', to, '--to', from);
    expect(occupied.code).toBe(2);
    expect(occupied.err).toMatch(/already holds a VM/);
    const still = JSON.parse(
      (await run('vm', 'status', '--dir', to, '--json')).out,
    ) as StatusResult;
    expect(still.qemu).toMatchObject({ pid: qemu.pid, runState: 'running' });

    // On with its disk copied over NBD (--disks copy): the mirrors' progress is drawn, the
    // image lands in <to>/disks, the VM runs there from its own copy.
    const third = path.join(work, 'c');
    const copied = await run(
      'vm',
      'migrate',
      '--dir',
      to,
      '--to',
      third,
      '--disks',
      'copy',
      '--json',
    );
    expect(copied.err).toMatch(/^migrate to .*: mirroring \(\d\/1 disk ready\)/m);
    expect(copied.code).toBe(0);
    const copySummary = JSON.parse(copied.out) as MigrateSummary;
    suite.trackPid(copySummary.qemu?.pid ?? -1);
    expect(copySummary.dir).toBe(third);
    const images = readdirSync(path.join(third, 'disks'));
    expect(images).toHaveLength(1);
    const there = await readState(path.join(third, 'state.json'));
    // The file node names the copy (same base name, under <to>/disks), not the original.
    const files = (there.config.blockdevs ?? []).flatMap((b) =>
      'filename' in b && typeof b.filename === 'string' ? [b.filename] : [],
    );
    expect(files).toEqual([path.join(third, 'disks', images[0] ?? '')]);
    const copiedStatus = JSON.parse(
      (await run('vm', 'status', '--dir', third, '--json')).out,
    ) as StatusResult;
    expect(copiedStatus.qemu).toMatchObject({ runState: 'running' });

    expect((await run('vm', 'stop', '--dir', third)).code).toBe(0);
  });
});
