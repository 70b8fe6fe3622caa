/**
 * Restart, crash recovery from the state file, cold-plug over the monitor, a complex
 * configuration and console state, against a real QEMU 7.2.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isConfigValidationError, MiB, type VmConfig } from '@qmpkit/devices';
import { runQemuImg } from '@qmpkit/testguest';
import { launchQemu, qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { startCrashChild } from './crash.test-support.js';
import { isRunDirLockedError, isStateFileError } from './errors.js';
import { launch, Machine } from './machine.js';
import { processAlive } from './proc.js';
import { guestConfig, namedNodes, pciIds, peripherals } from './qemu.test-support.js';
import { readState } from './state.js';

// Each test's machines are killed after it, then every QEMU whose pidfile lies under the
// suite's dir (and every pid a child reported), also after a failure or timeout.
const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-machine-test-' });

const COUNTER = /C=([0-9A-F]{8})\r\n/;

describe('restart', () => {
  it('restarts with a changed configuration; consoles, run dir and state file stay', async () => {
    const config = await guestConfig(suite.dir, { name: 'restart' });
    const m = suite.adopt(
      await launch(config, { ...launchQemu(), consoles: ['ser0'], runDirParent: suite.dir }),
    );
    await m.console('ser0').expect(COUNTER, { timeout: 20_000 });
    const firstPid = m.pid;
    const serial = m.console('ser0');
    expect((await m.qmp.execute('query-memory-size-summary'))['base-memory']).toBe(32 * MiB);

    // What cannot work is refused before the running QEMU is touched.
    const bad = await m
      .restart({ ...config, devices: [{ driver: 'virtio-blk-pci', id: 'x', drive: 'nope' }] })
      .catch((e: unknown) => e);
    expect(isConfigValidationError(bad)).toBe(true);
    const missing = await m
      .restart(config, { inheritFiles: [{ path: path.join(suite.dir, 'missing.state') }] })
      .catch((e: unknown) => e);
    expect((missing as { code?: string }).code).toBe('ENOENT');
    expect(m.pid).toBe(firstPid);
    expect(m.status).toBe('running');

    await m.restart({ ...config, memory: { size: 64 * MiB } });
    expect(m.pid).not.toBe(firstPid);
    expect(processAlive(firstPid)).toBe(false);
    expect(m.console('ser0')).toBe(serial);
    expect((await m.qmp.execute('query-memory-size-summary'))['base-memory']).toBe(64 * MiB);
    // A fresh boot: the guest greets again and counts from 1.
    await serial.expect('G=00000001', { timeout: 20_000 });
    const first = await serial.expect(COUNTER, { timeout: 20_000 });
    expect(first.groups[0]).toBe('00000001');
    const state = await readState(m.stateFile ?? '');
    expect(state.config.memory.size).toBe(64 * MiB);
    expect(state.runtime.pid).toBe(m.pid);
    // After stop() (which removed the temporary run directory) it starts again.
    await m.stop();
    expect(m.status).toBe('stopped');
    await m.restart();
    expect(m.status).toBe('running');
    await serial.expect('G=00000001', { timeout: 20_000 });
    expect((await readState(m.stateFile ?? '')).runtime.status).toBe('running');
  });

  it('restarts with -incoming defer and an inherited file, and restores the console buffer', async () => {
    const config = await guestConfig(suite.dir, { name: 'incoming' });
    const m = suite.adopt(
      await launch(config, { ...launchQemu(), consoles: ['ser0'], runDirParent: suite.dir }),
    );
    const serial = m.console('ser0');
    await serial.expect(COUNTER, { timeout: 20_000 });
    // Save: stop the CPUs, migrate the state into a file, remember the unread console text.
    await m.qmp.execute('stop');
    await m.qmp.execute('migrate-set-capabilities', {
      capabilities: [{ capability: 'events', state: true }],
    });
    const { createStreamSink } = await import('@qmpkit/transport/fd');
    const stateBin = path.join(m.runDir, 'vm.state');
    const sink = await createStreamSink({ file: stateBin });
    const done = m.qmp.expectEvent('MIGRATION', (e) => e.data.status === 'completed');
    await m.qmp.execute('migrate', { uri: sink.uri });
    await done.wait({ timeout: 30_000 });
    await sink.done;
    const saved = m.consoleState();
    const lastBefore = serial.peek();
    // The test goes on and consumes the output…
    serial.read();

    // …then restores: QEMU again, waiting for the state on an inherited fd.
    const [file] = await m.restart(m.config, {
      incoming: true,
      inheritFiles: [{ path: stateBin }],
      consoleState: saved,
    });
    expect(m.argv.join(' ')).toContain('-incoming defer');
    expect((await m.qmp.execute('query-status')).status).toBe('inmigrate');
    expect(m.inheritedFiles[0]).toBe(file);
    expect(file?.uri).toMatch(/^fd:\d+$/);
    await m.qmp.execute('migrate-set-capabilities', {
      capabilities: [{ capability: 'events', state: true }],
    });
    const restored = m.qmp.expectEvent('MIGRATION', (e) => e.data.status === 'completed');
    await m.qmp.execute('migrate-incoming', { uri: file?.uri ?? '' });
    await restored.wait({ timeout: 30_000 });
    // What was unread at the snapshot is unread again, before anything new.
    expect(serial.peek().startsWith(lastBefore)).toBe(true);
    await m.qmp.execute('cont');
    const next = await serial.expect(COUNTER, { timeout: 20_000 });
    expect(next.before.startsWith(lastBefore) || lastBefore.includes(next.match)).toBe(true);
    // The restored guest continues its count rather than booting again.
    serial.read();
    const after = await serial.expect(COUNTER, { timeout: 20_000 });
    expect(Number.parseInt(after.groups[0] ?? '0', 16)).toBeGreaterThan(1);
    expect(after.before).not.toContain('G=');
    // Per-launch options are not part of the stored state.
    const state = await readState(m.stateFile ?? '');
    expect(state.config.incoming).toBeUndefined();
  });
});

describe('crash recovery', () => {
  it('relaunches from the state file after kill -9 of QEMU, with the same block nodes and devices', async () => {
    const config = await guestConfig(suite.dir, { name: 'crash' });
    const m = suite.adopt(
      await launch(config, {
        ...launchQemu(),
        consoles: ['ser0'],
        runDir: path.join(suite.dir, 'crash-run'),
        logger: { warn: () => {} },
      }),
    );
    await m.console('ser0').expect(COUNTER, { timeout: 20_000 });
    const disk = path.join(suite.dir, 'crash-data.qcow2');
    await runQemuImg(['create', '-q', '-f', 'qcow2', disk, '8M']);
    await m.plug({
      objects: [{ 'qom-type': 'iothread', id: 'io1' }],
      blockdevs: [
        { driver: 'file', 'node-name': 'data-file', filename: disk },
        { driver: 'qcow2', 'node-name': 'data', file: 'data-file' },
      ],
      netdevs: [{ id: 'net1', type: 'user', restrict: true }],
      devices: [
        { driver: 'virtio-blk-pci', id: 'vd1', drive: 'data', iothread: 'io1' },
        { driver: 'virtio-net-pci', id: 'nic1', netdev: 'net1' },
      ],
    });
    const before = { nodes: await namedNodes(m), devices: await peripherals(m) };
    const stateFile = m.stateFile ?? '';
    // While the process that started it (this one) runs, its QEMU is not a leftover.
    const refused = await Machine.relaunch(stateFile).catch((e: unknown) => e);
    expect(isRunDirLockedError(refused) && refused.holderPid).toBe(process.pid);
    expect(m.status).toBe('running');

    process.kill(m.pid, 'SIGKILL');
    const exit = await m.exited;
    expect(exit.signal).toBe('SIGKILL');
    await expect.poll(async () => (await readState(stateFile)).runtime.status).toBe('exited');

    const again = suite.adopt(await Machine.relaunch(stateFile, { logger: { warn: () => {} } }));
    expect(again.pid).not.toBe(m.pid);
    expect(await namedNodes(again)).toEqual(before.nodes);
    expect(await peripherals(again)).toEqual(before.devices);
    expect(again.config).toEqual(m.config);
    expect(again.runDir).toBe(m.runDir);
    await again.console('ser0').expect(COUNTER, { timeout: 20_000 });
    expect((await readState(stateFile)).runtime).toMatchObject({
      status: 'running',
      pid: again.pid,
    });
    await again.stop();
  });

  it('relaunches after kill -9 of the Node process that ran the machine (its QEMU is killed first)', async () => {
    const dir = path.join(suite.dir, 'orphan');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir, { mode: 0o700 });
    const { child, exit, stateFile, qemuPid } = await startCrashChild(suite, dir, 'nic');
    child.kill('SIGKILL');
    await exit;
    // QEMU outlives its parent (its monitor and consoles are gone with it).
    expect(processAlive(qemuPid)).toBe(true);
    const before = await readState(stateFile);
    expect(before.runtime.status).toBe('running');

    const m = suite.adopt(await Machine.relaunch(stateFile, { logger: { warn: () => {} } }));
    expect(processAlive(qemuPid)).toBe(false);
    expect(await peripherals(m)).toEqual([
      'boot0:ide-hd',
      'com1:isa-serial',
      'nic1:virtio-net-pci',
    ]);
    await m.console('ser0').expect(COUNTER, { timeout: 20_000 });
    await m.stop();
  }, 60_000);

  it('refuses a truncated or corrupt state file with a clear error and keeps the previous good state', async () => {
    const config = await guestConfig(suite.dir, { name: 'corrupt' });
    const m = suite.adopt(
      await launch(config, {
        ...launchQemu(),
        runDir: path.join(suite.dir, 'corrupt-run'),
        logger: { warn: () => {} },
      }),
    );
    await m.plug({ netdevs: [{ id: 'n9', type: 'user', restrict: true }] });
    const stateFile = m.stateFile ?? '';
    await m.stop();
    const good = readFileSync(stateFile, 'utf8');

    // Truncated: half the file.
    writeFileSync(stateFile, good.slice(0, good.length / 2));
    const truncated = readFileSync(stateFile);
    const e1 = await Machine.relaunch(stateFile).catch((e: unknown) => e);
    expect(isStateFileError(e1)).toBe(true);
    if (!isStateFileError(e1)) return;
    expect(e1.problem).toBe('not-json');
    expect(e1.message).toContain(stateFile);
    expect(e1.backup).toBe(`${stateFile}.bak`);
    expect(readFileSync(stateFile).equals(truncated)).toBe(true);

    // Corrupt: valid JSON, wrong fields.
    const doc = JSON.parse(good) as {
      runtime: Record<string, unknown>;
      config: { config: { devices: { drive?: string }[] } };
    };
    doc.runtime.pid = 'twelve';
    writeFileSync(stateFile, JSON.stringify(doc));
    const e2 = await Machine.relaunch(stateFile).catch((e: unknown) => e);
    expect(isStateFileError(e2) && e2.issues).toEqual([
      '$.runtime.pid: expected a non-negative integer or null, got "twelve"',
    ]);
    doc.runtime.pid = 1;
    const first = doc.config.config.devices[0];
    if (first) first.drive = 'nowhere';
    writeFileSync(stateFile, JSON.stringify(doc));
    const e3 = await Machine.relaunch(stateFile).catch((e: unknown) => e);
    expect(isStateFileError(e3) && e3.problem).toBe('config');
    expect(String(e3)).toContain('$.config.config.devices[0].drive');

    // The previous good state starts the VM.
    const m2 = suite.adopt(
      await Machine.relaunch(stateFile, { useBackup: true, logger: { warn: () => {} } }),
    );
    expect(m2.config.netdevs?.map((n) => n.id)).toEqual(['n9']);
    expect((await readState(stateFile)).runtime.pid).toBe(m2.pid);
    await m2.stop();
  });
});

describe('assembly and the command line', () => {
  it('starts blank with -S and cold-plugs disk, NIC and controller over QMP before cont', async () => {
    const base = await guestConfig(suite.dir, { name: 'assemble' });
    const config: VmConfig = {
      ...base,
      // The boot disk on virtio-blk, which QMP can add; the serial port stays on the command line.
      devices: [
        { driver: 'virtio-blk-pci', id: 'vd0', drive: 'boot', bootindex: 0 },
        { driver: 'isa-serial', id: 'com1', chardev: 'ser0' },
        { driver: 'virtio-net-pci', id: 'nic0', netdev: 'net0' },
      ],
      netdevs: [{ id: 'net0', type: 'user', restrict: true }],
    };
    const m = suite.adopt(
      await launch(config, {
        ...launchQemu(),
        assemble: 'qmp',
        consoles: ['ser0'],
        runDirParent: suite.dir,
      }),
    );
    const argv = m.argv.join(' ');
    expect(argv).toContain(' -S ');
    expect(argv).toContain('isa-serial');
    expect(argv).not.toContain('virtio-blk-pci');
    expect(argv).not.toContain('-netdev');
    expect(argv).not.toContain('-blockdev');
    expect(await pciIds(m)).toEqual(['nic0', 'vd0']);
    expect((await m.qmp.execute('query-status')).status).toBe('running');
    // The guest boots from the disk that was plugged over QMP.
    await m.console('ser0').expect(COUNTER, { timeout: 20_000 });
    expect(m.config).toEqual((await readState(m.stateFile ?? '')).config);
    await m.stop();
  });

  it('starts a complex configuration paused (-S) and QEMU reports what the model says', async () => {
    const at = (name: string) => path.join(suite.dir, name);
    await runQemuImg(['create', '-q', '-f', 'qcow2', at('cx-base.qcow2'), '8M']);
    await runQemuImg([
      'create',
      '-q',
      '-f',
      'qcow2',
      '-F',
      'qcow2',
      '-b',
      at('cx-base.qcow2'),
      at('cx-top.qcow2'),
    ]);
    await runQemuImg(['create', '-q', '-f', 'qcow2', at('cx-data.qcow2'), '8M']);
    const base = await guestConfig(suite.dir, { name: 'complex' });
    const config: VmConfig = {
      ...base,
      machine: { type: 'pc-i440fx-7.2', 'memory-backend': 'mem0' },
      smp: { cpus: 2 },
      paused: true,
      objects: [
        { 'qom-type': 'memory-backend-ram', id: 'mem0', size: 32 * MiB },
        { 'qom-type': 'iothread', id: 'io0' },
        { 'qom-type': 'throttle-group', id: 'tg0', limits: { 'iops-total': 1000 } },
      ],
      chardevs: [
        ...(base.chardevs ?? []),
        { id: 'con0', backend: { type: 'null', data: {} } },
        { id: 'log0', backend: { type: 'ringbuf', data: { size: 4096 } } },
      ],
      netdevs: [{ id: 'net0', type: 'user', restrict: true }],
      blockdevs: [
        ...(base.blockdevs ?? []),
        { driver: 'file', 'node-name': 'top-file', filename: at('cx-top.qcow2') },
        {
          driver: 'file',
          'node-name': 'base-file',
          filename: at('cx-base.qcow2'),
          'read-only': true,
        },
        {
          driver: 'qcow2',
          'node-name': 'base',
          file: 'base-file',
          'read-only': true,
          backing: null,
        },
        { driver: 'qcow2', 'node-name': 'top', file: 'top-file', backing: 'base' },
        { driver: 'file', 'node-name': 'data-file', filename: at('cx-data.qcow2') },
        { driver: 'qcow2', 'node-name': 'data', file: 'data-file' },
        {
          driver: 'throttle',
          'node-name': 'data-throttled',
          file: 'data',
          'throttle-group': 'tg0',
        },
      ],
      devices: [
        ...(base.devices ?? []),
        { driver: 'virtio-blk-pci', id: 'vd0', drive: 'top', iothread: 'io0' },
        { driver: 'virtio-scsi-pci', id: 'scsi0', iothread: 'io0' },
        { driver: 'scsi-hd', id: 'sd0', drive: 'data-throttled', bus: 'scsi0.0', 'scsi-id': 1 },
        { driver: 'virtio-net-pci', id: 'nic0', netdev: 'net0', mac: '52:54:00:12:34:56' },
        { driver: 'virtio-serial-pci', id: 'vser0' },
        { driver: 'virtconsole', id: 'vcon0', chardev: 'con0', bus: 'vser0.0' },
      ],
    };
    const m = suite.adopt(
      await launch(config, {
        ...launchQemu(),
        consoles: ['ser0', 'con0'],
        runDirParent: suite.dir,
      }),
    );
    expect(m.argv).toContain('-S');
    expect((await m.qmp.execute('query-status')).status).toBe('prelaunch');
    const nodes = await m.qmp.execute('query-named-block-nodes', { flat: true });
    expect(nodes.map((n) => n['node-name']).sort()).toEqual(
      (config.blockdevs ?? []).map((n) => n['node-name']).sort(),
    );
    expect(nodes.find((n) => n['node-name'] === 'top')?.backing_file).toBe(at('cx-base.qcow2'));
    // QEMU's node graph (x-debug-query-block-graph) has exactly the model's edges.
    expect(await m.syncBlockGraph()).toBe(false);
    expect(await peripherals(m)).toEqual(
      (config.devices ?? []).map((d) => `${d.id}:${d.driver}`).sort(),
    );
    expect(await pciIds(m)).toEqual(['nic0', 'scsi0', 'vd0', 'vser0']);
    const chardevs = await m.qmp.execute('query-chardev');
    expect(chardevs.map((c) => c.label).sort()).toEqual(['con0', 'log0', 'qmpkit-qmp', 'ser0']);
    expect((await m.qmp.execute('query-iothreads')).map((t) => t.id)).toEqual(['io0']);
    expect((await m.qmp.execute('query-cpus-fast')).length).toBe(2);
    // Both consoles are connected; the guest starts only on `cont`.
    expect(m.console('con0').closed).toBe(false);
    await m.qmp.execute('cont');
    await m.console('ser0').expect(COUNTER, { timeout: 20_000 });
    expect(m.stderr().trim()).toBe('');
    await m.stop();
  });
});
