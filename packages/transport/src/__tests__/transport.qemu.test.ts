/**
 * The transport against a real QEMU — the binary under test (`QMPKIT_TEST_QEMU`: the system's
 * 7.2, or 10.0) — spawned by these tests with argument arrays; QMP runs over a socketpair
 * inherited at spawn unless a test says otherwise. Tests of the bindings' tables (strict
 * validation of replies, "every command the bindings know") use the bindings of the version
 * under test (`TABLES`: 7.2's or 10.0's).
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { tables as tables72 } from '@qmpkit/qapi/qemu-7.2';
import { tables as tables100 } from '@qmpkit/qapi/qemu-10.0';
import { freeLoopbackPort, QEMU, spawnQemu as spawnTracked } from '@qmpkit/testguest/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import type { QmpClient, ValidationReport } from '../client/client.js';
import { connect } from '../client/client.js';
import {
  isQmpCommandError,
  isQmpHmpError,
  QmpCommandError,
  QmpDisconnectedError,
  type QmpHmpError,
  QmpJobError,
  QmpTimeoutError,
  QmpValidationError,
} from '../errors.js';
import {
  killAllStarted,
  SKIP_REASON,
  type SpawnedQemu,
  skipQemu,
  spawnQemu,
  tempDir,
  WireTap,
} from './helpers.js';

afterAll(killAllStarted);

/** The version the binary under test greets with. */
const VERSION = { major: QEMU.version?.major, minor: QEMU.version?.minor };
/** The bindings' tables of the version under test. */
const TABLES = VERSION.major === 10 ? tables100 : tables72;
const VERSION_NAME = `${VERSION.major}.${VERSION.minor}`;

/**
 * Call `i` of a mix whose replies can each be checked against their call: four kinds in
 * turn, and every failing call (`qom-get` of a missing path) gets an error naming its own
 * path. A reply handed to the wrong call fails `expectMixed`. Settle with `outcome`.
 */
function mixedCall(qmp: QmpClient, i: number): Promise<unknown> {
  switch (i % 4) {
    case 0:
      return qmp.execute('query-status');
    case 1:
      return qmp.execute('query-name');
    case 2:
      return qmp.execute('qom-get', { path: `/nope-${i}`, property: 'type' });
    default:
      return qmp.execute('query-version');
  }
}

/** The value or the error of a call, recording when it settled (same hops either way). */
function outcome(call: Promise<unknown>, settled?: () => void): Promise<unknown> {
  return call.then(
    (value) => {
      settled?.();
      return value;
    },
    (error: unknown) => {
      settled?.();
      return error;
    },
  );
}

function expectMixed(result: unknown, i: number): void {
  switch (i % 4) {
    case 0:
      expect(result, `call ${i}`).toMatchObject({ status: 'running', running: true });
      break;
    case 1:
      expect(result, `call ${i}`).toEqual({});
      break;
    case 2:
      expect(result, `call ${i}`).toBeInstanceOf(QmpCommandError);
      expect((result as QmpCommandError).desc, `call ${i}`).toContain(`'/nope-${i}'`);
      expect((result as QmpCommandError).arguments, `call ${i}`).toEqual({
        path: `/nope-${i}`,
        property: 'type',
      });
      break;
    default:
      expect(result, `call ${i}`).toMatchObject({ qemu: VERSION });
  }
}

