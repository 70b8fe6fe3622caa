/** `qmpkit exec`, `qmpkit events` and the shell engine's transactions against a real QEMU. */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type QmpClient } from '@qmpkit/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAPTURE_DIR, recordingIo } from '../cli.test-support.js';
import { painter } from '../io.js';
import { main } from '../main.js';
import {
  QEMU_BINARY,
  qemuSuite,
  SINGLESTEP,
  SKIP_REASON,
  skipQemu,
  startQemu,
  type TestQemu,
} from '../qemu.test-support.js';
import { ShellEngine } from '../shell/engine.js';
import { loadModel } from '../shell/repl.js';

const BIN = path.join(import.meta.dirname, '../bin.ts');

async function run(...argv: string[]) {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

// Every QEMU started here is killed after the file, even when a hook or test failed.
qemuSuite();

describe.skipIf(skipQemu)(`exec, events and transactions against real QEMU${SKIP_REASON}`, () => {
  let qemu: TestQemu;
  let aux: QmpClient;
  const nodes = async () =>
    (await aux.execute('query-named-block-nodes')).map((n) => n['node-name']);
  beforeAll(async () => {
    qemu = await startQemu();
    aux = await connect(qemu.aux);
  });
  afterAll(async () => {
    await aux?.close();
    await qemu?.stop();
  });

  it('exec prints the return as JSON; a QMP error exits 1 with class and desc; invalid arguments exit 2 unsent', async () => {
    const status = await run('exec', qemu.address, 'query-status');
    expect(status).toMatchObject({ code: 0, err: '' });
    expect(JSON.parse(status.out)).toEqual({
      status: 'prelaunch',
      ...SINGLESTEP,
      running: false,
    });

    const add = [
      'exec',
      qemu.address,
      'blockdev-add',
      'driver=null-co',
      'node-name=e0',
      'size=4096',
    ];
    expect(await run(...add)).toMatchObject({ code: 0, out: '{}\n' });
    const again = await run(...add);
    expect(again.code).toBe(1);
    expect(again.err).toBe("qmpkit: GenericError: Duplicate nodes with node-name='e0'\n");

    const json = await run(
      'exec',
      qemu.address,
      'blockdev-add',
      '{"driver":"null-co","node-name":"e1"}',
    );
    expect(json.code).toBe(0);

    const invalid = await run(
      'exec',
      qemu.address,
      'blockdev-add',
      'driver=null-co',
      'node-name=e2',
      'size=big',
    );
    expect(invalid.code).toBe(2);
    expect(invalid.err).toContain('$.size: expected an integer, got "big"');
    expect(await nodes()).toEqual(expect.arrayContaining(['e0', 'e1']));
    expect(await nodes()).not.toContain('e2');

    const unknown = await run('exec', qemu.address, 'query-verison');
    expect(unknown).toMatchObject({ code: 2 });
    expect(unknown.err).toContain("has no command 'query-verison'; did you mean query-version?");

    const hmp = await run('exec', '--hmp', qemu.address, 'info', 'status');
    expect(hmp).toMatchObject({ code: 0, out: 'VM status: paused (prelaunch)\n' });
  });

  it('exec --wait runs a job command to its end', async () => {
    const image = path.join(qemu.dir, 'created.img');
    const created = await run(
      'exec',
      '--wait',
      qemu.address,
      'blockdev-create',
      'job-id=create0',
      'options.driver=file',
      `options.filename=${image}`,
      'options.size=1048576',
    );
    expect(created.err).toBe('');
    expect(created.code).toBe(0);
    expect(JSON.parse(created.out)).toMatchObject({
      'job-id': 'create0',
      statuses: expect.arrayContaining(['concluded']),
    });
    expect(existsSync(image)).toBe(true);
    const notJob = await run('exec', '--wait', qemu.address, 'query-status');
    expect(notJob.code).toBe(2);
    expect(notJob.err).toContain('does not start a job');
  });

  it('events prints JSON lines, filtered by --name, until --count', async () => {
    const io = recordingIo();
    const done = main(['events', qemu.address, '--name', 'STOP', '--count', '1'], io);
    while (!io.err().includes('listening')) await sleep(20);
    await aux.execute('cont');
    await aux.execute('stop');
    expect(await done).toBe(0);
    const lines = io.out().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      event: 'STOP',
      timestamp: { seconds: expect.any(Number) },
    });

    const typo = await run('events', qemu.address, '--name', 'RESUM');
    expect(typo.code).toBe(2);
    expect(typo.err).toContain("has no event 'RESUM'; did you mean RESUME?");
  });

  it('events ends on Ctrl-C with status 0', async () => {
    const io = recordingIo();
    const done = main(['events', qemu.address], io);
    while (!io.err().includes('listening')) await sleep(20);
    await aux.execute('cont');
    while (!io.out().includes('RESUME')) await sleep(20);
    io.interrupt();
    expect(await done).toBe(0);
    await aux.execute('stop');
  });

  it('the shell engine collects transaction( … ) actions, refuses a bad one with its path, sends at )', async () => {
    const client = await connect(qemu.address);
    try {
      const model = await loadModel(client, qemu.address, () => {});
      const printed: string[] = [];
      const logfile = path.join(qemu.dir, 'shell.log');
      const engine = new ShellEngine(
        client,
        model,
        { mode: 'qmp', pretty: false, verbose: false, validate: true, logfile },
        (text) => printed.push(text),
        painter(false),
      );
      await engine.run('transaction(');
      expect(engine.prompt).toBe('TRANS> ');
      await engine.run('block-dirty-bitmap-add node=e0 name=b0');
      await engine.run('block-dirty-bitmap-add node=e0 name=b1 granularity=big');
      expect(printed.at(-1)).toContain(
        '$.actions[1].data.granularity: expected an integer, got "big"',
      );
      await engine.run('block-dirty-bitmap-ad node=e0 name=b2');
      expect(printed.at(-1)).toContain('did you mean block-dirty-bitmap-add?');
      await engine.run('block-dirty-bitmap-add node=e0 name=b3 )');
      expect(printed.at(-1)).toBe('{}');
      expect(engine.prompt).toBe('(QEMU) ');
      const e0 = (await aux.execute('query-named-block-nodes')).find(
        (n) => n['node-name'] === 'e0',
      );
      expect(e0?.['dirty-bitmaps']?.map((b) => b.name).sort()).toEqual(['b0', 'b3']);

      await engine.run('help blockdev-add driver=null-co');
      expect(printed.at(-1)).toContain('read-zeroes?: bool');

      // The logfile has the sent transaction and QEMU's reply, one JSON value per line.
      const log = readFileSync(logfile, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(log).toEqual([
        {
          execute: 'transaction',
          arguments: {
            actions: [
              { type: 'block-dirty-bitmap-add', data: { node: 'e0', name: 'b0' } },
              { type: 'block-dirty-bitmap-add', data: { node: 'e0', name: 'b3' } },
            ],
          },
        },
        { return: {} },
      ]);
      expect(statSync(logfile).mode & 0o777).toBe(0o600);
    } finally {
      await client.close();
    }
  });

  // The committed capture of the binary's own version (schemas/qemu-7.2 or schemas/qemu-10.0).
  const ownVersion = `${QEMU_BINARY.version?.major}.${QEMU_BINARY.version?.minor}`;
  it(`schema diff against the live QEMU: the committed ${ownVersion} capture has no changes`, async () => {
    const captureDir = path.join(CAPTURE_DIR, '..', `qemu-${ownVersion}`);
    const { code, out } = await run('schema', 'diff', captureDir, qemu.address);
    expect(code).toBe(0);
    expect(out).toContain(`(live, QEMU ${ownVersion}.`);
    expect(out).toContain('no changes');
  });

  it('the qmpkit binary: exit codes 0, 1 and 2 as a real process', () => {
    const exec = (...args: string[]) =>
      spawnSync(
        process.execPath,
        ['--conditions=@qmpkit/source', '--import', 'tsx', BIN, ...args],
        {
          encoding: 'utf8',
          cwd: path.join(import.meta.dirname, '..', '..'),
        },
      );
    const ok = exec('exec', qemu.address, 'query-version', '--no-pretty');
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ qemu: { major: QEMU_BINARY.version?.major } });
    const failed = exec('exec', qemu.address, 'blockdev-del', 'node-name=missing');
    expect(failed.status).toBe(1);
    expect(failed.stderr).toMatch(/^qmpkit: GenericError: /);
    const piped = spawnSync(
      process.execPath,
      [
        '--conditions=@qmpkit/source',
        '--import',
        'tsx',
        BIN,
        'shell',
        '--no-history',
        qemu.address,
      ],
      {
        encoding: 'utf8',
        cwd: path.join(import.meta.dirname, '..', '..'),
        input: 'query-status\nquery-stauts\n',
      },
    );
    expect(piped.status).toBe(1); // a line failed: the script's status says so
    expect(piped.stdout).toMatch(
      new RegExp(
        `^\\{"status":"\\w+",${SINGLESTEP.singlestep === false ? '"singlestep":false,' : ''}"running":(true|false)\\}\n`,
      ),
    );
    expect(piped.stdout).toContain("has no command 'query-stauts'");
    expect(piped.stdout).not.toContain('(QEMU)'); // no prompts without a terminal
    const unreachable = exec('exec', `unix:${path.join(qemu.dir, 'none.sock')}`, 'query-status');
    expect(unreachable.status).toBe(2);
    expect(unreachable.stderr).toContain('no such socket file (ENOENT)');
  });
});
