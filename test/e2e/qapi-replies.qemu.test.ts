/**
 * Issue #2's proof against a real QEMU 7.2: every argument-less query-* command (plus a few
 * with arguments) is run on a VM with disks, network, chardevs and objects attached, and every
 * successful reply must validate — strictly, not in forward-compatible mode — against the
 * tables generated from our capture. A deliberately wrong value is rejected with its path.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { type Commands, tables, validateArgs, validateReturn } from '@qmpkit/qapi/qemu-7.2';
import { formatProblem } from '@qmpkit/qapi/runtime-v1';
import { QEMU, qemuSuite, skipNote, spawnQemu, TEST_ACCEL } from '@qmpkit/testguest/test-support';
import { connect, isQmpCommandError, type QmpClient } from '@qmpkit/transport';
import { InheritedFds } from '@qmpkit/transport/fd';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Skip rules (never skip with CI=true), the temp dir and killing QEMU: the shared support.
const suite = qemuSuite({ prefix: 'qmpkit-replies-' });
const hasQemu = QEMU.missing === undefined;

describe.skipIf(!hasQemu && process.env.CI !== 'true')(
  `QEMU 7.2 replies validate against the generated tables${skipNote()}`,
  () => {
    let dir: string;
    let qmp: QmpClient;
    let pid: number | undefined;

    beforeAll(async () => {
      dir = suite.dir;
      const disk = path.join(dir, 'disk.qcow2');
      const made = spawnSync(QEMU.img, ['create', '-q', '-f', 'qcow2', disk, '16M'], {
        encoding: 'utf8',
      });
      if (made.status !== 0) throw new Error(`qemu-img failed: ${made.stderr}`);
      const fds = new InheritedFds();
      const monitor = fds.socketpair();
      const args = [
        '-machine',
        'pc-i440fx-7.2',
        ...TEST_ACCEL.flatMap((a) => ['-accel', a]),
        '-m',
        '32',
        '-S',
        '-nodefaults',
        '-display',
        'none',
        '-name',
        'replies-test',
        '-uuid',
        '6a1cd1f6-7c09-4e4e-a0ad-4bd3b1e3f0aa',
        '-object',
        '{"qom-type":"iothread","id":"io0"}',
        '-object',
        '{"qom-type":"memory-backend-ram","id":"mem0","size":4194304}',
        '-blockdev',
        JSON.stringify({ driver: 'file', filename: disk, 'node-name': 'disk0-file' }),
        '-blockdev',
        JSON.stringify({ driver: 'qcow2', file: 'disk0-file', 'node-name': 'disk0' }),
        '-device',
        '{"driver":"virtio-blk-pci","drive":"disk0","id":"vd0"}',
        '-blockdev',
        '{"driver":"null-co","node-name":"null0"}',
        '-device',
        '{"driver":"ide-hd","drive":"null0","bus":"ide.0","id":"ide0"}',
        '-netdev',
        'user,id=net0',
        '-device',
        '{"driver":"virtio-net-pci","netdev":"net0","id":"nic0"}',
        '-chardev',
        'null,id=ser0',
        '-serial',
        'chardev:ser0',
        ...monitor.monitorArgs(),
      ];
      const child = spawnQemu(args, { stdio: fds.stdio });
      pid = child.pid;
      qmp = await connect(monitor.address(child), { connectTimeout: 20_000 });
    });

    afterAll(async () => {
      if (qmp) {
        await qmp.execute('quit').catch(() => undefined);
        await qmp.closed;
      }
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });

    it('validates at least 30 query-* replies strictly', { timeout: 60_000 }, async () => {
      const withArgs: Record<string, unknown> = {
        'query-cpu-model-expansion': { type: 'full', model: { name: 'qemu64' } },
        'query-stats': { target: 'vm' },
        'query-stats-schemas': {},
        'query-rx-filter': { name: 'nic0' },
        'x-query-virtio-status': { path: '/machine/peripheral/vd0/virtio-backend' },
      };
      const queries = Object.entries(tables.commands)
        .filter(
          ([name, spec]) =>
            /^(x-)?query-/.test(name) && (spec.args === undefined || name in withArgs),
        )
        // query-qmp-schema is kept on purpose: its reply (a SchemaInfo list) is validated
        // like any other, which checks the SchemaInfo tables against QEMU's own output.
        .map(([name]) => name);
      expect(queries).toContain('query-qmp-schema');
      const validated: string[] = [];
      const failed: string[] = [];
      const problems: string[] = [];
      for (const name of queries) {
        const args = withArgs[name] ?? (tables.commands[name]?.args === undefined ? undefined : {});
        expect(validateArgs(name, args), name).toEqual([]);
        try {
          const value = await qmp.executeUnchecked(name, args);
          const found = validateReturn(name, value);
          problems.push(...found.map((p) => `${name}: ${formatProblem(p)}`));
          validated.push(name);
        } catch (error) {
          if (!isQmpCommandError(error)) throw error;
          failed.push(`${name}: ${error.errorClass}`); // e.g. SEV or SGX absent on this host
        }
      }
      expect(problems).toEqual([]);
      expect(validated).toContain('query-qmp-schema');
      expect(
        validated.length,
        `validated: ${validated.join(', ')}\nfailed: ${failed.join(', ')}`,
      ).toBeGreaterThanOrEqual(30);
    });

    it('rejects a deliberately wrong value with the right path', async () => {
      const status = await qmp.execute('query-status');
      expect(validateReturn('query-status', status)).toEqual([]);
      const broken = { ...status, status: 'sleepwalking' };
      expect(validateReturn('query-status', broken).map(formatProblem)).toEqual([
        "$.status: expected one of 'debug' | 'inmigrate' | 'internal-error' | 'io-error' | 'paused' | 'postmigrate' | 'prelaunch' | 'finish-migrate' | … (8 more), got 'sleepwalking' (RunState)",
      ]);
      const blocks: Commands['query-block']['returns'] = await qmp.execute('query-block');
      const vd = blocks.find((b) => b.qdev === '/machine/peripheral/vd0/virtio-backend');
      expect(vd?.inserted?.['node-name']).toBe('disk0');
      const tampered = blocks.map((b, i) =>
        i === 0 ? { ...b, inserted: { ...b.inserted, ro: 'no' } } : b,
      );
      expect(validateReturn('query-block', tampered).map(formatProblem)).toEqual([
        '$[0].inserted.ro: expected a boolean, got "no"',
      ]);
    });
  },
);