describe.skipIf(skipQemu)(
  `QMP over a socketpair with QEMU ${QEMU.version?.major}.${QEMU.version?.minor} -machine none${SKIP_REASON}`,
  () => {
    let vm: SpawnedQemu;
    beforeAll(async () => {
      vm = await spawnQemu();
    });
    afterAll(async () => {
      await vm?.qmp.close();
      await vm?.kill();
    });

    it(`greets with QEMU ${VERSION.major}.${VERSION.minor} and negotiates oob`, () => {
      expect(vm.qmp.greeting.version.qemu).toMatchObject(VERSION);
      expect(vm.qmp.capabilities).toEqual(['oob']);
      expect(vm.qmp.address.kind).toBe('duplex');
    });

    it('answers 1,000 pipelined commands, in order of ids, each with its own reply', async () => {
      const order: number[] = [];
      const calls = Array.from({ length: 1000 }, (_, i) =>
        outcome(mixedCall(vm.qmp, i), () => order.push(i)),
      );
      expect(vm.qmp.pendingCount).toBe(1000);
      const results = await Promise.all(calls);
      results.forEach(expectMixed);
      expect(order).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      expect(vm.qmp.pendingCount).toBe(0);
    });

    it('reports CommandNotFound as QmpCommandError with QEMU class and text', async () => {
      const error = await vm.qmp.executeUnchecked('no-such-command').catch((e: unknown) => e);
      expect(isQmpCommandError(error)).toBe(true);
      expect(error).toMatchObject({
        errorClass: 'CommandNotFound',
        desc: 'The command no-such-command has not been found',
        command: 'no-such-command',
      });
    });

    it('reports bad arguments as GenericError with QEMU text', async () => {
      const error = await vm.qmp
        .executeUnchecked('query-status', { bogus: 1 })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(QmpCommandError);
      expect(error).toMatchObject({
        errorClass: 'GenericError',
        desc: "Parameter 'bogus' is unexpected",
        arguments: { bogus: 1 },
      });
      const missing = await vm.qmp
        .executeUnchecked('human-monitor-command', {})
        .catch((e: unknown) => e);
      expect(missing).toMatchObject({
        errorClass: 'GenericError',
        desc: "Parameter 'command-line' is missing",
      });
    });

    it('decodes query-qmp-schema (one ~200 KB line) and caches it per connection', async () => {
      const schema = await vm.qmp.schema();
      expect(schema.entries.length).toBeGreaterThan(1000);
      expect(schema.commandNames()).toContain('query-status');
      expect(await vm.qmp.schema()).toBe(schema);
      expect(schema.allowsOob('migrate-recover')).toBe(true);
    });

    it('sends exec-oob commands', async () => {
      await expect(vm.qmp.executeOob('query-yank')).resolves.toEqual(expect.any(Array));
      const error = await vm.qmp
        .executeOob('migrate-recover', { uri: 'tcp:127.0.0.1:1' })
        .catch((e: unknown) => e);
      expect(error).toMatchObject({
        errorClass: 'GenericError',
        desc: 'Migrate recover can only be run when postcopy is paused.',
      });
    });

    it('keeps exec-oob responsive behind 500 queued in-band commands (window of 8)', async () => {
      const order: string[] = [];
      const inBand = Array.from({ length: 500 }, () =>
        vm.qmp.execute('query-status').then(() => order.push('in-band')),
      );
      const oob = vm.qmp.executeOob('query-yank').then(() => order.push('oob'));
      await Promise.all([...inBand, oob]);
      expect(order.indexOf('oob')).toBeLessThan(50);
    });

    it('runs HMP commands', async () => {
      expect(await vm.qmp.hmp('info status')).toBe('VM status: running\r\n');
      expect(await vm.qmp.hmp('info status', { errors: 'throw' })).toBe('VM status: running\r\n');
    });

    it('HMP failures come back as text in a successful reply; errors: throw makes them QmpHmpError', async () => {
      const text = await vm.qmp.hmp('device_del nosuch');
      expect(text).toMatch(/^Error: /);
      const error = await vm.qmp
        .hmp('device_del nosuch', { errors: 'throw' })
        .catch((e: unknown) => e);
      expect(isQmpHmpError(error)).toBe(true);
      expect(error).toMatchObject({ commandLine: 'device_del nosuch', output: text });
      expect((error as QmpHmpError).desc).toMatch(/nosuch/);
    });

    it('answers typed capability questions from the real schema', async () => {
      const q = vm.qmp;
      expect(await q.has('snapshot-save')).toBe(true);
      expect(await q.has('JOB_STATUS_CHANGE')).toBe(true);
      expect(await q.has('blockdev-add', { member: 'discard' })).toBe(true);
      expect(await q.has('blockdev-add', { member: 'driver', value: 'qcow2' })).toBe(true);
      expect(await q.has('blockdev-add', { when: { driver: 'qcow2' }, member: 'data-file' })).toBe(
        true,
      );
      // The typed API would not compile this (raw has no data-file); the index answers untyped.
      const index = await q.schema();
      expect(index.query('blockdev-add', { when: { driver: 'raw' }, member: 'data-file' })).toBe(
        false,
      );
      const atLeast = (major: number, minor: number) =>
        (VERSION.major ?? 0) > major || (VERSION.major === major && (VERSION.minor ?? 0) >= minor);
      // Asked of the live schema: 8.1 added it.
      expect(index.query('blockdev-add', { member: 'discard-no-unref' })).toBe(atLeast(8, 1));
      expect(await q.has('blockdev-add', { when: { driver: 'qcow2' } })).toBe(true);
      expect(await q.has('block-commit', { member: 'base', feature: 'deprecated' })).toBe(true);
      expect(await q.has('block-commit', { member: 'base-node', feature: 'deprecated' })).toBe(
        false,
      );
      expect(await q.has('qmp_capabilities', { member: 'enable', value: 'oob' })).toBe(true);
      expect(await q.has('JOB_STATUS_CHANGE', { member: 'status', value: 'concluded' })).toBe(true);
      expect(await q.has('x-query-irq', { feature: 'unstable' })).toBe(true);
      expect(
        await q.has('migrate-set-capabilities', {
          member: 'capabilities',
          inner: { member: 'capability', value: 'background-snapshot' },
        }),
      ).toBe(true);
    });

    it(`every command the ${VERSION_NAME} bindings know is in the schema`, async () => {
      const index = await vm.qmp.schema();
      const missing = Object.keys(TABLES.commands).filter((c) => !index.query(c));
      expect(missing).toEqual([]);
    });

    it('keeps the session consistent after a timeout: the command is sent, its late reply dropped, 100 more correct', async () => {
      const tap = new WireTap();
      const warnings: string[] = [];
      const own = await spawnQemu({ tap, connect: { logger: { warn: (m) => warnings.push(m) } } });
      try {
        const q = own.qmp;
        // QEMU's output waits in the relay, so the reply is late by construction.
        tap.hold();
        const sentBefore = tap.sent.length;
        const receivedBefore = tap.received.length;
        const error = await q
          .execute('query-status', undefined, { timeout: 20 })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(QmpTimeoutError);
        expect(q.pendingCount).toBe(0);
        // It was written to QEMU, not just queued in the client...
        const sent = tap.sent.slice(sentBefore);
        expect(sent).toEqual([{ execute: 'query-status', id: expect.any(Number) }]);
        // ...QEMU answered it, and the answer reaches the client only now, after the timeout.
        const late = await tap.receivedLine((m) => m.id === sent[0]?.id, receivedBefore);
        expect(late).toMatchObject({ return: { status: 'running' } });
        tap.release();
        const results = await Promise.all(
          Array.from({ length: 100 }, (_, i) => outcome(mixedCall(q, i))),
        );
        results.forEach(expectMixed);
        expect(q.pendingCount).toBe(0);
        expect(q.state).toBe('ready');
        // Dropped silently as a tombstone, not as a duplicate or unknown id.
        expect(warnings).toEqual([]);
      } finally {
        await own.qmp.close();
        await own.kill();
      }
    });

    // Strict mode checks replies too, against the tables of the version under test (10.0's
    // query-status has no `singlestep`, which 7.2's requires: the wrong tables fail here).
    it(`validates arguments before sending in strict mode, with paths (${VERSION_NAME} tables)`, async () => {
      const reports: ValidationReport[] = [];
      const bindings = { tables: TABLES };
      const strict = await spawnQemu({ connect: { validate: 'strict', bindings } });
      const warn = await spawnQemu({
        connect: { validate: 'warn', bindings, onValidation: (r) => reports.push(r) },
      });
      try {
        const error = await strict.qmp
          .executeUnchecked('blockdev-add', { driver: 'qcow2', 'node-name': 5, file: 'x' })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(QmpValidationError);
        expect((error as QmpValidationError).problems.map((p) => p.path)).toEqual(['$.node-name']);
        await expect(strict.qmp.execute('query-status')).resolves.toMatchObject({
          running: true,
        });
        // warn mode sends anyway and reports; QEMU then refuses with its own error
        const qemuError = await warn.qmp
          .executeUnchecked('query-status', { bogus: true })
          .catch((e: unknown) => e);
        expect(qemuError).toBeInstanceOf(QmpCommandError);
        expect(reports).toMatchObject([{ direction: 'arguments', name: 'query-status' }]);
      } finally {
        await Promise.all([strict.kill(), warn.kill()]);
      }
    });

    it('runs a job to the end, reading the error before dismissing', async () => {
      const tmp = tempDir();
      try {
        const file = path.join(tmp.dir, 'new.img');
        const ok = await vm.qmp.runJob('blockdev-create', {
          options: { driver: 'file', filename: file, size: 1 << 20 },
        });
        expect(ok.statuses).toEqual(expect.arrayContaining(['created', 'running', 'concluded']));
        expect(existsSync(file)).toBe(true);
        const failure = await vm.qmp
          .runJob('blockdev-create', {
            'job-id': 'bad-create',
            options: { driver: 'file', filename: '/nonexistent/dir/x.img', size: 1 << 20 },
          })
          .catch((e: unknown) => e);
        expect(failure).toBeInstanceOf(QmpJobError);
        expect((failure as QmpJobError).desc).toMatch(
          /Could not create .*No such file or directory/,
        );
        expect((failure as QmpJobError).jobId).toBe('bad-create');
        // both jobs were dismissed
        expect(await vm.qmp.execute('query-jobs')).toEqual([]);
      } finally {
        tmp.remove();
      }
    });
  },
);

