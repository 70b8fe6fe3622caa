/**
 * The guest agent client against a real qemu-ga in the Linux test guest, one VM per file
 * (shared by its tests, in order), for each agent the guest can carry: qemu-ga 7.2
 * (bookworm) and 10.0 (bookworm-backports), both under the system QEMU (7.2).
 *
 * Exact by construction, never by timing: to hold the agent busy, the guest's
 * `/sbin/hwclock` (which qemu-ga runs for `guest-set-time` and waits for) is replaced by a
 * script that reports on the serial console and waits for a line on a second virtio-serial
 * port (`qmpkit.ctl`) the host writes to — or kills the agent.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  AGENT_PORT_ID,
  buildLinuxGuest,
  escapeQemuOptionValue,
  type LinuxGuestProcess,
  linuxGuestKey,
  READY_MARKER,
  startLinuxGuest,
} from '@qmpkit/testguest';
import { qemuSkipReason, qemuSuite } from '@qmpkit/testguest/test-support';
import { connect, type QmpClient } from '@qmpkit/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestAgent } from '../client.js';

const repoRoot = path.resolve(import.meta.dirname, '../../../..');
const cacheDir = path.join(repoRoot, '.cache');
const ci = process.env.CI === 'true';

/**
 * Replaces the guest's `/sbin/hwclock`, which qemu-ga runs for `guest-set-time` and waits
 * for: while it runs, the agent answers nothing. This one reports on the serial console,
 * then waits for a line on the `qmpkit.ctl` port (found without udev).
 */
const HWCLOCK_GATE = `#!/bin/sh
for p in /sys/class/virtio-ports/*; do [ "$(cat "$p/name")" = qmpkit.ctl ] && ctl="/dev/\${p##*/}"; done
echo QMPKIT-HWCLOCK-WAITING > /dev/console
read -r x < "$ctl"
`;
/** An `/sbin/hwclock` that kills the agent that runs it. */
const HWCLOCK_KILL = `#!/bin/sh
kill -9 "$PPID"
`;

export interface AgentFileOptions {
  readonly agentSuite: 'bookworm' | 'bookworm-backports';
  /** What `guest-info` reports as the agent's version. */
  readonly version: RegExp;
  /** How the file ends the VM: the agent's `guest-shutdown`, or ACPI through QMP. */
  readonly end: 'guest-shutdown' | 'system_powerdown';
}

