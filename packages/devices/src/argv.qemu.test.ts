/**
 * The model against a real qemu-system-x86_64 7.2: the argv it generates starts QEMU, and
 * what QEMU reports (block nodes, PCI devices, /machine/peripheral, chardevs) agrees with
 * the model; hot-plug and unplug steps run over QMP in the order the model gives.
 */
import { type ChildProcessWithoutNullStreams, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import {
  privateTempDir,
  QEMU,
  qemuSuite,
  spawnQemu,
  TEST_ACCEL,
} from '@qmpkit/testguest/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toArgv } from './argv.js';
import { DRIVERS, type PropKind } from './drivers.js';
import { blockGraph } from './graph.js';
import { type PlugStep, plug, type UnplugStep, unplug } from './hotplug.js';
import { MiB, type VmConfig } from './model.js';

// Skips each test with the reason when QEMU is missing (fails in CI); kills every QEMU this
// file started after it, also when a test failed or timed out.
qemuSuite({ prefix: 'qmpkit-devices-' });
const hasQemu = QEMU.missing === undefined;
const seabios = ['/usr/share/seabios/bios-256k.bin', '/usr/share/qemu/bios-256k.bin'].find((p) =>
  existsSync(p),
);

/**
 * A boot sector that acknowledges PCI unplug requests, so `device_del` completes without an
 * OS (PIIX4 ACPI PCI hot-plug registers: select 0xae10, pending removals 0xae04, eject 0xae08):
 *   mov dx,0xae10; xor eax,eax; out dx,eax
 *   poll: mov dx,0xae04; in eax,dx; test eax,eax; jz poll; mov dx,0xae08; out dx,eax; jmp poll
 */
const EJECT_LOOP = Buffer.from('ba10ae6631c066efba04ae66ed6685c074f6ba08ae66efebef', 'hex');

type Json = Record<string, unknown>;

/** A minimal QMP client over the child's stdio, for this test only. */
class StdioQmp {
  readonly events: Json[] = [];
  readonly #pending = new Map<
    string,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  readonly #eventWaiters: Array<{ match: (e: Json) => boolean; resolve: (e: Json) => void }> = [];
  #nextId = 0;
  readonly greeting: Promise<Json>;

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    let greeted: (g: Json) => void = () => {};
    this.greeting = new Promise((resolve) => {
      greeted = resolve;
    });
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const message = JSON.parse(line) as Json;
      if ('QMP' in message) greeted(message);
      else if ('event' in message) {
        this.events.push(message);
        for (const w of [...this.#eventWaiters]) {
          if (w.match(message)) {
            this.#eventWaiters.splice(this.#eventWaiters.indexOf(w), 1);
            w.resolve(message);
          }
        }
      } else {
        const id = String(message.id);
        const pending = this.#pending.get(id);
        this.#pending.delete(id);
        if (!pending) return;
        if ('error' in message) pending.reject(new Error(JSON.stringify(message.error)));
        else pending.resolve(message.return);
      }
    });
  }

  execute(command: string, args?: unknown): Promise<unknown> {
    const id = `t${this.#nextId++}`;
    const message =
      args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.child.stdin.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Registers interest in an event now (before the command that causes it is sent). */
  nextEvent(match: (e: Json) => boolean, timeoutMs: number): Promise<Json> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no matching event within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#eventWaiters.push({
        match,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  /** Runs model steps in order; `device_del` steps wait for their DEVICE_DELETED. */
  async run(steps: ReadonlyArray<PlugStep | UnplugStep>): Promise<void> {
    for (const step of steps) {
      if ('awaitEvent' in step) {
        const { event, match } = step.awaitEvent;
        const deleted = this.nextEvent(
          (e) => e.event === event && (e.data as Json | undefined)?.device === match.device,
          // The first one waits for the guest to boot into its eject loop (seconds under KVM
          // with SeaBIOS in pflash).
          40_000,
        );
        await this.execute(step.execute, step.arguments);
        await deleted;
      } else {
        await this.execute(step.execute, step.arguments);
      }
    }
  }
}

function qemuImg(...args: string[]): void {
  const result = spawnSync(QEMU.img, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`qemu-img ${args.join(' ')}: ${result.stderr}`);
}