describe.skipIf(skipQemu)(`correlate: order (in-band commands without id)${SKIP_REASON}`, () => {
  it('pipelines, times out, drops late replies and mixes exec-oob with ids', async () => {
    const tap = new WireTap();
    const warnings: string[] = [];
    const vm = await spawnQemu({
      tap,
      connect: { correlate: 'order', logger: { warn: (m) => warnings.push(m) } },
    });
    try {
      const q = vm.qmp;
      const order: number[] = [];
      const calls = Array.from({ length: 1000 }, (_, i) =>
        outcome(mixedCall(q, i), () => order.push(i)),
      );
      const results = await Promise.all(calls);
      results.forEach(expectMixed);
      expect(order).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      expect(tap.sent.filter((m) => 'execute' in m && m.id !== undefined)).toEqual([]);
      const finished: string[] = [];
      const slow = Array.from({ length: 8 }, () =>
        q.execute('query-qmp-schema').then((r) => {
          finished.push('schema');
          return r;
        }),
      );
      // exec-oob overtakes the queued in-band commands; its reply is matched by id.
      const oob = q.executeOob('query-yank').then((r) => {
        finished.push('oob');
        return r;
      });
      await expect(oob).resolves.toEqual(expect.any(Array));
      const schemas = await Promise.all(slow);
      expect(schemas.every((s) => Array.isArray(s) && s.length > 1000)).toBe(true);
      expect(finished.indexOf('oob')).toBeLessThan(finished.lastIndexOf('schema'));

      // A timeout: QEMU's output waits in the relay, so the reply is late by construction.
      tap.hold();
      const sentBefore = tap.sent.length;
      const receivedBefore = tap.received.length;
      const timedOut = await q
        .execute('query-name', undefined, { timeout: 20 })
        .catch((e: unknown) => e);
      expect(timedOut).toBeInstanceOf(QmpTimeoutError);
      // Written (without id) to QEMU, which answered; the answer arrives only now.
      expect(tap.sent.slice(sentBefore)).toEqual([{ execute: 'query-name' }]);
      const late = await tap.receivedLine((m) => 'return' in m || 'error' in m, receivedBefore);
      expect(late).toEqual({ return: {} });
      tap.release();
      // Without ids, only the order ties replies to calls: the late reply must be consumed
      // by the timed-out call, or every reply below lands one call off.
      const after = await Promise.all(
        Array.from({ length: 100 }, (_, i) => outcome(mixedCall(q, i))),
      );
      after.forEach(expectMixed);
      expect(q.pendingCount).toBe(0);
      expect(q.state).toBe('ready');
      expect(warnings).toEqual([]);
    } finally {
      await vm.kill();
    }
  });
});

