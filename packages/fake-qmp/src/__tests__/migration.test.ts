/**
 * Migration between two fakes, as a user's test would drive it: typed clients on both sides,
 * events, exact progress numbers (the fake counts steps of simulated time, never wall time),
 * pause-before-switchover, cancel, return-path and the target's run state. The event
 * sequences are the ones the contract scenarios check against real QEMU 7.2 and 10.0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, isQmpCommandError, type QmpClient } from '@qmpkit/transport';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  parseStream,
  ReturnPathReader,
  returnPathShut,
  streamHead,
  streamTail,
} from '../model/migration-stream.js';
import { MemoryNet } from '../platform/memory-net.js';
import { createFakeQmp, type FakeQmp, type FakeQmpOptions } from '../server/fake.js';

const dir = mkdtempSync(path.join(tmpdir(), 'fake-qmp-migration-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fakes: FakeQmp[] = [];
const clients: QmpClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const f of fakes.splice(0)) await f.close();
});

async function peer(options: FakeQmpOptions): Promise<{ fake: FakeQmp; qmp: QmpClient }> {
  const fake = await createFakeQmp({ storage: 'memory', timing: { migrationMs: 1 }, ...options });
  fakes.push(fake);
  const qmp = await connect(fake.pair());
  clients.push(qmp);
  return { fake, qmp };
}

const LIVE = [
  { capability: 'events', state: true },
  { capability: 'return-path', state: true },
] as const;

/** Event names (MIGRATION with its status, MIGRATION_PASS with its number) as they arrive. */
function record(qmp: QmpClient): string[] {
  const seen: string[] = [];
  qmp.onAny((e) => {
    const data = (e.data ?? {}) as { status?: string; pass?: number };
    if (e.event === 'MIGRATION') seen.push(`MIGRATION ${data.status}`);
    else if (e.event === 'MIGRATION_PASS') seen.push(`PASS ${data.pass}`);
    else seen.push(e.event);
  });
  return seen;
}

const status = (s: string) => (e: { data: { status: string } }) => e.data.status === s;