describe(`QEMU ${QEMU.version?.major}.${QEMU.version?.minor} option syntax`, () => {
  /** Starts QEMU with `-machine none` plus `args` and reports whether it came up. */
  function accepts(args: string[]): { ok: boolean; stderr: string } {
    const result = spawnSync(
      QEMU.system,
      [...QEMU.baseArgs, '-nodefaults', '-display', 'none', '-S', ...args, '-qmp', 'stdio'],
      {
        input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n',
        encoding: 'utf8',
        timeout: 20_000,
      },
    );
    return { ok: result.status === 0, stderr: result.stderr };
  }

  it('takes JSON for -object, -blockdev, -device and -netdev, key=value for -chardev, -machine and -accel', () => {
    expect(accepts(['-machine', 'none', '-object', '{"qom-type":"iothread","id":"io0"}']).ok).toBe(
      true,
    );
    expect(
      accepts(['-machine', 'none', '-blockdev', '{"driver":"null-co","node-name":"n0"}']).ok,
    ).toBe(true);
    expect(
      accepts([
        '-machine',
        'none',
        '-netdev',
        '{"id":"n0","type":"user","hostfwd":[{"str":"tcp:127.0.0.1:0-:22"}]}',
      ]).ok,
    ).toBe(true);
    expect(
      accepts([
        '-machine',
        'pc-i440fx-7.2',
        '-accel',
        'tcg',
        '-device',
        '{"driver":"virtio-balloon-pci","id":"b0"}',
      ]).ok,
    ).toBe(true);
    // JSON -device is typed: a string where an integer belongs fails.
    const typed = accepts([
      '-machine',
      'pc-i440fx-7.2',
      '-accel',
      'tcg',
      '-device',
      '{"driver":"virtio-net-pci","id":"n0","bootindex":"1"}',
    ]);
    expect(typed.ok).toBe(false);
    expect(typed.stderr).toContain("Invalid parameter type for 'bootindex', expected: integer");

    const chardev = accepts([
      '-machine',
      'none',
      '-chardev',
      '{"id":"c0","backend":{"type":"null","data":{}}}',
    ]);
    expect(chardev.ok).toBe(false);
    expect(chardev.stderr).toContain('Invalid parameter');
    expect(accepts(['-machine', '{"type":"none"}']).ok).toBe(false);
    expect(accepts(['-machine', 'none', '-accel', '{"accel":"tcg"}']).ok).toBe(false);
    expect(accepts(['-machine', 'none', '-m', '{"size":134217728}']).ok).toBe(false);
  });

  it('reads a doubled comma in a -chardev value as one comma, and = as data', () => {
    const { dir, remove } = privateTempDir('qmpkit-devices-esc-');
    try {
      const log = path.join(dir, 'a,b=c,,d.log');
      const result = accepts([
        '-machine',
        'none',
        '-chardev',
        `file,id=c0,path=${log.replaceAll(',', ',,')}`,
      ]);
      expect(result.ok).toBe(true);
      expect(existsSync(log)).toBe(true);
    } finally {
      remove();
    }
  });

  /**
   * Properties whose QEMU type changed between the versions the model serves, with the types
   * QEMU declares: the model's type must fit each (10.0 made `rombar` int32, 7.2 has uint32;
   * the values users pass, 0 and 1, are in both).
   */
  const RETYPED: Readonly<Record<string, readonly string[]>> = { rombar: ['uint32', 'int32'] };

  it('knows every typed device property with the declared type', async () => {
    const child = spawnQemu(
      ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio'],
      {
        stdio: 'pipe',
      },
    ) as ChildProcessWithoutNullStreams;
    const qmp = new StdioQmp(child);
    try {
      await qmp.greeting;
      await qmp.execute('qmp_capabilities');
      const mismatches: string[] = [];
      for (const [driver, spec] of Object.entries(DRIVERS)) {
        const props = (await qmp.execute('device-list-properties', { typename: driver })) as Array<{
          name: string;
          type: string;
        }>;
        const qemuTypes = new Map(props.map((p) => [p.name, p.type]));
        for (const [name, prop] of Object.entries(spec.props) as Array<
          [string, { kind: PropKind }]
        >) {
          const actual = qemuTypes.get(name);
          const kind = prop.kind;
          const ok =
            actual !== undefined &&
            (kind === 'str'
              ? actual === 'str' ||
                actual.startsWith('link<') ||
                (name === 'addr' && actual === 'int32')
              : kind === 'bool'
                ? actual === 'bool'
                : typeof kind === 'string'
                  ? actual === kind || RETYPED[name]?.includes(actual) === true
                  : !['str', 'bool'].includes(actual) && !/^u?int/.test(actual));
          if (!ok)
            mismatches.push(
              `${driver}.${name}: model ${JSON.stringify(kind)}, QEMU ${actual ?? 'missing'}`,
            );
        }
      }
      expect(mismatches).toEqual([]);
      await qmp.execute('quit');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});

describe(`a complex configuration in QEMU ${QEMU.version?.major}.${QEMU.version?.minor}`, () => {
  let dir = '';
  let removeDir = () => {};
  let child: ChildProcessWithoutNullStreams | undefined;
  let qmp: StdioQmp;
  let stderr = '';
  let config: VmConfig;

  beforeAll(async () => {
    if (!hasQemu) return;
    // Commas, '=' and a space in every path: escaping is exercised end to end.
    const tmp = privateTempDir('qmpkit devices,x=y-');
    dir = tmp.dir;
    removeDir = tmp.remove;
    const at = (name: string) => path.join(dir, name);
    qemuImg('create', '-q', '-f', 'qcow2', at('disk0.qcow2'), '16M');
    qemuImg('create', '-q', '-f', 'qcow2', at('data.qcow2'), '16M');
    qemuImg('create', '-q', '-f', 'qcow2', at('hot.qcow2'), '16M');
    qemuImg('create', '-q', '-f', 'raw', at('boot.raw'), '1M');
    const fd = openSync(at('boot.raw'), 'r+');
    writeSync(fd, EJECT_LOOP, 0, EJECT_LOOP.length, 0);
    writeSync(fd, Buffer.from([0x55, 0xaa]), 0, 2, 510);
    closeSync(fd);
    const pflash = seabios !== undefined;
    if (seabios) {
      // SeaBIOS as pflash0 (read-only "code") and an empty raw pflash1 (writable "vars"),
      // the OVMF layout without needing OVMF.
      copyFileSync(seabios, at('code.fd'));
      qemuImg('create', '-q', '-f', 'raw', at('vars.fd'), '128K');
    }
    config = {
      machine: {
        type: 'pc-i440fx-7.2',
        'memory-backend': 'mem0',
        ...(pflash ? { pflash0: 'fw-code', pflash1: 'fw-vars' } : {}),
      },
      // TCG on every host (the shared test support's choice): `kvm` where /dev/kvm is
      // missing made QEMU print "Could not access KVM kernel module … falling back to tcg".
      accel: [...TEST_ACCEL],
      memory: { size: 64 * MiB },
      smp: { cpus: 1 },
      paused: true,
      qmp: { chardev: 'qmp0' },
      objects: [
        { 'qom-type': 'memory-backend-ram', id: 'mem0', size: 64 * MiB },
        { 'qom-type': 'iothread', id: 'io0' },
        { 'qom-type': 'throttle-group', id: 'tg0', limits: { 'iops-total': 10000 } },
      ],
      chardevs: [
        { id: 'ser0', backend: { type: 'file', data: { out: at('serial,0=1.log') } } },
        { id: 'con0', backend: { type: 'ringbuf', data: { size: 65536 } } },
      ],
      netdevs: [{ id: 'net0', type: 'user', restrict: true }],
      blockdevs: [
        { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' },
        { driver: 'file', 'node-name': 'disk0-file', filename: at('disk0.qcow2') },
        { driver: 'file', 'node-name': 'boot-file', filename: at('boot.raw') },
        { driver: 'raw', 'node-name': 'boot', file: 'boot-file' },
        { driver: 'file', 'node-name': 'data-file', filename: at('data.qcow2') },
        { driver: 'qcow2', 'node-name': 'data', file: 'data-file', backing: null },
        { driver: 'throttle', 'node-name': 'data-throttle', file: 'data', 'throttle-group': 'tg0' },
        ...(pflash
          ? ([
              {
                driver: 'file',
                'node-name': 'fw-code-file',
                filename: at('code.fd'),
                'read-only': true,
              },
              { driver: 'raw', 'node-name': 'fw-code', file: 'fw-code-file', 'read-only': true },
              { driver: 'file', 'node-name': 'fw-vars-file', filename: at('vars.fd') },
              { driver: 'raw', 'node-name': 'fw-vars', file: 'fw-vars-file' },
            ] as const)
          : []),
      ],
      devices: [
        { driver: 'ide-hd', id: 'boot0', drive: 'boot', bus: 'ide.0', unit: 0, bootindex: 0 },
        { driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0', iothread: 'io0', serial: 'disk,0' },
        { driver: 'scsi-hd', id: 'sd0', drive: 'data-throttle', bus: 'scsi0.0', 'scsi-id': 1 },
        { driver: 'virtio-scsi-pci', id: 'scsi0', iothread: 'io0' },
        { driver: 'virtio-net-pci', id: 'nic0', netdev: 'net0', mac: '52:54:00:12:34:56' },
        { driver: 'isa-serial', id: 'serial0', chardev: 'ser0' },
        { driver: 'virtio-serial-pci', id: 'vser0' },
        { driver: 'virtconsole', id: 'vcon0', chardev: 'con0', bus: 'vser0.0' },
      ],
      staticArgs: ['-name', 'qmpkit-devices-test'],
    };
    const argv = toArgv(config, { qmp: { backend: { type: 'stdio', data: { signal: false } } } });
    child = spawnQemu(argv, { stdio: ['pipe', 'pipe', 'pipe'] }) as ChildProcessWithoutNullStreams;
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    qmp = new StdioQmp(child);
    const exited = new Promise<never>((_, reject) =>
      child?.once('exit', (code) => reject(new Error(`QEMU exited with ${code}: ${stderr}`))),
    );
    await Promise.race([qmp.greeting, exited]);
    await qmp.execute('qmp_capabilities');
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const gone = new Promise((resolve) => child?.once('exit', resolve));
      try {
        await qmp.execute('quit');
      } catch {
        // Already going away.
      }
      const timer = setTimeout(() => child?.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    }
    removeDir();
  });

  async function nodeNames(): Promise<string[]> {
    const nodes = (await qmp.execute('query-named-block-nodes', { flat: true })) as Array<{
      'node-name': string;
    }>;
    return nodes.map((n) => n['node-name']).sort();
  }

  async function peripherals(): Promise<Record<string, string>> {
    const list = (await qmp.execute('qom-list', { path: '/machine/peripheral' })) as Array<{
      name: string;
      type: string;
    }>;
    return Object.fromEntries(
      list.filter((p) => p.type.startsWith('child<')).map((p) => [p.name, p.type.slice(6, -1)]),
    );
  }

  async function pciIds(): Promise<string[]> {
    const buses = (await qmp.execute('query-pci')) as Array<{
      devices: Array<{ qdev_id: string }>;
    }>;
    return buses
      .flatMap((b) => b.devices.map((d) => d.qdev_id))
      .filter((id) => id !== '')
      .sort();
  }

  function modelNodes(c: VmConfig): string[] {
    return (c.blockdevs ?? []).map((n) => n['node-name']).sort();
  }

  it('starts, and QEMU reports the block nodes, devices and chardevs of the model', async () => {
    expect(await nodeNames()).toEqual(modelNodes(config));
    const drivers = (await qmp.execute('query-named-block-nodes', { flat: true })) as Array<{
      'node-name': string;
      drv: string;
      ro: boolean;
    }>;
    for (const n of drivers) {
      const model = config.blockdevs?.find((b) => b['node-name'] === n['node-name']);
      expect(n.drv).toBe(model?.driver);
      expect(n.ro).toBe(model?.['read-only'] === true);
    }
    expect(await peripherals()).toEqual(
      Object.fromEntries((config.devices ?? []).map((d) => [d.id, d.driver])),
    );
    expect(await pciIds()).toEqual(['nic0', 'scsi0', 'vd0', 'vser0']);
    const chardevs = (await qmp.execute('query-chardev')) as Array<{ label: string }>;
    expect(chardevs.map((c) => c.label).sort()).toEqual(['con0', 'qmp0', 'ser0']);
    expect(existsSync(path.join(dir, 'serial,0=1.log'))).toBe(true);
    const status = (await qmp.execute('query-status')) as { status: string };
    expect(status.status).toBe('prelaunch');
    // Which device QEMU attached each top node to agrees with the block graph.
    const graph = blockGraph(config);
    const block = (await qmp.execute('query-block')) as Array<{
      qdev: string;
      inserted?: { 'node-name': string };
    }>;
    for (const b of block) {
      const id = /^\/machine\/peripheral\/([^/]+)/.exec(b.qdev)?.[1];
      if (id !== undefined) expect(graph.topOf(id)).toBe(b.inserted?.['node-name']);
      else if (b.qdev === '/machine/system.flash0')
        expect(graph.pflash('pflash0')).toBe(b.inserted?.['node-name']);
      else if (b.qdev === '/machine/system.flash1')
        expect(graph.pflash('pflash1')).toBe(b.inserted?.['node-name']);
    }
    expect(block.length).toBe(graph.attachments.length);
    // QEMU's serial number kept its comma (JSON -device, no escaping needed).
    const serial = await qmp.execute('qom-get', {
      path: '/machine/peripheral/vd0/virtio-backend',
      property: 'serial',
    });
    expect(serial).toBe('disk,0');
  });

  it('refuses HMP savevm because of a node the graph lists as a savevm blocker', async () => {
    const graph = blockGraph(config);
    expect(graph.snapshottableNodes().sort()).toEqual(['data-throttle', 'disk0']);
    expect(graph.classify('data-throttle').snapshotsIn).toBe('data');
    const blockers = graph.savevmBlockers();
    expect(blockers).toContain('boot');
    if (config.machine.pflash1) expect(blockers).toContain('fw-vars');
    const reply = (await qmp.execute('human-monitor-command', {
      'command-line': 'savevm probe',
    })) as string;
    const named = /Device '([^']+)' is writable but does not support snapshots/.exec(reply)?.[1];
    expect(named).toBeDefined();
    expect(blockers).toContain(named);
  });

  it('hot-plugs a qcow2 disk, a virtio-blk-pci, a netdev and a NIC with the model steps, and unplugs them in order', {
    timeout: 120_000,
  }, async () => {
    const before = { nodes: await nodeNames(), devices: await peripherals() };
    const added = plug(config, {
      netdevs: [{ id: 'net1', type: 'user', restrict: true }],
      blockdevs: [
        { driver: 'qcow2', 'node-name': 'hot', file: 'hot-file' },
        { driver: 'file', 'node-name': 'hot-file', filename: path.join(dir, 'hot.qcow2') },
      ],
      devices: [
        { driver: 'virtio-blk-pci', id: 'vd1', drive: 'hot' },
        { driver: 'virtio-net-pci', id: 'nic1', netdev: 'net1' },
      ],
    });
    const label = (s: PlugStep | UnplugStep) => {
      const args = s.arguments as Record<string, unknown>;
      return `${s.execute} ${String(args.id ?? args['node-name'])}`;
    };
    expect(added.steps.map(label)).toEqual([
      'netdev_add net1',
      'blockdev-add hot-file',
      'blockdev-add hot',
      'device_add vd1',
      'device_add nic1',
    ]);
    await qmp.run(added.steps);
    expect(await nodeNames()).toEqual(modelNodes(added.config));
    expect(await peripherals()).toEqual(
      Object.fromEntries((added.config.devices ?? []).map((d) => [d.id, d.driver])),
    );
    expect(await pciIds()).toContain('vd1');
    const network = (await qmp.execute('human-monitor-command', {
      'command-line': 'info network',
    })) as string;
    expect(network).toMatch(/\bnet1\b/);

    // PCI unplug needs the guest: let the eject loop in the boot sector run.
    await qmp.execute('cont');
    const removed = unplug(added.config, { devices: ['vd1', 'nic1'] });
    expect(removed.steps.map(label)).toEqual([
      'device_del nic1',
      'device_del vd1',
      'blockdev-del hot',
      'blockdev-del hot-file',
      'netdev_del net1',
    ]);
    expect(removed.removed.blockdevs).toEqual(['hot', 'hot-file']);
    await qmp.run(removed.steps);
    expect(await nodeNames()).toEqual(before.nodes);
    expect(await peripherals()).toEqual(before.devices);
    expect(removed.config.devices).toEqual(config.devices);
    const networkAfter = (await qmp.execute('human-monitor-command', {
      'command-line': 'info network',
    })) as string;
    expect(networkAfter).not.toMatch(/\bnet1\b/);
  });

  it('QEMU refuses to hot-plug what the model marks as not hot-pluggable', async () => {
    expect(() =>
      plug(config, { devices: [{ driver: 'isa-serial', id: 'serial1', chardev: 'con0' }] }),
    ).toThrow(/cannot be hot-plugged/);
    await expect(
      qmp.execute('device_add', { driver: 'isa-serial', id: 'serial1', chardev: 'con0' }),
    ).rejects.toThrow(/does not support hotplugging/);
    await expect(
      qmp.execute('device_add', { driver: 'ide-hd', id: 'ide1', drive: 'disk0', bus: 'ide.1' }),
    ).rejects.toThrow(/does not support hotplugging/);
  });

  it('wrote nothing unexpected to stderr', () => {
    const lines = stderr
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.includes("host doesn't support requested feature"));
    expect(lines).toEqual([]);
  });
});