describe.skipIf(skipQemu)(`events from a runnable VM${SKIP_REASON}`, () => {
  it('emits RESUME/STOP for cont/stop, timestamped, to listeners, iterators and expectations', async () => {
    const vm = await spawnQemu({ machine: 'pc' });
    try {
      const seen: string[] = [];
      const off = vm.qmp.on('STOP', (e) => seen.push(`on:${e.event}`));
      const stream = vm.qmp.events({ names: ['STOP', 'RESUME'] });
      const resumed = vm.qmp.expectEvent('RESUME');
      await vm.qmp.execute('cont');
      const resume = await resumed.wait({ timeout: 5000 });
      expect(resume.event).toBe('RESUME');
      expect(resume.timestamp.seconds).toBeGreaterThan(1_600_000_000);
      const stopped = vm.qmp.expectEvent('STOP');
      await vm.qmp.execute('stop');
      await stopped.wait({ timeout: 5000 });
      const names: string[] = [];
      for await (const e of stream) {
        names.push(e.event);
        if (names.length === 2) break;
      }
      expect(names).toEqual(['RESUME', 'STOP']);
      expect(seen).toEqual(['on:STOP']);
      off();
      expect(await vm.qmp.execute('query-status')).toMatchObject({ status: 'paused' });
      const kvm = await vm.qmp.execute('query-kvm');
      console.info(`[qmpkit] accelerator for the runnable VM: ${kvm.enabled ? 'kvm' : 'tcg'}`);
    } finally {
      await vm.kill();
    }
  });
});

