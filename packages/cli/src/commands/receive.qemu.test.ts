/**
 * `qmpkit vm receive` + `qmpkit vm migrate --to ADDRESS` against the binary under test: two
 * supervisors that know nothing of each other but the address the receiver printed. The
 * receiver takes the guest's configuration and pinned machine type from the source's VM
 * directory, the source ends when its QEMU reports `completed` over return-path, the receiver
 * when its own QEMU runs the guest.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { toJSON } from '@qmpkit/devices';
import { readState } from '@qmpkit/machine';
import { writeGuestImage } from '@qmpkit/testguest';
import { beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import {
  QEMU_BINARY,
  qemuSuite,
  SKIP_REASON,
  skipQemu,
  testVmConfig,
} from '../qemu.test-support.js';
import type { MigrateSummary, StatusResult } from '../vm/protocol.js';

const ENV = { PATH: process.env.PATH };

function start(...argv: string[]) {
  const io = recordingIo(ENV);
  const code = main(argv, io);
  return { io, code };
}

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const { io, code } = start(...argv);
  return { code: await code, out: io.out(), err: io.err() };
}

/** Resolves with the text once `pattern` appears in `read()` (or the command ended). */
async function waitFor(read: () => string, pattern: RegExp, ended: Promise<unknown>) {
  let over = false;
  void ended.then(() => {
    over = true;
  });
  for (;;) {
    const m = pattern.exec(read());
    if (m !== null) return m;
    if (over) throw new Error(`the command ended without printing ${pattern}: ${read()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const suite = qemuSuite({ prefix: 'qmpkit-vm-receive-' });
const qemu = QEMU_BINARY.system;

describe.skipIf(skipQemu)(
  `qmpkit vm receive / migrate --to ADDRESS (real QEMU)${SKIP_REASON}`,
  () => {
    const work = suite.dir;
    let config: string;

    beforeAll(async () => {
      await writeGuestImage(path.join(work, 'guest.raw'), { intervalMs: 20 });
      const vm = testVmConfig({ boot: 'guest.raw' });
      config = path.join(work, 'vm.json');
      writeFileSync(config, toJSON(vm));
    });

    async function track(dir: string): Promise<StatusResult> {
      const status = JSON.parse(
        (await run('vm', 'status', '--dir', dir, '--json')).out,
      ) as StatusResult;
      suite.trackPid(status.pid);
      suite.trackPid(status.qemu.pid);
      return status;
    }

    // With --disks copy (the receiver's fresh images mirrored over NBD): one migration covers
    // the receive and migrate verbs with and without disks (the disk steps add about a second).
    it('the receiver prints the address, the source moves there with its disk and ends, the receiver serves the VM', async () => {
      const from = path.join(work, 'a');
      const to = path.join(work, 'b');
      expect(
        (await run('vm', 'start', config, '--dir', from, '--accel', 'tcg', '--qemu', qemu)).code,
      ).toBe(0);
      const before = await track(from);

      // The configuration and the pinned type come from the source's VM directory.
      const size = statSync(path.join(work, 'guest.raw')).size;
      const receiving = start(
        'vm',
        'receive',
        from,
        '--dir',
        to,
        '--qemu',
        qemu,
        '--disks',
        'copy',
        '--disk-size',
        `boot=${size}`,
      );
      const [, uri] = await waitFor(
        receiving.io.out,
        /listening on (tcp:127\.0\.0\.1:\d+,nbd=\d+)\n/,
        receiving.code,
      );
      expect(receiving.io.out()).toContain(
        `qmpkit vm migrate --dir SOURCE_DIR --to ${uri} --disks copy`,
      );
      const image = path.join(to, 'disks', 'guest.raw');
      expect(statSync(image).size).toBe(size);
      // Its control socket comes up once the guest runs here (the suite kills its QEMU on failure).

      // Without --disks copy the source refuses: the receiver's images are still empty.
      const refused = await run('vm', 'migrate', '--dir', from, '--to', uri ?? '');
      expect(refused.code).toBe(1);
      expect(refused.err).toMatch(/invalid-options.*disks: 'copy'/);
      const moving = start(
        'vm',
        'migrate',
        '--dir',
        from,
        '--to',
        uri ?? '',
        '--disks',
        'copy',
        '--json',
      );
      expect(await moving.code).toBe(0);
      // The progress view showed the disk bytes while they copied.
      expect(moving.io.err()).toMatch(/mirroring \(\d\/1 disk ready\)/);
      const moved = { out: moving.io.out() };
      const summary = JSON.parse(moved.out) as MigrateSummary;
      expect(summary).toMatchObject({ dir: uri, qemu: null, postcopy: false });
      expect(summary.bytes).toBeGreaterThan(0);

      expect(await receiving.code).toBe(0);
      expect(receiving.io.out()).toMatch(/received: the guest runs in /);
      const after = await track(to);
      expect(after.qemu).toMatchObject({ runState: 'running' });
      expect(after.qemu.pid).not.toBe(before.qemu.pid);
      // The fresh image (zeros) received the disk: its boot sector is the guest's.
      const sector = (file: string) => readFileSync(file).subarray(0, 512);
      expect(sector(image).equals(sector(path.join(work, 'guest.raw')))).toBe(true);
      // The source's supervisor ended with its QEMU; its state file says the VM left.
      expect((await run('vm', 'status', '--dir', from)).code).toBe(2);
      const old = await readState(path.join(from, 'state.json'));
      expect(old.runtime.migration).toMatchObject({ role: 'source', phase: 'done', peer: null });
      const again = await run('vm', 'start', '--dir', from);
      expect(again.code).toBe(2);
      expect((await run('vm', 'stop', '--dir', to)).code).toBe(0);
    });

    it('bad input: --tls-dir without certificates to a VM directory, an address nobody listens on: refused, the VM runs on', async () => {
      const from = path.join(work, 'c');
      const started = await run(
        'vm',
        'start',
        config,
        '--dir',
        from,
        '--accel',
        'tcg',
        '--qemu',
        qemu,
      );
      expect(started.err).toBe('');
      expect(started.code).toBe(0);
      await track(from);
      const local = await run(
        'vm',
        'migrate',
        '--dir',
        from,
        '--to',
        path.join(work, 'd'),
        '--tls-dir',
        work,
      );
      // The directory reaches the local migrate() (it was refused for a local target before):
      // its check names the files the target lacks, and nothing was started or moved.
      expect(local.code).toBe(1);
      expect(local.err).toMatch(/LiveMigrationError: .*TLS directory .* lacks ca-cert\.pem/);
      expect(existsSync(path.join(work, 'd', 'state.json'))).toBe(false);
      const bad = await run('vm', 'migrate', '--dir', from, '--to', 'tcp:127.0.0.1:1');
      expect(bad.code).toBe(1);
      expect(bad.err).toMatch(/LiveMigrationError: live migration failed .*Connection refused/);
      const still = await track(from);
      expect(still.qemu.runState).toBe('running');
      expect((await run('vm', 'stop', '--dir', from)).code).toBe(0);
    });
  },
);
