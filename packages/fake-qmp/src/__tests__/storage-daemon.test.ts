/** The storage-daemon personality: the daemon's greeting, command set, command line and process. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, isQmpCommandError } from '@qmpkit/transport';
import { InheritedFds } from '@qmpkit/transport/fd';
import { afterAll, describe, expect, it } from 'vitest';
import { createFakeStorageDaemon } from '../server/fake.js';
import {
  FakeDaemonCommandLineError,
  parseStorageDaemonCommandLine,
  runFakeStorageDaemon,
} from '../storage-daemon-process.js';

const bin = path.join(import.meta.dirname, '..', 'qsd-bin.ts');
const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-fake-qsd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('storage-daemon personality (in process)', () => {
  it.each(['7.2', '10.0'] as const)(
    'greets as the %s daemon, serves its commands only, runs a job',
    async (qemuVersion) => {
      await using fake = await createFakeStorageDaemon({ qemuVersion, storage: 'memory' });
      expect(fake.personality).toBe('storage-daemon');
      const qmp = await connect(fake.pair());
      expect(qmp.greeting.version.qemu).toEqual(fake.version.qemu);
      const names = (await qmp.execute('query-commands')).map((c) => c.name);
      expect(names).toContain('blockdev-add');
      expect(names).not.toContain('query-status');
      const error = await qmp.execute('query-status').catch((e: unknown) => e);
      expect(isQmpCommandError(error) && error.errorClass).toBe('CommandNotFound');
      expect(() => fake.handle('stop', () => ({}))).toThrow(/has no command 'stop'/);
      await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'n0', size: 1 << 20 });
      await qmp.execute('block-dirty-bitmap-add', { node: 'n0', name: 'b0' });
      await qmp.execute('nbd-server-start', {
        addr: { type: 'unix', data: { path: path.join(dir, 'nbd.sock') } },
      });
      await qmp.execute('block-export-add', { type: 'nbd', id: 'e0', 'node-name': 'n0' });
      expect(await qmp.execute('query-block-exports')).toEqual([
        { type: 'nbd', id: 'e0', 'node-name': 'n0', 'shutting-down': false },
      ]);
      // quit: the daemon has no SHUTDOWN event, only the reply and the exit.
      const events: string[] = [];
      void (async () => {
        for await (const e of qmp.events()) events.push(e.event);
      })();
      await qmp.execute('block-export-del', { id: 'e0' });
      await qmp.execute('quit').catch(() => undefined); // the close may race the reply
      expect(await fake.exited).toBe(0);
      expect(events).toEqual(['BLOCK_EXPORT_DELETED']);
      await qmp.close();
    },
  );

  it('opens --nbd-server and --export given as options', async () => {
    await using fake = await createFakeStorageDaemon({
      storage: 'memory',
      blockdev: [{ driver: 'null-co', 'node-name': 'n0' }],
      nbdServer: { addr: { type: 'unix', path: path.join(dir, 'x.sock') } },
      exports: [{ type: 'nbd', id: 'e0', 'node-name': 'n0', writable: true }],
    });
    expect(fake.model.exports.serverAddress).toEqual({
      type: 'unix',
      path: path.join(dir, 'x.sock'),
    });
    const qmp = await connect(fake.pair());
    expect(await qmp.execute('query-block-exports')).toHaveLength(1);
    await qmp.close();
  });
});

describe('storage-daemon command line', () => {
  it('reads what launchStorageDaemon passes', () => {
    const line = parseStorageDaemonCommandLine([
      '--chardev',
      'socket,id=qmp,fd=3',
      '--monitor',
      'chardev=qmp',
      '--blockdev',
      '{"driver":"null-co","node-name":"n0"}',
      '--object',
      '{"qom-type":"iothread","id":"io0"}',
      '--nbd-server',
      '{"addr":{"type":"unix","path":"/run/nbd.sock"}}',
      '--export',
      '{"type":"nbd","id":"e0","node-name":"n0"}',
      '--pidfile=/run/qsd.pid',
      '--fake-version=10.0',
    ]);
    expect(line).toMatchObject({
      qemuVersion: '10.0',
      monitors: [{ kind: 'fd', fd: 3 }],
      pidfile: '/run/qsd.pid',
    });
    expect(line.actions.map((a) => [a.option, a.args])).toEqual([
      ['blockdev', { driver: 'null-co', 'node-name': 'n0' }],
      ['object', { 'qom-type': 'iothread', id: 'io0' }],
      ['nbd-server', { addr: { type: 'unix', path: '/run/nbd.sock' } }],
      ['export', { type: 'nbd', id: 'e0', 'node-name': 'n0' }],
    ]);
    expect(
      parseStorageDaemonCommandLine([
        '--chardev',
        'socket,path=/run/qmp.sock,server=on,wait=off,id=m',
        '--monitor',
        'm',
      ]).monitors,
    ).toEqual([{ kind: 'unix', path: '/run/qmp.sock' }]);
  });

  it('reads key=value values as the daemon does, through its schema', () => {
    const line = parseStorageDaemonCommandLine([
      '--blockdev',
      'driver=qcow2,node-name=disk,file.driver=file,file.filename=/img/a,,b.qcow2,read-only=on,cache.direct=off',
      '--blockdev',
      'driver=null-co,node-name=n,size=1048576',
      '--object',
      'iothread,id=io0,poll-max-ns=0',
      '--nbd-server',
      'addr.type=inet,addr.host=127.0.0.1,addr.port=10809,max-connections=4',
      '--export',
      'nbd,id=e0,node-name=disk,writable=off,bitmaps.0=b0,bitmaps.1=b1',
    ]);
    expect(line.actions.map((a) => a.args)).toEqual([
      {
        driver: 'qcow2',
        'node-name': 'disk',
        file: { driver: 'file', filename: '/img/a,b.qcow2' },
        'read-only': true,
        cache: { direct: false },
      },
      { driver: 'null-co', 'node-name': 'n', size: 1048576 },
      { 'qom-type': 'iothread', id: 'io0', 'poll-max-ns': 0 },
      {
        addr: { type: 'inet', host: '127.0.0.1', port: '10809' },
        'max-connections': 4,
      },
      {
        type: 'nbd',
        id: 'e0',
        'node-name': 'disk',
        writable: false,
        bitmaps: ['b0', 'b1'],
      },
    ]);
  });

  // The words and the exit code of qemu-storage-daemon 7.2 and 10.0 (getopt_long, then its
  // own checks, which quote the option and its value), measured on both.
  it.each([
    [['--bogus'], "qsd: unrecognized option '--bogus'"],
    [['-S'], "qsd: invalid option -- 'S'"],
    [['--blockdev'], "qsd: option '--blockdev' requires an argument"],
    [['extra'], 'qemu-storage-daemon: extra: Unexpected argument'],
    [
      ['--blockdev', 'driver=null-co,node-name=x,size=1G,read-only=maybe'],
      "qemu-storage-daemon: --blockdev driver=null-co,node-name=x,size=1G,read-only=maybe: Parameter 'read-only' expects 'on' or 'off'",
    ],
    [
      ['--blockdev', 'driver=null-co,node-name=x,size=1x'],
      "qemu-storage-daemon: --blockdev driver=null-co,node-name=x,size=1x: Parameter 'size' expects integer",
    ],
    [
      ['--blockdev', 'driver=null-co,node-name'],
      "qemu-storage-daemon: --blockdev driver=null-co,node-name: Expected '=' after parameter 'node-name'",
    ],
  ])('refuses %j like the daemon', async (argv, text) => {
    expect(() => parseStorageDaemonCommandLine(argv, 'qsd')).toThrow(FakeDaemonCommandLineError);
    let stderr = '';
    const code = await runFakeStorageDaemon(argv, {
      stdout: () => {},
      stderr: (t) => {
        stderr += t;
      },
      argv0: 'qsd',
    });
    expect({ code, stderr }).toEqual({ code: 1, stderr: `${text}\n` });
  });

  // Refused when opened, in command-line order, with the daemon's words (measured on 7.2 and 10.0).
  it.each([
    [['--blockdev', 'node-name=x'], "--blockdev node-name=x: Parameter 'driver' is missing"],
    [
      ['--blockdev', 'driver=qcow2,node-name=x'],
      "--blockdev driver=qcow2,node-name=x: Parameter 'file' is missing",
    ],
    [
      ['--blockdev', 'driver=null-co,node-name=x,bogus=1'],
      "--blockdev driver=null-co,node-name=x,bogus=1: Parameter 'bogus' is unexpected",
    ],
    [
      ['--blockdev', 'driver=null-co,node-name=x', '--blockdev', 'driver=null-co,node-name=x'],
      "--blockdev driver=null-co,node-name=x: Duplicate nodes with node-name='x'",
    ],
    [
      ['--blockdev', 'driver=null-co,node-name=x', '--export', 'nbd,id=e,node-name=x'],
      '--export nbd,id=e,node-name=x: NBD server not running',
    ],
  ])('opens %j in order and refuses like the daemon', async (argv, text) => {
    let stderr = '';
    const code = await runFakeStorageDaemon(argv, {
      stdout: () => {},
      stderr: (t) => {
        stderr += t;
      },
    });
    expect({ code, stderr }).toEqual({ code: 1, stderr: `qemu-storage-daemon: ${text}\n` });
  });

  it('prints the version as the daemon does', async () => {
    let stdout = '';
    const code = await runFakeStorageDaemon(['--version'], {
      stdout: (t) => {
        stdout += t;
      },
      stderr: () => {},
    });
    expect(code).toBe(0);
    expect(stdout).toMatch(/^qemu-storage-daemon version \d+\.\d+\.\d+ \(.+\)\nCopyright/);
  });
});

describe('storage-daemon process', () => {
  it('serves QMP on the inherited fd, writes its pidfile and exits 0 after quit', async () => {
    const fds = new InheritedFds(['ignore', 'pipe', 'pipe']);
    const monitor = fds.socketpair();
    const pidfile = path.join(dir, 'qsd.pid');
    const child = spawn(
      process.execPath,
      [
        '--conditions=@qmpkit/source',
        '--import',
        'tsx',
        bin,
        '--chardev',
        `socket,id=qmp,fd=${monitor.fd}`,
        '--monitor',
        'chardev=qmp',
        '--blockdev',
        '{"driver":"null-co","node-name":"n0"}',
        '--pidfile',
        pidfile,
      ],
      { stdio: fds.stdio },
    );
    fds.closeParentCopies();
    child.stdout?.resume();
    child.stderr?.resume();
    const exit = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    );
    try {
      const qmp = await connect(monitor.address(child));
      expect(readFileSync(pidfile, 'utf8')).toBe(`${child.pid}\n`);
      const nodes = await qmp.execute('query-named-block-nodes');
      expect(nodes.map((n) => n['node-name'])).toEqual(['n0']);
      await qmp.execute('quit').catch(() => undefined); // the exit may beat the reply
      expect(await exit).toBe(0);
      expect(existsSync(pidfile)).toBe(false);
      await qmp.close();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
