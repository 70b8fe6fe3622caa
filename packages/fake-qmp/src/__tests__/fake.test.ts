import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, isQmpCommandError, isQmpJobError } from '@qmpkit/transport';
import { afterEach, describe, expect, it } from 'vitest';
import { isExpectationError, qmpError } from '../errors.js';
import { createFakeQmp, type FakeQmp } from '../server/fake.js';
import { NO_REPLY } from '../server/types.js';
import { negotiated, rawClient, rawSocket } from './helpers.js';

const fakes: FakeQmp[] = [];
async function fake(options: Parameters<typeof createFakeQmp>[0] = {}): Promise<FakeQmp> {
  const f = await createFakeQmp({ storage: 'memory', ...options });
  fakes.push(f);
  return f;
}
afterEach(async () => {
  for (const f of fakes.splice(0)) await f.close();
});

describe('wire', () => {
  it('greets like QEMU 7.2 and refuses commands before negotiation', async () => {
    const f = await fake();
    const c = rawClient(f);
    const [greeting] = await c.waitLines(1);
    expect(greeting).toBe(
      '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}',
    );
    c.send('{"execute":"query-status","id":1}\n');
    expect((await c.waitLines(2))[1]).toBe(
      `{"id": 1, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}`,
    );
    expect(c.raw().endsWith('\r\n')).toBe(true);
  });

  it('imitates QEMU 10.0 from its schema: greeting, StatusInfo, migration capabilities, file: URIs', async () => {
    const f = await fake({ qemuVersion: '10.0', machine: 'none', storage: 'host' });
    const c = rawClient(f);
    const [greeting] = await c.waitLines(1);
    expect(greeting).toBe(
      '{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1"}, "capabilities": ["oob"]}}',
    );
    c.destroy();
    const qmp = await connect(f.pair());
    // singlestep left StatusInfo after 7.2; compress and block left MigrationCapability.
    expect(await qmp.execute('query-status')).toEqual({ running: true, status: 'running' });
    const capabilities = (await qmp.execute('query-migrate-capabilities')).map((c) => c.capability);
    expect(capabilities).toContain('mapped-ram');
    expect(capabilities).not.toContain('compress');
    const parameters = await qmp.execute('query-migrate-parameters');
    expect(parameters).toMatchObject({ 'direct-io': false, mode: 'normal' });
    expect(parameters).not.toHaveProperty('compress-level');
    // 10.0 migrates to files; 7.2 refuses the URI.
    const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-fake-10-'));
    try {
      await qmp.execute('migrate', { uri: `file:${path.join(dir, 'state')}` });
      // Until it completes (the test's timeout bounds the wait).
      for (;;) {
        const info = await qmp.execute('query-migrate');
        if (info.status === 'completed') break;
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(statSync(path.join(dir, 'state')).size).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await qmp.close();
    const old = await connect((await fake({ machine: 'none' })).pair());
    await expect(old.execute('migrate', { uri: 'file:/x' })).rejects.toSatisfy(
      (e: unknown) =>
        isQmpCommandError(e) && e.desc === "Parameter 'uri' expects a valid migration protocol",
    );
    await old.close();
  });

  it('serves a typed client end to end (events before the reply, like QEMU)', async () => {
    const f = await fake({ machine: 'none' });
    const qmp = await connect(f.pair(), { validate: 'strict' });
    expect(await qmp.execute('query-status')).toEqual({
      running: true,
      singlestep: false,
      status: 'running',
    });
    const stop = qmp.expectEvent('STOP');
    await qmp.execute('stop');
    await stop.wait({ timeout: 1000 });
    expect(f.model.run.status).toBe('paused');
    await expect(qmp.execute('blockdev-del', { 'node-name': 'x' })).rejects.toSatisfy(
      (e: unknown) => isQmpCommandError(e) && e.desc === "Failed to find node with node-name='x'",
    );
    await qmp.close();
  });

  it('listens on a unix socket in a fresh 0700 directory, on TCP loopback and on WebSocket', async () => {
    const f = await fake({ listen: [{ unix: true }, { tcp: {} }, { ws: {} }] });
    const [unix, tcp, ws] = f.addresses;
    expect(unix?.address).toMatch(/^unix:\//);
    expect(statSync(path.dirname(unix!.address.slice(5))).mode & 0o777).toBe(0o700);
    expect(tcp?.address).toMatch(/^tcp:127\.0\.0\.1:\d+$/);
    expect(ws?.address).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/$/);
    for (const a of [unix!, tcp!]) {
      const c = await rawSocket(a.address);
      expect((await c.waitLines(1))[0]).toMatch(/^\{"QMP"/);
      c.destroy();
    }
    const { WebSocket } = await import('ws');
    const qmp = await connect(ws!.address, { WebSocket });
    expect((await qmp.execute('query-version')).qemu.minor).toBe(2);
    await qmp.close();
  });

  it('creates the parent directory of a given socket path with mode 0700', async () => {
    const base = mkdtempSync(path.join(tmpdir(), 'fake-test-'));
    try {
      const file = path.join(base, 'private', 'qmp.sock');
      const f = await fake({ listen: { unix: file } });
      expect(statSync(path.join(base, 'private')).mode & 0o777).toBe(0o700);
      expect(existsSync(file)).toBe(true);
      await f.close();
      expect(existsSync(file)).toBe(false);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('answers exec-oob at once while an in-band command is still running', async () => {
    const f = await fake();
    let release!: () => void;
    f.handle(
      'query-status',
      () =>
        new Promise(
          (r) => (release = () => r({ running: true, singlestep: false, status: 'running' })),
        ),
    );
    const c = await negotiated(f, true);
    c.send(
      '{"execute":"query-status","id":"slow"}\n{"exec-oob":"migrate-recover","arguments":{"uri":"x"},"id":"oob"}\n',
    );
    const lines = await c.waitLines(3);
    expect(lines[2]).toContain('"id": "oob"');
    release();
    expect((await c.waitLines(4))[3]).toContain('"id": "slow"');
  });
  it('answers a command QEMU has but the fake does not model like QEMU failing it', async () => {
    // QEMU 7.2 answers this very line (no node 'x') with
    // {"id": 7, "error": {"class": "GenericError", "desc": "Cannot find device='x' nor node-name='x'"}}:
    // same frame, key order and class; the text names the fake (a contract scenario compares
    // the two with only the text normalised).
    const f = await fake();
    const c = await negotiated(f);
    c.send(
      '{"execute":"drive-mirror","arguments":{"device":"x","target":"/t","sync":"full"},"id":7}\n',
    );
    c.send('{"execute":"drive-backup","arguments":{"device":"x","target":"/t","sync":"full"}}\n');
    const lines = await c.waitLines(4);
    expect(lines.slice(2)).toEqual([
      `{"id": 7, "error": {"class": "GenericError", "desc": "qmpkit fake-qmp does not model 'drive-mirror' (QEMU 7.2.22 has it)"}}`,
      `{"error": {"class": "GenericError", "desc": "qmpkit fake-qmp does not model 'drive-backup' (QEMU 7.2.22 has it)"}}`,
    ]);
    // Arguments are still checked first, as QEMU checks them before running the command.
    c.send('{"execute":"drive-backup","arguments":{"target":"/t","sync":"full"},"id":8}\n');
    expect((await c.waitLines(5))[4]).toBe(
      `{"id": 8, "error": {"class": "GenericError", "desc": "Parameter 'device' is missing"}}`,
    );
  });
});

describe('scripting', () => {
  it('overrides a handler, falls back to the model, emits events, suppresses replies', async () => {
    const f = await fake();
    f.handle('query-status', (_args, ctx) => {
      ctx.emit('RESUME');
      return { ...(ctx.fallback() as object), status: 'debug' };
    });
    f.handle('stop', () => NO_REPLY);
    const qmp = await connect(f.pair());
    const resumed = qmp.expectEvent('RESUME');
    expect((await qmp.execute('query-status')).status).toBe('debug');
    await resumed.wait({ timeout: 1000 });
    await expect(qmp.execute('stop', undefined, { timeout: 50 })).rejects.toThrow();
    f.handle('query-status', () => {
      throw qmpError('boom', 'DeviceNotFound');
    });
    await expect(qmp.execute('query-status')).rejects.toSatisfy(
      (e: unknown) => isQmpCommandError(e) && e.errorClass === 'DeviceNotFound',
    );
    f.handle('query-status', undefined);
    expect((await qmp.execute('query-status')).status).toBe('running');
    await qmp.close();
  });

  it('injects events at any time and records history', async () => {
    const f = await fake();
    const qmp = await connect(f.pair());
    const ev = qmp.expectEvent('BLOCK_JOB_READY');
    f.emit('BLOCK_JOB_READY', { type: 'mirror', device: 'j', len: 1, offset: 1, speed: 0 });
    expect((await ev.wait({ timeout: 1000 })).data.device).toBe('j');
    await qmp.execute('query-version');
    expect(f.received('query-version')).toHaveLength(1);
    expect(f.history.at(-1)?.reply?.return).toMatchObject({ qemu: { major: 7 } });
    const next = f.nextCommand('cont');
    await qmp.execute('cont');
    expect((await next).command).toBe('cont');
    await qmp.close();
  });

  it('strict mode: an ordered queue; unexpected and leftover commands give a readable diff', async () => {
    const f = await fake();
    f.expect('query-status');
    f.expect('blockdev-add', { driver: 'null-co', 'node-name': 'n0' }).returns({});
    f.expect('device_del', { id: 'gone' }).fails("Device 'gone' not found", 'DeviceNotFound');
    f.expect('cont');
    const qmp = await connect(f.pair());
    expect((await qmp.execute('query-status')).status).toBe('running');
    await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'n0' });
    await expect(qmp.execute('stop')).rejects.toThrow(/expected device_del/);
    let error: unknown;
    try {
      f.verify();
    } catch (e) {
      error = e;
    }
    expect(isExpectationError(error)).toBe(true);
    if (!isExpectationError(error)) throw error;
    expect(error.failures.map((x) => x.kind)).toEqual(['mismatch', 'leftover', 'leftover']);
    expect(error.diff).toBe(
      [
        '  ✓ 1. query-status',
        '  ✓ 2. blockdev-add {"driver":"null-co","node-name":"n0"}',
        '  ✗ 3. expected device_del {"id":"gone"}\n       received stop {}',
        '  ✗ 3. never received: device_del {"id":"gone"}',
        '  ✗ 4. never received: cont',
      ].join('\n'),
    );
    await qmp.close();
  });

  it('strict mode still checks arguments against the schema first, like QEMU', async () => {
    const f = await fake({ strict: true });
    const qmp = await connect(f.pair());
    await expect(qmp.executeUnchecked('blockdev-add', { driver: 'qcow9' })).rejects.toThrow(
      "Parameter 'driver' does not accept value 'qcow9'",
    );
    expect(() => f.verify()).not.toThrow();
    await qmp.close();
  });
});

describe('faults', () => {
  it('delays replies', async () => {
    const f = await fake();
    f.inject({ kind: 'delay', ms: 80, command: 'query-status' });
    const qmp = await connect(f.pair());
    const t = performance.now();
    await qmp.execute('query-status');
    expect(performance.now() - t).toBeGreaterThanOrEqual(70);
    await qmp.close();
  });

  it('drops the connection after N commands', async () => {
    const f = await fake();
    f.inject({ kind: 'drop-after', commands: 2 });
    const c = await negotiated(f);
    c.send('{"execute":"query-status"}\n');
    await c.closed;
    expect(c.lines).toHaveLength(3);
  });

  it('drops the connection in the middle of a reply', async () => {
    const f = await fake();
    f.inject({ kind: 'drop-mid-reply', command: 'query-version', bytes: 10 });
    const c = await negotiated(f);
    c.send('{"execute":"query-version"}\n');
    await c.closed;
    expect(c.raw().endsWith('{"return":')).toBe(true);
  });

  it('sends garbage, partial frames, an event before the greeting; stalls', async () => {
    const f = await fake();
    f.inject({ kind: 'event-before-greeting', event: 'RESUME' });
    f.inject({ kind: 'garbage', command: 'query-status', times: 1 });
    f.inject({ kind: 'partial', command: 'query-version', bytes: 5 });
    f.inject({ kind: 'stall', command: 'cont' });
    const c = rawClient(f);
    const [first, second] = await c.waitLines(2);
    expect(first).toMatch(/^\{"timestamp": .*"event": "RESUME"\}$/);
    expect(second).toMatch(/^\{"QMP"/);
    c.send('{"execute":"qmp_capabilities"}\n{"execute":"query-status"}\n');
    const lines = await c.waitLines(5);
    expect(lines[3]).toBe('}{"garbage\u0000');
    expect(lines[4]).toMatch(/^\{"return": \{"status"/);
    c.send('{"execute":"cont"}\n{"execute":"query-status"}\n');
    await new Promise((r) => setTimeout(r, 50));
    expect(c.lines).toHaveLength(5); // cont never answered, query-status queued behind it
    const d = await negotiated(f);
    d.send('{"execute":"query-version"}\n');
    await new Promise((r) => setTimeout(r, 50));
    expect(d.raw().endsWith('{"ret')).toBe(true);
  });
});

describe('model through a client', () => {
  it('runs blockdev-create and snapshot jobs with the transport job runner', async () => {
    const f = await fake({ machine: 'none' });
    const qmp = await connect(f.pair(), { validate: 'strict' });
    const created = await qmp.runJob('blockdev-create', {
      'job-id': 'c1',
      options: { driver: 'file', filename: '/mem/disk.qcow2', size: 0 },
    });
    expect(created.statuses).toEqual([
      'created',
      'running',
      'waiting',
      'pending',
      'concluded',
      'null',
    ]);
    await qmp.execute('blockdev-add', {
      driver: 'file',
      filename: '/mem/disk.qcow2',
      'node-name': 'f',
    });
    await qmp.runJob('blockdev-create', {
      'job-id': 'c2',
      options: { driver: 'qcow2', file: 'f', size: 1 << 24 },
    });
    await qmp.execute('blockdev-add', { driver: 'qcow2', file: 'f', 'node-name': 'disk0' });
    await qmp.runJob('snapshot-save', {
      'job-id': 's',
      tag: 'a',
      vmstate: 'disk0',
      devices: ['disk0'],
    });
    expect(f.model.block.find('disk0')?.snapshots.map((s) => s.name)).toEqual(['a']);
    await expect(
      qmp.runJob('snapshot-load', {
        'job-id': 'l',
        tag: 'nope',
        vmstate: 'disk0',
        devices: ['disk0'],
      }),
    ).rejects.toSatisfy(
      (e: unknown) =>
        isQmpJobError(e) &&
        e.message.includes("Snapshot 'nope' does not exist in one or more devices"),
    );
    expect(await qmp.hmp('info snapshots')).toMatch(
      /^List of snapshots present on all disks:\r\nID {8}TAG/,
    );
    await qmp.close();
  });

  it('hot-plugs and unplugs devices with DEVICE_DELETED (PCI after the guest acknowledges)', async () => {
    const f = await fake({ timing: { pciUnplugMs: 5 } });
    const qmp = await connect(f.pair());
    await qmp.execute('device_add', { driver: 'virtio-net-pci', id: 'net0' });
    expect(await qmp.execute('qom-list', { path: '/machine/peripheral' })).toEqual([
      { name: 'type', type: 'string' },
      { name: 'net0', type: 'child<virtio-net-pci>' },
    ]);
    const deleted = qmp.expectEvent('DEVICE_DELETED', (e) => e.data.device === 'net0');
    await qmp.execute('device_del', { id: 'net0' });
    expect((await deleted.wait({ timeout: 1000 })).data.path).toBe('/machine/peripheral/net0');
    await qmp.close();
  });

  it('a PCI eject requested while stopped completes only after cont (the guest must run)', async () => {
    const f = await fake({ timing: { pciUnplugMs: 0 } });
    const qmp = await connect(f.pair());
    const seen: string[] = [];
    qmp.on('RESUME', () => seen.push('RESUME'));
    qmp.on('DEVICE_DELETED', (e) => seen.push(`DEVICE_DELETED ${e.data.path}`));
    await qmp.execute('device_add', { driver: 'virtio-net-pci', id: 'net0' });
    await qmp.execute('stop');
    await qmp.execute('device_del', { id: 'net0' });
    await qmp.execute('device_del', { id: 'net0' }); // still pending: accepted again
    // Give a (wrongly) running unplug timer every chance to fire before looking.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await qmp.execute('qom-list', { path: '/machine/peripheral' })).toContainEqual({
      name: 'net0',
      type: 'child<virtio-net-pci>',
    });
    const deleted = qmp.expectEvent('DEVICE_DELETED', (e) => e.data.device === 'net0');
    await qmp.execute('cont');
    await deleted.wait({ timeout: 1000 });
    expect(seen).toEqual([
      'RESUME',
      'DEVICE_DELETED /machine/peripheral/net0/virtio-backend',
      'DEVICE_DELETED /machine/peripheral/net0',
    ]);
    await qmp.close();
  });

  it('an unplugged qemu-xhci sends DEVICE_DELETED for its children only, like QEMU 7.2', async () => {
    const f = await fake({ timing: { pciUnplugMs: 0 } });
    const qmp = await connect(f.pair());
    const seen: string[] = [];
    qmp.on('DEVICE_DELETED', (e) => seen.push(e.data.path));
    await qmp.execute('device_add', { driver: 'qemu-xhci', id: 'hx' });
    await qmp.execute('device_add', { driver: 'usb-tablet', id: 't', bus: 'hx.0' });
    const child = qmp.expectEvent('DEVICE_DELETED', (e) => e.data.device === 't');
    await qmp.execute('device_del', { id: 'hx' });
    await child.wait({ timeout: 1000 });
    // The controller is gone all the same.
    await expect(qmp.execute('device_del', { id: 'hx' })).rejects.toSatisfy(
      (e: unknown) => isQmpCommandError(e) && e.errorClass === 'DeviceNotFound',
    );
    expect(seen).toEqual(['/machine/peripheral/t']);
    await qmp.close();
  });

  it('resetting a stopped pc leaves prelaunch; SeaBIOS resets once more when it runs', async () => {
    const f = await fake();
    const qmp = await connect(f.pair());
    const seen: string[] = [];
    qmp.on('RESUME', () => seen.push('RESUME'));
    qmp.on('RESET', (e) => seen.push(`RESET ${e.data.reason}`));
    await qmp.execute('stop');
    await qmp.execute('system_reset');
    expect((await qmp.execute('query-status')).status).toBe('prelaunch');
    const firmware = qmp.expectEvent('RESET', (e) => e.data.reason === 'guest-reset');
    await qmp.execute('cont');
    expect((await firmware.wait({ timeout: 1000 })).data.guest).toBe(true);
    expect(seen).toEqual(['RESET host-qmp-system-reset', 'RESUME', 'RESET guest-reset']);
    await qmp.close();
  });

  it('a cooperating guest shuts down on system_powerdown only once it runs', async () => {
    const f = await fake({ timing: { powerdownShutdownMs: 0 } });
    const qmp = await connect(f.pair());
    const seen: string[] = [];
    qmp.on('RESUME', () => seen.push('RESUME'));
    qmp.on('POWERDOWN', () => seen.push('POWERDOWN'));
    qmp.on('SHUTDOWN', (e) => seen.push(`SHUTDOWN ${e.data.reason}`));
    await qmp.execute('stop');
    await qmp.execute('system_powerdown');
    expect((await qmp.execute('query-status')).status).toBe('paused');
    const shutdown = qmp.expectEvent('SHUTDOWN');
    await qmp.execute('cont');
    await shutdown.wait({ timeout: 1000 });
    expect(seen).toEqual(['POWERDOWN', 'RESUME', 'SHUTDOWN guest-shutdown']);
    await qmp.close().catch(() => {});
  });

  it('migrates to a unix socket, writing a QEVM stream, and loads it in an incoming fake', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fake-mig-'));
    try {
      const source = await fake();
      const target = await fake({ incoming: 'defer', paused: true });
      const src = await connect(source.pair());
      const dst = await connect(target.pair());
      for (const c of [src, dst])
        await c.execute('migrate-set-capabilities', {
          capabilities: [{ capability: 'events', state: true }],
        });
      const sock = path.join(dir, 'in.sock');
      await dst.execute('migrate-incoming', { uri: `unix:${sock}` });
      const done = src.expectEvent('MIGRATION', (e) => e.data.status === 'completed');
      const arrived = dst.expectEvent('MIGRATION', (e) => e.data.status === 'completed');
      await src.execute('migrate', { uri: `unix:${sock}` });
      await done.wait({ timeout: 2000 });
      await arrived.wait({ timeout: 2000 });
      expect((await src.execute('query-status')).status).toBe('postmigrate');
      expect((await dst.execute('query-status')).status).toBe('paused');
      await src.close();
      await dst.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits on quit: SHUTDOWN, reply, every client closed, exited resolves', async () => {
    const f = await fake();
    const a = await negotiated(f);
    const b = await negotiated(f);
    a.send('{"execute":"quit"}\n');
    await Promise.all([a.closed, b.closed]);
    expect(await f.exited).toBe(0);
    expect(a.lines.slice(2)).toEqual([expect.stringContaining('"SHUTDOWN"'), '{"return": {}}']);
  });
});