describe.skipIf(skipQemu)(`snapshot-save as a job${SKIP_REASON}`, () => {
  it('follows JOB_STATUS_CHANGE (sent before the reply), reads errors before dismissing', async () => {
    const tmp = tempDir();
    const disk = path.join(tmp.dir, 'disk.qcow2');
    const made = spawnSync(QEMU.img, ['create', '-q', '-f', 'qcow2', disk, '16M']);
    expect(made.status).toBe(0);
    const vm = await spawnQemu({
      machine: 'pc',
      extraArgs: [
        '-blockdev',
        JSON.stringify({ driver: 'file', filename: disk, 'node-name': 'disk0-file' }),
        '-blockdev',
        JSON.stringify({ driver: 'qcow2', file: 'disk0-file', 'node-name': 'disk0' }),
      ],
    });
    try {
      const args = { tag: 'snap1', vmstate: 'disk0', devices: ['disk0'] };
      const seen: string[] = [];
      const saved = await vm.qmp.runJob('snapshot-save', args, { onStatus: (s) => seen.push(s) });
      expect(saved.statuses.slice(0, 2)).toEqual(['created', 'running']);
      expect(saved.statuses).toContain('concluded');
      expect(saved.returned).toEqual({});
      const again = await vm.qmp
        .runJob('snapshot-save', { ...args, 'job-id': 'again' })
        .catch((e: unknown) => e);
      expect(again).toBeInstanceOf(QmpJobError);
      expect((again as QmpJobError).desc).toBe(
        "Snapshot 'snap1' already exists in one or more devices",
      );
      expect(await vm.qmp.execute('query-jobs')).toEqual([]);
      const loaded = await vm.qmp.runJob('snapshot-load', args);
      expect(loaded.statuses).toContain('concluded');
      const missing = await vm.qmp
        .runJob('snapshot-load', { ...args, tag: 'nope' })
        .catch((e: unknown) => e);
      expect((missing as QmpJobError).desc).toBe(
        "Snapshot 'nope' does not exist in one or more devices",
      );
    } finally {
      await vm.kill();
      tmp.remove();
    }
  });
});