export function agentTests(options: AgentFileOptions): void {
  const suite = qemuSuite({ prefix: 'qmpkit-qga-' });
  const built = existsSync(
    path.join(cacheDir, 'linux-guest', linuxGuestKey(options.agentSuite, 'none')),
  );
  const skip =
    qemuSkipReason() ??
    (!built && !ci
      ? `the Linux guest with the ${options.agentSuite} agent is not built; run \`pnpm testguest:linux${options.agentSuite === 'bookworm' ? '' : ` --agent ${options.agentSuite}`}\` (CI does)`
      : undefined);

  let vm: LinuxGuestProcess;
  let qmp: QmpClient;
  let ctl: net.Socket;
  let agent: GuestAgent;
  let onSend: ((line: string) => void) | undefined;

  /** Opens the guest side of the gate: the helper waiting on `qmpkit.ctl` goes on. */
  const release = () => ctl.write('go\n');
  /** Installs `script` as the guest's `/sbin/hwclock` (a busybox link until then). */
  const hwclock = async (script: string) => {
    await agent.exec(['rm', '-f', '/sbin/hwclock']);
    await agent.writeFile('/sbin/hwclock', script);
    await agent.exec(['chmod', '755', '/sbin/hwclock']);
  };

  beforeAll(async () => {
    if (skip !== undefined) return;
    const guest = await buildLinuxGuest({ cacheDir, agentSuite: options.agentSuite });
    const dir = suite.dir;
    const data = path.join(dir, 'data.img');
    writeFileSync(data, '');
    const mkfs = spawnSync('mkfs.ext4', ['-q', '-F', '-L', 'data', data, '16M'], {
      encoding: 'utf8',
    });
    if (mkfs.status !== 0)
      throw new Error(`mkfs.ext4 failed: ${mkfs.error?.message ?? mkfs.stderr}`);
    const ctlSocket = path.join(dir, 'ctl.sock');
    vm = suite.adopt(
      startLinuxGuest({
        guest,
        dir,
        qemu: suite.binary.system,
        dataDisk: data,
        extraArgs: [
          '-chardev',
          `socket,id=ctl0,path=${escapeQemuOptionValue(ctlSocket)},server=on,wait=off`,
          '-device',
          'virtserialport,chardev=ctl0,id=ctl-port,name=qmpkit.ctl',
        ],
      }),
    );
    await vm.waitForLine(new RegExp(`^${READY_MARKER}$`));
    qmp = await connect(`unix:${vm.qmpSocket}`);
    ctl = net.createConnection({ path: ctlSocket });
    await new Promise((resolve, reject) => ctl.once('connect', resolve).once('error', reject));
    agent = new GuestAgent({
      socket: vm.agentSocket,
      trace: (direction, line) => {
        if (direction === 'send') onSend?.(line);
      },
    });
    agent.attachQmp(qmp, AGENT_PORT_ID);
  }, 600_000);

  afterAll(async () => {
    await agent?.close();
    ctl?.destroy();
    await qmp?.close();
  });

  describe(`qemu-ga from ${options.agentSuite}`, () => {
    it.skipIf(skip !== undefined)('tells a closed channel from a running agent', async (ctx) => {
      const nowhere = new GuestAgent({ socket: path.join(suite.dir, 'no-such.sock') });
      await expect(nowhere.waitForAgent({ timeout: 300 })).rejects.toMatchObject({
        name: 'AgentUnavailableError',
        reason: 'closed',
      });
      await agent.waitForAgent({ timeout: 120_000 });
      ctx.annotate?.(`agent ready ${(vm.elapsedMs() / 1000).toFixed(2)} s after spawn`);
      const info = await agent.execute('guest-info');
      expect(info.version).toMatch(options.version);
      expect(info.supported_commands.map((c) => c.name)).toContain('guest-exec');
    });

    it.skipIf(skip !== undefined)(
      'exec: stdin in; stdout, stderr and the exit code out',
      async () => {
        const result = await agent.exec(['/bin/sh', '-c', 'cat; echo to-stderr >&2; exit 3'], {
          stdin: 'from the host\n',
        });
        expect(result).toMatchObject({
          exitcode: 3,
          stdout: 'from the host\n',
          stderr: 'to-stderr\n',
          truncated: false,
        });
        const killed = await agent.exec(['/bin/sh', '-c', 'kill -9 $$']);
        expect(killed.signal).toBe(9);
      },
    );

    it.skipIf(skip !== undefined)(
      "exec of a missing program: the agent's error, typed; the channel goes on",
      async () => {
        const error = await agent.exec(['/no/such/program']).catch((e: unknown) => e);
        expect(error).toMatchObject({ name: 'QmpCommandError', command: 'guest-exec' });
        expect((error as { desc: string }).desc).toMatch(/no\/such\/program/);
        await expect(agent.execute('guest-ping')).resolves.toEqual({});
      },
    );

    it.skipIf(skip !== undefined)(
      'files: a binary round trip, and a path the guest rejects',
      async () => {
        const bytes = new Uint8Array(100_000).map((_, i) => (i * 7919) & 0xff);
        await agent.writeFile('/data/roundtrip.bin', bytes);
        expect(Buffer.from(await agent.readFile('/data/roundtrip.bin')).equals(bytes)).toBe(true);
        const size = await agent.exec(['/bin/sh', '-c', 'wc -c < /data/roundtrip.bin']);
        expect(size.stdout.trim()).toBe('100000');
        await expect(agent.readFile('/no/such/dir/file')).rejects.toMatchObject({
          name: 'QmpCommandError',
          command: 'guest-file-open',
        });
        await expect(agent.writeFile('/proc/no-such-file', 'x')).rejects.toMatchObject({
          name: 'QmpCommandError',
        });
        await expect(agent.execute('guest-ping')).resolves.toEqual({});
      },
    );

    it.skipIf(skip !== undefined)('lists network interfaces', async () => {
      const interfaces = await agent.networkInterfaces();
      // The guest brings up no network (lo stays down, without addresses): names only.
      expect(interfaces.map((i) => i.name)).toContain('lo');
      expect(interfaces.find((i) => i.name === 'lo')?.['hardware-address']).toBe(
        '00:00:00:00:00:00',
      );
    });

    it.skipIf(skip !== undefined)(
      'freeze scope: frozen inside, thawed after success, error and abort',
      async () => {
        const status = () => agent.execute('guest-fsfreeze-status');
        const inside = await agent.withFrozenFilesystems(async (frozen) => {
          // The ext4 /data is frozen; the initramfs cannot be.
          expect(frozen).toBe(1);
          expect(await status()).toBe('frozen');
          await expect(agent.exec(['/bin/true'])).rejects.toMatchObject({
            name: 'QmpCommandError',
          });
          return 'done';
        });
        expect(inside).toBe('done');
        expect(await status()).toBe('thawed');

        const boom = new Error('the scope failed');
        await expect(
          agent.withFrozenFilesystems(async () => {
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await status()).toBe('thawed');

        const controller = new AbortController();
        const reason = new Error('aborted by the test');
        await expect(
          agent.withFrozenFilesystems(
            async () => {
              controller.abort(reason);
              await new Promise(() => {}); // never settles: the abort must end the scope
            },
            { signal: controller.signal },
          ),
        ).rejects.toBe(reason);
        expect(await status()).toBe('thawed');
      },
    );

    it.skipIf(skip !== undefined)(
      'a timeout while the agent is busy, then a reconnect that drops the stale reply',
      async () => {
        await hwclock(HWCLOCK_GATE);
        // qemu-ga waits for hwclock, which waits for the gate: this cannot be answered in time.
        const setting = agent.execute('guest-set-time', undefined, { timeout: 1_000 });
        await expect(setting).rejects.toMatchObject({
          name: 'QmpTimeoutError',
          operation: 'guest-set-time',
        });
        await vm.waitForLine(/^QMPKIT-HWCLOCK-WAITING$/);
        await agent.disconnect();
        // The reply to guest-set-time is released only once the new connection's sync is on
        // its way, so it reaches that connection ahead of the sync reply.
        onSend = (line) => {
          if (line.includes('guest-sync-delimited')) {
            onSend = undefined;
            release();
          }
        };
        await agent.waitForAgent({ timeout: 60_000 });
        expect(agent.staleBytes).toBeGreaterThan(0);
        const info = await agent.execute('guest-info');
        expect(info.version).toMatch(options.version);
      },
    );

    it.skipIf(skip !== undefined)(
      'a killed agent: AgentLostError from VSERPORT_CHANGE, then recovery after its restart',
      async () => {
        await hwclock(HWCLOCK_KILL);
        const error = await agent.execute('guest-set-time').catch((e: unknown) => e);
        expect(error).toMatchObject({
          name: 'AgentLostError',
          command: 'guest-set-time',
          port: AGENT_PORT_ID,
        });
        expect(agent.portState).toBe('closed');
        // /init restarts qemu-ga; the next command waits for it and resyncs.
        await agent.waitForAgent({ timeout: 120_000 });
        expect(agent.portState).toBe('open');
        const result = await agent.exec(['/bin/sh', '-c', 'echo back']);
        expect(result.stdout).toBe('back\n');
        expect(vm.lines.map((l) => l.text)).toContain('init: qemu-ga exited (137), restarting');
      },
    );

    it.skipIf(skip !== undefined)(`shuts the guest down cleanly (${options.end})`, async () => {
      const shutdown = new Promise<unknown>((resolve) => {
        const off = qmp.on('SHUTDOWN', (event) => {
          off();
          resolve(event.data);
        });
      });
      if (options.end === 'guest-shutdown') {
        const outcome = await agent.shutdown();
        expect(['accepted', 'closed', 'silent']).toContain(outcome);
      } else {
        await qmp.execute('system_powerdown');
      }
      expect(await shutdown).toEqual({ guest: true, reason: 'guest-shutdown' });
      expect(await vm.exited).toEqual({ code: 0, signal: null });
    });
  });
}
