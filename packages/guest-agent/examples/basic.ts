// Boot the Linux test guest, wait for its agent, run a command, round-trip a file, take a
// frozen moment, and shut the guest down through the agent. Run from the repository root
// (the guest is built into .cache by `pnpm testguest:linux`):
//   node --conditions=@qmpkit/source --import tsx packages/guest-agent/examples/basic.ts
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestAgent } from '@qmpkit/guest-agent';
import type { Commands } from '@qmpkit/qapi/qga-7.2';
import { buildLinuxGuest, startLinuxGuest } from '@qmpkit/testguest';

const dir = await mkdtemp(join(tmpdir(), 'guest-agent-example-')); // private (0700)
const guest = await buildLinuxGuest({ cacheDir: '.cache' });
const vm = startLinuxGuest({ guest, dir }); // qemu-ga's port is on <dir>/qga.sock
try {
  // Typed by qemu-ga 7.2's schema: execute('guest-info') returns GuestAgentInfo.
  const agent = new GuestAgent<Commands>({ socket: vm.agentSocket });
  await agent.waitForAgent({ timeout: 120_000 });
  const info = await agent.execute('guest-info');
  console.log(`qemu-ga ${info.version}, ready ${(vm.elapsedMs() / 1000).toFixed(1)} s after spawn`);

  const uname = await agent.exec(['uname', '-r']);
  console.log(`kernel ${uname.stdout.trim()} (exit ${uname.exitcode})`);

  await agent.writeFile('/run/hello.txt', 'hello from the host\n');
  console.log(
    Buffer.from(await agent.readFile('/run/hello.txt'))
      .toString('utf8')
      .trim(),
  );

  // Filesystems are thawed when the callback returns, throws, or the signal aborts.
  const frozen = await agent.withFrozenFilesystems(async (count) => count);
  console.log(`froze and thawed ${frozen} filesystem(s)`);

  console.log(`guest-shutdown: ${await agent.shutdown()}`);
  console.log('QEMU exited', await vm.exited);
  await agent.close();
} finally {
  await vm.kill();
  await rm(dir, { recursive: true, force: true });
}
