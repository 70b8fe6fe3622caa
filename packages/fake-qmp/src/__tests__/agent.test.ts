/**
 * The fake guest agent with the real client (`@qmpkit/guest-agent`): sync, exec with stdin
 * and output, the in-memory filesystem, the freeze scope, and what the agent refuses. The
 * fake's wording is checked against qemu-ga itself in test/contract/agent.qemu.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GuestAgent } from '@qmpkit/guest-agent';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FakeGuestAgent } from '../agent/fake-agent.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-fake-agent-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

async function setup(options: ConstructorParameters<typeof FakeGuestAgent>[0] = {}) {
  const fake = new FakeGuestAgent(options);
  const socket = path.join(dir, `agent-${n++}.sock`);
  const server = await fake.listen(socket);
  const agent = new GuestAgent({ socket });
  opened.push(async () => {
    await agent.close();
    await server.close();
  });
  return { fake, agent };
}
const opened: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of opened.splice(0)) await close();
});

describe('FakeGuestAgent', () => {
  it('serves waitForAgent, exec with stdin, and files', async () => {
    const t = await setup({
      files: { '/etc/hostname': 'fake\n' },
      programs: {
        '/bin/cat': ({ stdin }) => ({ exitcode: 0, stdout: stdin }),
        '/bin/false': () => ({ exitcode: 1, stderr: 'no\n' }),
      },
    });
    await t.agent.waitForAgent({ timeout: 5_000 });
    expect(await t.agent.exec(['/bin/cat'], { stdin: 'piped' })).toMatchObject({
      exitcode: 0,
      stdout: 'piped',
      stderr: '',
    });
    expect(await t.agent.exec(['/bin/false'])).toMatchObject({ exitcode: 1, stderr: 'no\n' });
    await expect(t.agent.exec(['/bin/missing'])).rejects.toMatchObject({
      name: 'QmpCommandError',
      errorClass: 'GenericError',
    });
    expect(Buffer.from(await t.agent.readFile('/etc/hostname')).toString()).toBe('fake\n');
    const big = new Uint8Array(200_000).map((_, i) => i % 251);
    await t.agent.writeFile('/run/big.bin', big);
    // Buffer.equals: vitest's toEqual walks a 200 kB array element by element (seconds).
    expect(Buffer.from(t.fake.file('/run/big.bin') ?? []).equals(big)).toBe(true);
    expect(Buffer.from(await t.agent.readFile('/run/big.bin')).equals(big)).toBe(true);
    await expect(t.agent.readFile('/nope/x')).rejects.toMatchObject({
      desc: "failed to open file '/nope/x' (mode: 'r'): No such file or directory",
    });
  });

  it('refuses commands while frozen and thaws at the end of the scope', async () => {
    const t = await setup({ programs: { '/bin/true': () => ({ exitcode: 0 }) } });
    await t.agent.withFrozenFilesystems(async (frozen) => {
      expect(frozen).toBe(1);
      expect(t.fake.fsfreezeStatus).toBe('frozen');
      await expect(t.agent.exec(['/bin/true'])).rejects.toMatchObject({
        errorClass: 'CommandNotFound',
        desc: 'Command guest-exec has been disabled: the agent is in frozen state',
      });
    });
    expect(t.fake.fsfreezeStatus).toBe('thawed');
  });

  it('closes the channel on guest-shutdown without a reply', async () => {
    let mode: string | undefined;
    const t = await setup({ onShutdown: (m) => (mode = m) });
    expect(await t.agent.shutdown('halt')).toBe('closed');
    expect(mode).toBe('halt');
  });
});