describe.skipIf(skipQemu)(`disconnects${SKIP_REASON}`, () => {
  it('SIGKILL mid-command: every pending call rejects within 1 s, iterators end', async () => {
    const vm = await spawnQemu();
    const stream = vm.qmp.events();
    const ended = (async () => {
      for await (const _ of stream) {
        // no events expected
      }
      return 'ended';
    })();
    const calls = Array.from({ length: 50 }, () =>
      vm.qmp.execute('query-qmp-schema').then(
        () => 'ok',
        (e: unknown) => e,
      ),
    );
    await new Promise((r) => setTimeout(r, 30));
    const t0 = performance.now();
    vm.child.kill('SIGKILL');
    const results = await Promise.all(calls);
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeLessThan(1000);
    const rejected = results.filter((r) => r instanceof QmpDisconnectedError);
    expect(rejected.length).toBeGreaterThan(0);
    expect(rejected.length + results.filter((r) => r === 'ok').length).toBe(50);
    expect((rejected[0] as QmpDisconnectedError).command).toBe('query-qmp-schema');
    expect(vm.qmp.pendingCount).toBe(0);
    const reason = await vm.qmp.closed;
    expect(reason.byClient).toBe(false);
    expect(await ended).toBe('ended');
    await expect(vm.qmp.execute('query-status')).rejects.toBeInstanceOf(QmpDisconnectedError);
  });
});

describe.skipIf(skipQemu)(`reconnect to a restarted QEMU${SKIP_REASON}`, () => {
  it('re-dials the same unix socket with backoff after QEMU dies and comes back', async () => {
    const tmp = tempDir();
    const socketPath = path.join(tmp.dir, 'qmp.sock');
    // Tracked: the file's afterAll (and the exit hook) kill it even when this test fails or
    // times out. No probe connection here: QEMU serves one QMP client at a time, and a probe
    // racing the reconnecting client for the monitor is what hung this test (issue #12).
    const start = () =>
      spawnTracked(
        [
          '-machine',
          'none',
          '-nodefaults',
          '-display',
          'none',
          '-qmp',
          `unix:${socketPath},server=on,wait=off`,
        ],
        { stdio: 'ignore' },
      );
    const stop = async (child: ChildProcess) => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    };
    let first = start();
    const reconnects: number[] = [];
    const qmp = await connect(`unix:${socketPath}`, {
      waitForListener: true,
      reconnect: { initialDelay: 20, maxDelay: 100, onReconnect: (n) => reconnects.push(n) },
      logger: { warn: () => {} },
    });
    try {
      const events = qmp.events({ names: ['STOP'] });
      expect(await qmp.execute('query-status')).toMatchObject({ running: true });
      const pending = qmp.execute('query-qmp-schema').catch((e: unknown) => e);
      await stop(first);
      expect(await pending).toBeInstanceOf(QmpDisconnectedError);
      first = start();
      // Issued while reconnecting: waits for the new session.
      expect(await qmp.execute('query-status')).toMatchObject({ running: true });
      expect(reconnects.length).toBe(1);
      expect(qmp.state).toBe('ready');
      expect(events.buffered).toBe(0); // the iterator survived the reconnect
      await events.return();
    } finally {
      await qmp.close();
      await stop(first);
      tmp.remove();
    }
  });
});

