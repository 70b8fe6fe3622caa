/**
 * `qmpkit backup full|incremental --pull` against the QEMU under test (`--qemu`, so it runs on
 * 7.2 and 10.0) under a `qmpkit vm start` supervisor: the supervisor exports the disks over
 * NBD and reads them; a full and two empty incrementals (the second would meet any socket,
 * export or node the first left; it exports on loopback TCP under TLS, `--nbd-port` and
 * `--nbd-tls-dir`); `--nbd-tls-hostname` with a name the server's certificate does not carry
 * (refused, typed) and with one it carries (read); the refusals of TCP without TLS and of `--nbd-*` without its base; the
 * restore equal to the disks (`qemu-img compare`).
 * One VM for the file.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { MiB, toJSON } from '@qmpkit/devices';
import { runQemuImg } from '@qmpkit/machine';
import { freeLoopbackPort } from '@qmpkit/testguest/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTlsDirs } from '../../../machine/src/tls.test-support.js';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import { qemuSuite, SKIP_REASON, skipQemu, startVm, testVmConfig } from '../qemu.test-support.js';
import type { BackupSummary } from '../vm/protocol.js';

const ENV = { PATH: process.env.PATH };

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIo(ENV);
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

const suite = qemuSuite({ prefix: 'qmpkit-backup-pull-cli-' });

describe.skipIf(skipQemu)(`qmpkit backup --pull (real QEMU, tcg)${SKIP_REASON}`, () => {
  const work = suite.dir;
  const dir = path.join(work, 'vm');
  const backups = path.join(work, 'backups');
  const disks = ['disk0', 'disk1'];

  beforeAll(async () => {
    for (const [i, d] of disks.entries()) {
      const image = path.join(work, `${d}.qcow2`);
      await runQemuImg(['create', '-q', '-f', 'qcow2', image, String(4 * MiB)]);
      await promisify(execFile)('qemu-io', [
        '-f',
        'qcow2',
        image,
        '-c',
        `write -P 0x${(0x61 + i).toString(16)} ${i * MiB} 1M`,
      ]);
    }
    const vm = testVmConfig({ boot: null, disks });
    const config = path.join(work, 'vm.json');
    writeFileSync(config, toJSON(vm));
    await startVm(suite, dir, config);
  });

  afterAll(async () => {
    await run('vm', 'stop', '--dir', dir);
  });

  it('takes a full and an incremental in pull mode and restores the disks', async () => {
    const full = await run('backup', 'full', '--pull', '--dir', dir, '--to', backups, '--json');
    expect(full.err).toMatch(/^full backup \(pull\): /m); // plain progress lines off a terminal
    expect(full.code).toBe(0);
    const f = JSON.parse(full.out) as BackupSummary;
    expect(f).toMatchObject({ kind: 'full', point: '0001' });
    // A pull full reads the data extents only: the 1 MiB each disk holds.
    expect(f.disks.map((d) => [d.device, d.copied])).toEqual([
      ['disk0', MiB],
      ['disk1', MiB],
    ]);

    const inc = await run('backup', 'incremental', '--pull', '--dir', dir, '--to', backups);
    expect(inc.code).toBe(0);
    expect(inc.out).toMatch(/^incremental backup 0002 in \d+ ms: disk0 0 B, disk1 0 B copied\n$/);

    // TCP without TLS is refused unless asked for; `--nbd-*` flags need `--nbd-port`.
    const port = await freeLoopbackPort();
    const plain = await run(
      'backup',
      'incremental',
      '--pull',
      '--nbd-port',
      String(port),
      '--dir',
      dir,
      '--to',
      backups,
    );
    expect(plain.code).not.toBe(0);
    expect(plain.err).toMatch(/without TLS can be read by anyone/);
    const orphan = await run(
      'backup',
      'incremental',
      '--pull',
      '--nbd-tls-dir',
      work,
      '--dir',
      dir,
      '--to',
      backups,
    );
    expect(orphan.code).toBe(2);
    expect(orphan.err).toMatch(/need --nbd-port/);

    // A second pull right after, on TCP with TLS: nothing of the first (socket, export,
    // nodes) is in the way.
    const { good } = await makeTlsDirs(path.join(work, 'certs'));
    const again = await run(
      'backup',
      'incremental',
      '--pull',
      '--nbd-port',
      String(port),
      '--nbd-tls-dir',
      good,
      '--dir',
      dir,
      '--to',
      backups,
    );
    expect(again.err).not.toMatch(/qmpkit:/);
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/^incremental backup 0003 /);

    // --nbd-tls-hostname: the name the server's certificate must carry instead of the
    // address. One it does not carry fails typed (nothing kept); `localhost`, which it
    // carries, reads the next point.
    const tlsPull = (hostname: string) =>
      run(
        'backup',
        'incremental',
        '--pull',
        '--nbd-port',
        String(port),
        '--nbd-tls-dir',
        good,
        '--nbd-tls-hostname',
        hostname,
        '--dir',
        dir,
        '--to',
        backups,
      );
    const otherName = await tlsPull('other.example');
    expect(otherName.code).toBe(1);
    expect(otherName.err).toMatch(
      /certificate was refused \(ERR_TLS_CERT_ALTNAME_INVALID\): .*name other\.example/,
    );
    const named = await tlsPull('localhost');
    expect(named.err).not.toMatch(/qmpkit:/);
    expect(named.code).toBe(0);
    expect(named.out).toMatch(/^incremental backup 0004 /);

    const stop = await run('vm', 'stop', '--dir', dir);
    expect(stop.code).toBe(0);
    const to = path.join(work, 'restored');
    const restored = await run('backup', 'restore', '--from', backups, '--to', to);
    expect(restored.code).toBe(0);
    for (const d of disks)
      await runQemuImg([
        'compare',
        '-f',
        'qcow2',
        '-F',
        'qcow2',
        path.join(to, `${d}.qcow2`),
        path.join(work, `${d}.qcow2`),
      ]);
  });
});
