/**
 * The Linux test guest (packages/testguest/src/linux) on real QEMU under TCG: it reaches its
 * READY marker, mounts an ext4 data disk, its qemu-ga answers guest-ping over the
 * virtio-serial port's UNIX socket, and QMP `system_powerdown` makes it power off through
 * ACPI (SHUTDOWN with guest=true, QEMU exits 0). On the system QEMU (7.2), and on QEMU 10.0
 * from `.cache` when fetched (`pnpm qemu:fetch 10.0`; CI fetches it, so there it must run).
 * The guest comes from `.cache/linux-guest` (`pnpm testguest:linux`; CI builds it); outside
 * CI a missing build skips with that instruction.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type QemuBinary, qemuCacheDir, resolveQemuBinary } from '@qmpkit/machine';
import {
  buildLinuxGuest,
  JsonLineClient,
  type LinuxGuest,
  type LinuxGuestProcess,
  linuxGuestKey,
  READY_MARKER,
  startLinuxGuest,
  TICK_PREFIX,
} from '@qmpkit/testguest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const cacheDir = path.join(repoRoot, '.cache');
const ci = process.env.CI === 'true';
const qemuPresent = spawnSync('qemu-system-x86_64', ['--version']).status === 0;
const built = existsSync(path.join(cacheDir, 'linux-guest', linuxGuestKey('bookworm', 'none')));
const builtBackports = existsSync(
  path.join(cacheDir, 'linux-guest', linuxGuestKey('bookworm-backports', 'none')),
);
const have10 = existsSync(path.join(qemuCacheDir(cacheDir, '10.0'), 'manifest.json'));

const skipReason = ci
  ? undefined
  : !qemuPresent
    ? 'qemu-system-x86_64 not found (outside CI, real-QEMU tests are skipped)'
    : !built
      ? 'the Linux guest is not built; run `pnpm testguest:linux` (CI does)'
      : undefined;
const skip10 =
  skipReason ??
  (!have10 && !ci ? 'QEMU 10.0 not fetched; run `pnpm qemu:fetch 10.0` (CI does)' : undefined);

const skipBackports =
  skipReason ??
  (!builtBackports && !ci
    ? 'the guest with qemu-ga 10.0 is not built; run `pnpm testguest:linux --agent bookworm-backports` (CI does)'
    : undefined);
const work = mkdtempSync(path.join(tmpdir(), 'qmpkit-linux-guest-'));
let guest: LinuxGuest;
const running: LinuxGuestProcess[] = [];

beforeAll(async () => {
  if (skipReason !== undefined) return;
  guest = await buildLinuxGuest({ cacheDir });
}, 600_000);
afterEach(async () => {
  for (const g of running.splice(0)) await g.kill();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function ext4Image(file: string): string {
  writeFileSync(file, '');
  const r = spawnSync('mkfs.ext4', ['-q', '-F', '-L', 'data', file, '32M'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mkfs.ext4 failed: ${r.error?.message ?? r.stderr}`);
  return file;
}

async function bootAndPowerOff(binary: QemuBinary | string, name: string, which = guest) {
  const dir = mkdtempSync(path.join(work, `${name}-`));
  const vm = startLinuxGuest({
    guest: which,
    dir,
    qemu: binary,
    dataDisk: ext4Image(path.join(dir, 'data.img')),
  });
  running.push(vm);
  const ready = await vm.waitForLine(new RegExp(`^${READY_MARKER}$`));
  const agentMs = await vm.pingAgent();
  await vm.waitForLine(new RegExp(`^${TICK_PREFIX} 2$`));
  const qmp = await JsonLineClient.connect(vm.qmpSocket, Date.now() + 30_000);
  try {
    const deadline = Date.now() + 120_000;
    await qmp.next((m) => 'QMP' in m, deadline);
    qmp.send({ execute: 'qmp_capabilities' });
    await qmp.next((m) => 'return' in m, deadline);
    qmp.send({ execute: 'system_powerdown' });
    const shutdown = await qmp.next((m) => m.event === 'SHUTDOWN', deadline);
    const exit = await vm.exited;
    return { vm, ready, agentMs, shutdown, exit };
  } finally {
    qmp.close();
  }
}

describe('Linux test guest', () => {
  it('boots on the system QEMU: READY, /data mounted, guest-ping, ACPI power-off', async (ctx) => {
    ctx.skip(skipReason !== undefined, skipReason);
    const binary = await resolveQemuBinary('qemu-system-x86_64');
    const { vm, ready, agentMs, shutdown, exit } = await bootAndPowerOff(binary, 'system');
    expect(vm.lines.map((l) => l.text)).toContain('init: /dev/vda mounted on /data');
    expect(agentMs).toBeGreaterThan(0);
    expect(shutdown.data).toEqual({ guest: true, reason: 'guest-shutdown' });
    expect(exit).toEqual({ code: 0, signal: null });
    ctx.annotate?.(
      `QEMU ${binary.version}: READY ${(ready.atMs / 1000).toFixed(2)} s, agent ${(agentMs / 1000).toFixed(2)} s`,
    );
  }, 300_000);

  it('boots on QEMU 10.0 from the cache the same way', async (ctx) => {
    ctx.skip(skip10 !== undefined, skip10);
    const binary = await resolveQemuBinary('10.0', { cacheDir });
    const { vm, agentMs, shutdown, exit } = await bootAndPowerOff(binary, 'q10');
    expect(vm.lines.map((l) => l.text)).toContain('init: /dev/vda mounted on /data');
    expect(agentMs).toBeGreaterThan(0);
    expect(shutdown.data).toEqual({ guest: true, reason: 'guest-shutdown' });
    expect(exit).toEqual({ code: 0, signal: null });
  }, 300_000);

  it('carries qemu-ga 10.0 from bookworm-backports when asked (guest-info names its version)', async (ctx) => {
    ctx.skip(skipBackports !== undefined, skipBackports);
    const withAgent10 = await buildLinuxGuest({ cacheDir, agentSuite: 'bookworm-backports' });
    const agentPackage = withAgent10.manifest.packages.find((p) => p.name === 'qemu-guest-agent');
    expect(agentPackage?.version).toMatch(/^1:10\.0\./);
    const dir = mkdtempSync(path.join(work, 'agent10-'));
    const vm = startLinuxGuest({ guest: withAgent10, dir });
    running.push(vm);
    await vm.pingAgent();
    const agent = await JsonLineClient.connect(vm.agentSocket, Date.now() + 30_000);
    try {
      const deadline = Date.now() + 120_000;
      agent.send({ execute: 'guest-sync-delimited', arguments: { id: 4242 } });
      await agent.next((m) => m.return === 4242, deadline);
      agent.send({ execute: 'guest-info' });
      const info = await agent.next((m) => 'return' in m, deadline);
      expect((info.return as { version: string }).version).toMatch(/^10\.0\.\d+$/);
    } finally {
      agent.close();
    }
  }, 300_000);
});