describe.skipIf(skipQemu)(`unix, tcp and WebSocket transports${SKIP_REASON}`, () => {
  const tmp = tempDir();
  let child: ChildProcess | undefined;
  let port = 0;
  const socketPath = path.join(tmp.dir, 'qmp.sock');

  beforeAll(async () => {
    port = await freeLoopbackPort();
    child = spawnTracked(
      [
        '-machine',
        'none',
        '-nodefaults',
        '-display',
        'none',
        '-chardev',
        `socket,id=u,path=${socketPath},server=on,wait=off`,
        '-mon',
        'chardev=u,mode=control',
        '-chardev',
        `socket,id=t,host=127.0.0.1,port=${port},server=on,wait=off`,
        '-mon',
        'chardev=t,mode=control',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    // The socket file appears at bind(), before QEMU listens: a connect in between is
    // refused. Wait until both monitors accept a connection (then close it; QEMU serves
    // the next client).
    await (await connect(`unix:${socketPath}`, { waitForListener: true })).close();
    await (await connect(`tcp:127.0.0.1:${port}`, { waitForListener: true })).close();
  });
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    tmp.remove();
  });

  it('connects over unix:', async () => {
    const qmp = await connect(`unix:${socketPath}`);
    expect(await qmp.execute('query-status')).toMatchObject({ running: true });
    await qmp.close();
  });

  it('connects over tcp:', async () => {
    const qmp = await connect(`tcp:127.0.0.1:${port}`);
    expect(await qmp.execute('query-status')).toMatchObject({ running: true });
    await qmp.close();
  });

  it('connects over WebSocket through a loopback ws↔unix bridge', async () => {
    const bridge = await wsBridge(socketPath);
    try {
      const qmp = await connect(`ws://127.0.0.1:${bridge.port}/qmp`, { WebSocket });
      expect(qmp.capabilities).toEqual(['oob']);
      const results = await Promise.all(
        Array.from({ length: 200 }, () => qmp.execute('query-status')),
      );
      expect(results.every((r) => r.running)).toBe(true);
      const schema = await qmp.schema();
      expect(schema.entries.length).toBeGreaterThan(1000);
      const error = await qmp.executeUnchecked('nope').catch((e: unknown) => e);
      expect(error).toMatchObject({ errorClass: 'CommandNotFound' });
      await qmp.close();
    } finally {
      await bridge.close();
    }
  });

  it('connects over WebSocket without options.WebSocket (global WebSocket, else `ws`)', async () => {
    const bridge = await wsBridge(socketPath);
    try {
      const qmp = await connect(`ws://127.0.0.1:${bridge.port}/qmp`);
      expect(qmp.capabilities).toEqual(['oob']);
      expect(await qmp.execute('query-status')).toMatchObject({ running: true });
      await qmp.close();
    } finally {
      await bridge.close();
    }
  });

  it('connects over WebSocket with stream framing (byte slices, websockify style)', async () => {
    const bridge = await wsBridge(socketPath, 'stream');
    try {
      const qmp = await connect(`ws://127.0.0.1:${bridge.port}/`, {
        WebSocket,
        wsFraming: 'stream',
      });
      expect(await qmp.execute('query-status')).toMatchObject({ running: true });
      expect((await qmp.schema()).entries.length).toBeGreaterThan(1000);
      await qmp.close();
    } finally {
      await bridge.close();
    }
  });
});

/**
 * A tiny ws↔unix bridge: `message` framing sends one QMP line per WebSocket message;
 * `stream` framing forwards raw socket chunks as binary messages.
 */
async function wsBridge(unixPath: string, framing: 'message' | 'stream' = 'message') {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', r));
  wss.on('connection', (ws) => {
    const upstream = net.createConnection({ path: unixPath });
    let partial = '';
    upstream.on('data', (chunk: Buffer) => {
      if (framing === 'stream') {
        ws.send(chunk);
        return;
      }
      partial += chunk.toString('utf8');
      let nl = partial.indexOf('\n');
      while (nl >= 0) {
        ws.send(partial.slice(0, nl + 1));
        partial = partial.slice(nl + 1);
        nl = partial.indexOf('\n');
      }
    });
    upstream.on('close', () => ws.close());
    upstream.on('error', () => ws.close());
    ws.on('message', (data: Buffer) => {
      upstream.write(framing === 'message' ? Buffer.concat([data, Buffer.from('\n')]) : data);
    });
    ws.on('close', () => upstream.destroy());
  });
  const { port } = wss.address() as net.AddressInfo;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}
