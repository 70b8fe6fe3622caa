/**
 * `qmpkit vm upgrade --qemu` and `qmpkit snapshot load --qemu [--force]` on real binaries: the
 * tiny test guest under a supervisor on the system's 7.2, upgraded to 10.0 through a snapshot
 * (the compatibility probe runs first and its verdict is printed), back to 7.2 with the same
 * snapshot, a binary that is not QEMU refused (exit 1, the VM untouched), and `--force`. One VM
 * for the file. Names both binaries itself, so it runs once (`ONCE` in vitest.config.ts).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { toJSON } from '@qmpkit/devices';
import { createQcow2Guest } from '@qmpkit/testguest';
import {
  QEMU_10,
  QEMU_SYSTEM,
  qemuSkipReason,
  qemuSuite,
  REPO_CACHE_DIR,
} from '@qmpkit/testguest/test-support';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliRunner } from '../cli.test-support.js';
import { testVmConfig } from '../qemu.test-support.js';
import type { StatusResult } from '../vm/protocol.js';

// Release names (`10.0`) are looked up in the repository's cache, as `qmpkit qemu fetch` fills it.
const ENV = { PATH: process.env.PATH, QMPKIT_CACHE_DIR: REPO_CACHE_DIR };
const skip = qemuSkipReason(QEMU_SYSTEM) ?? qemuSkipReason(QEMU_10);
const v = (b: typeof QEMU_SYSTEM) => String.raw`${b.version?.major}\.${b.version?.minor}\.\d+`;

const run = cliRunner(ENV);

const suite = qemuSuite({ prefix: 'qmpkit-vm-upgrade-' });

describe.skipIf(skip !== undefined)(
  `qmpkit vm upgrade / snapshot load --qemu${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const dir = path.join(suite.dir, 'vm');
    let config: string;

    async function status(): Promise<StatusResult> {
      const json = await run('vm', 'status', '--dir', dir, '--json');
      expect(json.code).toBe(0);
      const s = JSON.parse(json.out) as StatusResult;
      suite.trackPid(s.qemu.pid);
      return s;
    }

    beforeAll(async () => {
      await createQcow2Guest(path.join(suite.dir, 'guest.qcow2'), { intervalMs: 50 });
      const vm = testVmConfig({ memoryMiB: 16 });
      config = path.join(suite.dir, 'vm.json');
      writeFileSync(config, toJSON(vm));
      const start = await run(
        'vm',
        'start',
        config,
        '--dir',
        dir,
        '--accel',
        'tcg',
        '--strategy',
        'external',
        '--qemu',
        QEMU_SYSTEM.system,
      );
      expect(start.code, start.err).toBe(0);
      suite.trackPid((await status()).pid);
    }, 60_000);

    it('vm upgrade --qemu 10.0: saved, probed, loaded on 10.0; the verdict is printed', async () => {
      const up = await run('vm', 'upgrade', '--dir', dir, '--qemu', '10.0', '--name', 'up1');
      expect(up.code, up.err).toBe(0);
      expect(up.out).toMatch(
        new RegExp(
          String.raw`^upgraded: QEMU ${v(QEMU_SYSTEM)} → ${v(QEMU_10)} through snapshot 'up1' \(external; save \d+ ms, load \d+ ms\)$`,
          'm',
        ),
      );
      // The board's hpet is flagged by the static check and loads (see the vmstate suite).
      expect(up.out).toMatch(
        /^compatibility: warn \(probe loaded the state\); statically flagged: hpet, of which the probe loaded 1$/m,
      );
      expect(up.err).toMatch(
        /^qmpkit: warning: snapshot 'up1': the static vmstate check .* flags hpet/m,
      );
      const s = await status();
      expect(s.qemu.version).toMatch(new RegExp(`^${v(QEMU_10)}$`));
      expect(s.qemu.runState).toBe('running');
    }, 180_000);

    it('snapshot load --qemu <binary> goes back to 7.2 with the same snapshot (its saving binary: no check)', async () => {
      const back = await run('snapshot', 'load', 'up1', '--dir', dir, '--qemu', QEMU_SYSTEM.system);
      expect(back.code, back.err).toBe(0);
      expect(back.out).toMatch(new RegExp(String.raw`; QEMU ${v(QEMU_SYSTEM)}\n`));
      // 'up1' was saved on this very binary: nothing to check.
      expect(back.out).not.toMatch(/compatibility:/);
      expect((await status()).qemu.version).toMatch(new RegExp(`^${v(QEMU_SYSTEM)}$`));
    }, 180_000);

    it('a binary that is not QEMU: refused with its reason, exit 1, the VM untouched', async () => {
      const before = await status();
      const bad = await run('snapshot', 'load', 'up1', '--dir', dir, '--qemu', '/bin/true');
      expect(bad.code).toBe(1);
      expect(bad.err).toMatch(/^qmpkit: load 'up1' refused \(not-qemu\): /);
      const after = await status();
      expect([after.qemu.pid, after.qemu.version]).toEqual([before.qemu.pid, before.qemu.version]);
      const up = await run('vm', 'upgrade', '--dir', dir, '--qemu', '/bin/true', '--name', 'up2');
      expect(up.code).toBe(1);
      expect(up.err).toMatch(/^qmpkit: load 'up2' refused \(not-qemu\): /);
      expect((await status()).qemu.pid).toBe(before.qemu.pid);
    }, 60_000);

    it('--force skips the compatibility check and says so', async () => {
      const forced = await run(
        'snapshot',
        'load',
        'up1',
        '--dir',
        dir,
        '--qemu',
        '10.0',
        '--force',
      );
      expect(forced.code, forced.err).toBe(0);
      expect(forced.out).toMatch(/^compatibility: not checked \(--force\)$/m);
      const stop = await run('vm', 'stop', '--dir', dir);
      expect(stop.code, stop.err).toBe(0);
    }, 60_000);
  },
);
