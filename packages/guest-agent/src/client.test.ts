/**
 * `waitForAgent`'s three outcomes against a scripted peer (the real agent is in
 * `__tests__/*.qemu.test.ts`): nothing answers the sync (what QEMU does while qemu-ga is not
 * running), the ping is answered with an error, the channel closes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { GuestAgent } from './client.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-guest-agent-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const servers: net.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
});

let n = 0;
async function peer(onLine: (request: Record<string, unknown>, socket: net.Socket) => void) {
  const socketPath = path.join(dir, `peer-${n++}.sock`);
  const server = net.createServer((socket) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1').replaceAll('\xff', '');
      for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n')) {
        onLine(JSON.parse(text.slice(0, nl)) as Record<string, unknown>, socket);
        text = text.slice(nl + 1);
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return socketPath;
}

describe('waitForAgent', () => {
  it('says not-running when nothing answers the sync', async () => {
    const agent = new GuestAgent({ socket: await peer(() => {}) });
    await expect(agent.waitForAgent({ timeout: 200 })).rejects.toMatchObject({
      name: 'AgentUnavailableError',
      reason: 'not-running',
      cause: { name: 'AgentSyncError', stale: [] },
    });
    await agent.close();
  });

  it('says error when the agent answers guest-ping with an error', async () => {
    const socket = await peer((request, s) => {
      const args = request.arguments as { id?: number } | undefined;
      if (request.execute === 'guest-sync-delimited')
        s.write(`\xff{"return": ${args?.id}}\n`, 'latin1');
      else
        s.write(
          `${JSON.stringify({ error: { class: 'GenericError', desc: 'guest-ping has been disabled' }, id: request.id })}\n`,
        );
    });
    const agent = new GuestAgent({ socket });
    await expect(agent.waitForAgent({ timeout: 5_000 })).rejects.toMatchObject({
      name: 'AgentUnavailableError',
      reason: 'error',
      cause: { name: 'QmpCommandError', desc: 'guest-ping has been disabled' },
    });
    await agent.close();
  });

  it('says closed when the channel closes', async () => {
    const socket = await peer((_request, s) => s.destroy());
    const agent = new GuestAgent({ socket });
    await expect(agent.waitForAgent({ timeout: 5_000 })).rejects.toMatchObject({
      name: 'AgentUnavailableError',
      reason: 'closed',
    });
    await agent.close();
  });
});

describe('timeouts', () => {
  it('gives freeze and thaw two minutes and the rest the default', () => {
    const agent = new GuestAgent({ socket: 'unused', timeouts: { default: 5_000 } });
    expect(agent.timeoutFor('guest-fsfreeze-thaw')).toBe(120_000);
    expect(agent.timeoutFor('guest-info')).toBe(5_000);
  });
});

describe('socket factory', () => {
  it('opens streams through the factory, again after the peer closed one', async () => {
    let connections = 0;
    const socketPath = await peer((request, s) => {
      const args = request.arguments as { id?: number } | undefined;
      if (request.execute === 'guest-sync-delimited')
        s.write(`\xff{"return": ${args?.id}}\n`, 'latin1');
      else if (request.execute === 'guest-info') s.destroy();
      else s.write(`${JSON.stringify({ return: {}, id: request.id })}\n`);
    });
    const agent = new GuestAgent({
      socket: async () => {
        connections++;
        const s = net.createConnection({ path: socketPath });
        await new Promise((resolve) => s.once('connect', resolve));
        return s;
      },
    });
    await expect(agent.execute('guest-ping')).resolves.toEqual({});
    await expect(agent.execute('guest-info')).rejects.toMatchObject({
      name: 'QmpDisconnectedError',
    });
    await expect(agent.execute('guest-ping')).resolves.toEqual({});
    expect(connections).toBe(2);
    await agent.close();
  });
});