describe('two fakes migrating', () => {
  it('RAM progress is exact: 64 MiB at 64 MiB/s parks at pre-switchover after 8 steps, then completes; the target resumes', async () => {
    const source = await peer({ machine: 'pc', ramBytes: 64 * 1024 * 1024 });
    const target = await peer({ machine: 'pc', incoming: 'defer' });
    const sourceEvents = record(source.qmp);
    const targetEvents = record(target.qmp);
    await target.qmp.execute('migrate-set-capabilities', { capabilities: [...LIVE] });
    await target.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    const listening = await target.qmp.execute('query-migrate');
    const address = listening['socket-address']?.[0];
    expect(address).toMatchObject({ type: 'inet', host: '127.0.0.1', ipv4: true });
    const port = address?.type === 'inet' ? Number(address.port) : 0;
    expect(port).toBeGreaterThan(0);

    await source.qmp.execute('migrate-set-capabilities', {
      capabilities: [...LIVE, { capability: 'pause-before-switchover', state: true }],
    });
    await source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 * 1024 });
    const parked = source.qmp.expectEvent('MIGRATION', status('pre-switchover'));
    await source.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    await parked.wait({ timeout: 5000 });

    // Each step sends floor(6.4 MiB / 4 KiB) pages = 6709248 bytes; the switch-over comes
    // when the rest fits 300 ms at 64 MiB/s (20132659 bytes): after 8 steps.
    const step = 6709248;
    const rest = 64 * 1024 * 1024 - 8 * step;
    const atPause = await source.qmp.execute('query-migrate');
    expect(atPause).toMatchObject({
      status: 'pre-switchover',
      'total-time': 800,
      'expected-downtime': Math.ceil((rest * 1000) / (64 * 1024 * 1024)),
      ram: {
        total: 64 * 1024 * 1024,
        remaining: rest,
        transferred: 8 * step,
        'dirty-sync-count': 2,
        'page-size': 4096,
      },
    });
    expect((await source.qmp.execute('query-status')).status).toBe('finish-migrate');

    // migrate-continue only from the state it names.
    await expect(source.qmp.execute('migrate-continue', { state: 'active' })).rejects.toSatisfy(
      (e) => isQmpCommandError(e) && e.desc === 'Migration not in expected state: pre-switchover',
    );
    const resumed = target.qmp.expectEvent('RESUME');
    const completed = source.qmp.expectEvent('MIGRATION', status('completed'));
    await source.qmp.execute('migrate-continue', { state: 'pre-switchover' });
    await completed.wait({ timeout: 5000 });
    await resumed.wait({ timeout: 5000 });

    const done = await source.qmp.execute('query-migrate');
    expect(done).toMatchObject({
      status: 'completed',
      downtime: 201,
      'total-time': 1001,
      ram: { remaining: 0, transferred: 64 * 1024 * 1024, 'dirty-sync-count': 3 },
    });
    expect(done['expected-downtime']).toBeUndefined();
    expect(sourceEvents).toEqual([
      'MIGRATION setup',
      'PASS 1',
      'MIGRATION active',
      'PASS 2',
      'STOP',
      'MIGRATION pre-switchover',
      'MIGRATION device',
      'PASS 3',
      'MIGRATION completed',
    ]);
    expect(targetEvents).toEqual([
      'MIGRATION setup',
      'MIGRATION active',
      'RESUME',
      'MIGRATION completed',
    ]);
    expect((await source.qmp.execute('query-status')).status).toBe('postmigrate');
    expect(await target.qmp.execute('query-status')).toMatchObject({
      status: 'running',
      running: true,
    });
  });

  it('a guest dirtying RAM faster than max-bandwidth never converges; migrate_cancel leaves the source running and the target fails and exits', async () => {
    const source = await peer({
      machine: 'pc',
      ramBytes: 1024 * 1024,
      dirtyRate: 2 * 1024 * 1024,
    });
    const target = await peer({ machine: 'pc', incoming: 'defer' });
    const targetEvents = record(target.qmp);
    const sock = path.join(dir, 'dirty.sock');
    await target.qmp.execute('migrate-set-capabilities', { capabilities: [...LIVE] });
    await target.qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
    await source.qmp.execute('migrate-set-capabilities', { capabilities: [...LIVE] });
    await source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 1024 * 1024 });
    const pass4 = source.qmp.expectEvent('MIGRATION_PASS', (e) => e.data.pass === 4);
    await source.qmp.execute('migrate', { uri: `unix:${sock}` });
    await pass4.wait({ timeout: 10_000 });
    const info = await source.qmp.execute('query-migrate');
    // 102400 bytes sent per step, 204800 dirtied: every pass starts with all of RAM again.
    expect(info.status).toBe('active');
    expect(info.ram?.['dirty-pages-rate']).toBe(512);
    expect(info.ram?.remaining ?? 0).toBeGreaterThan(300 * 1024);
    expect((await source.qmp.execute('query-status')).status).toBe('running');

    const cancelled = source.qmp.expectEvent('MIGRATION', status('cancelled'));
    await source.qmp.execute('migrate_cancel');
    await cancelled.wait({ timeout: 5000 });
    expect(await source.qmp.execute('query-migrate')).toEqual({ status: 'cancelled' });
    expect((await source.qmp.execute('query-status')).status).toBe('running');
    expect(await target.fake.exited).toBe(1);
    expect(targetEvents).toEqual(['MIGRATION setup', 'MIGRATION active', 'MIGRATION failed']);
  });

  it('a target of another machine type gives up on the configuration section: the source fails while active and its guest runs on', async () => {
    for (const returnPath of [true, false]) {
      const source = await peer({ machine: 'pc', ramBytes: 16 * 1024 * 1024 });
      const target = await peer({ machine: 'pc', machineType: 'pc-i440fx-7.1', incoming: 'defer' });
      const caps = [
        { capability: 'events' as const, state: true },
        { capability: 'return-path' as const, state: returnPath },
      ];
      const sock = path.join(dir, `type-${returnPath}.sock`);
      await target.qmp.execute('migrate-set-capabilities', { capabilities: caps });
      await target.qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
      await source.qmp.execute('migrate-set-capabilities', { capabilities: caps });
      // 1 byte/s: the source cannot finish before the target has read the configuration.
      await source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 1 });
      const sourceEvents = record(source.qmp);
      const failed = source.qmp.expectEvent('MIGRATION', status('failed'));
      await source.qmp.execute('migrate', { uri: `unix:${sock}` });
      await failed.wait({ timeout: 5000 });
      expect(await target.fake.exited).toBe(1);
      expect(sourceEvents).toEqual([
        'MIGRATION setup',
        'PASS 1',
        'MIGRATION active',
        'MIGRATION failed',
      ]);
      expect(await source.qmp.execute('query-migrate')).toEqual({
        status: 'failed',
        'error-desc': 'Unable to write to socket: Bad file descriptor',
      });
      expect((await source.qmp.execute('query-status')).status).toBe('running');
    }
  });

  it('QEMU 10.0: `channels` instead of `uri`; a stopped source leaves the target paused', async () => {
    const source = await peer({ qemuVersion: '10.0', machine: 'none' });
    const target = await peer({ qemuVersion: '10.0', machine: 'none', incoming: 'defer' });
    const sock = path.join(dir, 'channels.sock');
    // The clients are typed for 7.2 (no `channels` there): these two go unchecked.
    const channels = [
      { 'channel-type': 'main', addr: { transport: 'socket', type: 'unix', path: sock } },
    ];
    await target.qmp.executeUnchecked('migrate-incoming', { channels });
    await source.qmp.execute('stop');
    await source.qmp.executeUnchecked('migrate', { channels });
    for (let i = 0; i < 100; i++) {
      if ((await target.qmp.execute('query-migrate')).status === 'completed') break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(await target.qmp.execute('query-status')).toMatchObject({ status: 'paused' });
    expect((await source.qmp.execute('query-migrate')).status).toBe('completed');
  });
});

describe('the stream and the in-memory network (Node-free parts)', () => {
  it('encodes and decodes a stream: machine type, return path, run state', () => {
    const head = streamHead('pc-q35-7.2', { returnPath: true });
    const whole = new Uint8Array([...head, ...streamTail('paused')]);
    expect(parseStream(whole)).toEqual({
      runstate: 'paused',
      returnPath: true,
      machineType: 'pc-q35-7.2',
    });
    expect(parseStream(head)).toBe('load of migration failed: Invalid argument');
    expect(parseStream(new Uint8Array(0))).toBe('empty');
    const shuts: boolean[] = [];
    const reader = new ReturnPathReader((failed) => shuts.push(failed));
    const both = new Uint8Array([...returnPathShut(false), ...returnPathShut(true)]);
    reader.push(both.subarray(0, 3));
    reader.push(both.subarray(3));
    expect(shuts).toEqual([false, true]);
  });

  it('MemoryNet: ports from 32768 for port 0, refused and missing addresses, half-close', async () => {
    const net = new MemoryNet();
    const received: string[] = [];
    const listener = await net.listen({ type: 'inet', host: '127.0.0.1', port: 0 }, (channel) => ({
      data: (chunk) => received.push(new TextDecoder().decode(chunk)),
      end: () => {
        channel.write(new TextEncoder().encode('bye'));
        channel.end();
      },
      error: () => {},
    }));
    expect(listener.port).toBe(32768);
    const back: string[] = [];
    const ended = new Promise<void>((resolve) => {
      const client = net.connect(
        { type: 'inet', host: '127.0.0.1', port: 32768 },
        {
          connect: () => {},
          data: (chunk) => back.push(new TextDecoder().decode(chunk)),
          end: resolve,
          error: () => {},
        },
      );
      client.write(new TextEncoder().encode('a'));
      client.write(new TextEncoder().encode('b'));
      client.end();
    });
    await ended;
    expect(received).toEqual(['a', 'b']);
    expect(back).toEqual(['bye']);
    listener.close();
    const refused = await new Promise<string>((resolve) =>
      net.connect(
        { type: 'unix', path: '/nowhere' },
        { connect: () => {}, data: () => {}, end: () => {}, error: (code) => resolve(code) },
      ),
    );
    expect(refused).toBe('ENOENT');
  });
});
