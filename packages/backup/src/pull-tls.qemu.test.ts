/**
 * Pull-mode backup exported on loopback TCP under TLS, against the QEMU under test (7.2 and
 * 10.0), in one booted VM with one disk: a full (read by `qemu-img convert` over TLS) and two
 * incrementals (read by our client after `NBD_OPT_STARTTLS`), and one with `verifyPeer: false`
 * read without a client certificate and checked against the name `localhost`, each restored
 * and compared by SHA-256; a plaintext client against the TLS export is refused, and so are
 * readers whose client certificate QEMU refuses (another CA's, none) — typed as that, not as
 * a protocol error; bad inputs leave the VM as
 * it was (nodes, exports, jobs, QOM objects): a TLS directory missing a file, a reader that
 * trusts the wrong CA, a name the server's certificate does not carry, a port in use, a non-loopback host, TCP without TLS (refused; when
 * asked for, a reader that wants TLS is refused by QEMU's answer to STARTTLS); a backup whose
 * process stopped while exported leaves a TLS object and a TCP server that the next backup
 * of the directory removes.
 *
 * Writes go through HMP `qemu-io`, as in pull.qemu.test.ts; nothing depends on timing.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { MiB } from '@qmpkit/devices';
import { launch, type Machine } from '@qmpkit/machine';
import { freeLoopbackPort, launchQemu, qemuSuite } from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { makeTlsDirs } from '../../machine/src/tls.test-support.js';
import { NbdClient } from './nbd/client.js';
import { pullBackupFull, pullBackupIncremental } from './pull.js';
import { DISK_SIZE, diskVmConfig } from './qemu.test-support.js';
import { restore } from './restore.js';
import { readManifest } from './store.js';

const suite = qemuSuite({ kill: 'all', prefix: 'qmpkit-pull-tls-test-' });
const SIZE = DISK_SIZE;
const KiB = 1024;

interface Shared {
  readonly m: Machine;
  readonly good: string;
  readonly wrongCa: string;
  /** The disk's content as the test wrote it. */
  readonly bytes: Buffer;
}

let shared: Promise<Shared> | undefined;
/** The file's one VM and certificates, made by the first test that needs them. */
function setup(): Promise<Shared> {
  shared ??= (async () => {
    const config = await diskVmConfig(suite.dir, ['disk0']);
    const m = suite.adopt(await launch(config, { ...launchQemu(), runDirParent: suite.dir }));
    const { good, wrongCa } = await makeTlsDirs(path.join(suite.dir, 'certs'));
    return { m, good, wrongCa, bytes: Buffer.alloc(SIZE) };
  })();
  return shared;
}

async function write(s: Shared, pattern: number, offset: number, length: number): Promise<void> {
  const out = await s.m.qmp.hmp(
    `qemu-io -d disk0 "write -P 0x${pattern.toString(16)} ${offset} ${length}"`,
  );
  expect(out).not.toMatch(/error|fail|cannot|not found/i);
  s.bytes.fill(pattern, offset, offset + length);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

let restores = 0;
async function restoredSha(dir: string, point: string): Promise<string> {
  const to = path.join(suite.dir, `restore-${++restores}`);
  const result = await restore({ from: dir, to, point, format: 'raw' });
  return sha256(await readFile(result.disks[0]?.file ?? ''));
}

/** What a backup must leave as it found it: nodes, exports, jobs, QOM objects. */
async function state(m: Machine) {
  const nodes = await m.qmp.execute('query-named-block-nodes', { flat: true });
  return {
    nodes: nodes.map((n) => n['node-name'] ?? '').sort(),
    exports: (await m.qmp.execute('query-block-exports')).map((e) => e.id).sort(),
    jobs: (await m.qmp.execute('query-jobs')).map((j) => j.id).sort(),
    objects: (await m.qmp.execute('qom-list', { path: '/objects' })).map((o) => o.name).sort(),
  };
}

function settle<T>(p: Promise<T>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

/**
 * Two readers QEMU's export must refuse after the handshake: one whose client certificate is
 * signed by another CA (it trusts the right CA for the server's), and one with none.
 */
async function badClients(s: Shared, port: number): Promise<unknown[]> {
  const ca = await readFile(path.join(s.good, 'ca-cert.pem'));
  const foreign = {
    cert: await readFile(path.join(s.wrongCa, 'client-cert.pem')),
    key: await readFile(path.join(s.wrongCa, 'client-key.pem')),
  };
  const out: unknown[] = [];
  for (const own of [foreign, {}])
    out.push(
      await settle(
        NbdClient.connect({
          tcp: { host: '127.0.0.1', port },
          exportName: 'disk0',
          tls: { ca, hostname: '127.0.0.1', ...own },
        }),
      ),
    );
  return out;
}

describe('pull-mode backup over TCP with TLS', () => {
  it('a full and 2 incrementals over TLS restore exactly; a plaintext client is refused by the TLS export', async () => {
    const s = await setup();
    const dir = path.join(suite.dir, 'tls-chain');
    const before = await state(s.m);
    const port = await freeLoopbackPort();
    const tcp = { port, tls: { dir: s.good } };

    await write(s, 0x11, 0, 1 * MiB);
    const shaFull = sha256(s.bytes);
    let plaintext: unknown;
    const full = await pullBackupFull(s.m, {
      dir,
      tcp,
      onPhase: async (p) => {
        if (p.phase !== 'exported') return;
        expect(p.tcp).toEqual({ host: '127.0.0.1', port, tls: true });
        expect(p.socket).toBeUndefined();
        // QEMU answers every option but STARTTLS with "TLS required" (NBD_REP_ERR_TLS_REQD).
        plaintext = await settle(
          NbdClient.connect({ tcp: { host: '127.0.0.1', port }, exportName: 'disk0' }),
        );
      },
    });
    expect(plaintext).toMatchObject({ name: 'NbdServerError', errno: 5 });
    expect(full.point.kind).toBe('full');
    expect(full.bytesRead).toEqual({ disk0: 1 * MiB });
    expect(await state(s.m)).toEqual(before);

    const expected = [{ id: full.point.id, sha: shaFull }];
    let refusedClients: unknown[] = [];
    for (const [pattern, offset, length] of [
      [0x12, 2 * MiB, 128 * KiB],
      [0x13, 64 * KiB, 64 * KiB],
    ] as const) {
      await write(s, pattern, offset, length);
      const sha = sha256(s.bytes);
      const inc = await pullBackupIncremental(s.m, {
        dir,
        tcp,
        // Readers that trust QEMU's certificate but whose own QEMU refuses (one signed by
        // another CA, and none at all): our side finishes the TLS 1.3 handshake first, then
        // QEMU drops the connection; typed as the refused client certificate.
        onPhase: async (p) => {
          if (p.phase === 'exported' && pattern === 0x12)
            refusedClients = await badClients(s, port);
        },
      });
      expect(inc.point.kind).toBe('incremental');
      expect(inc.bytesRead).toEqual({ disk0: length });
      expected.push({ id: inc.point.id, sha });
      expect(await state(s.m)).toEqual(before);
    }
    for (const refused of refusedClients)
      expect(refused).toMatchObject({
        name: 'NbdTlsError',
        reason: 'client-certificate-refused',
        message: expect.stringMatching(/closed the connection right after the TLS handshake/),
      });
    expect(refusedClients.map((e) => (e as Error).message)).toEqual([
      expect.stringContaining('refused our client certificate'),
      expect.stringContaining('without a client certificate'),
    ]);

    // QEMU not asking for a client certificate (`verifyPeer: false`), and the reader checking
    // the server's certificate against a name it carries (`hostname`, not the address): a
    // reader with no certificate of its own reads the incremental.
    await write(s, 0x14, 3 * MiB, 64 * KiB);
    const open = await pullBackupIncremental(s.m, {
      dir,
      tcp: { port, tls: { dir: s.good, verifyPeer: false, hostname: 'localhost' } },
    });
    expect(open.bytesRead).toEqual({ disk0: 64 * KiB });
    expected.push({ id: open.point.id, sha: sha256(s.bytes) });
    expect(await state(s.m)).toEqual(before);
    for (const e of expected) expect(await restoredSha(dir, e.id)).toBe(e.sha);
  });

  it('bad inputs: a TLS file missing, TCP without TLS, a remote host, the wrong CA, a port in use leave the VM as it was', async () => {
    const s = await setup();
    const dir = path.join(suite.dir, 'tls-bad');
    const before = await state(s.m);
    const port = await freeLoopbackPort();
    await write(s, 0x21, 1 * MiB, 64 * KiB);
    const full = await pullBackupFull(s.m, { dir, tcp: { port, tls: { dir: s.good } } });
    const manifest = await readFile(path.join(dir, 'backup.json'), 'utf8');
    const files = (await readdir(dir)).sort();
    const unchanged = async () => {
      expect(await state(s.m)).toEqual(before);
      expect(await readFile(path.join(dir, 'backup.json'), 'utf8')).toBe(manifest);
      expect((await readdir(dir)).sort()).toEqual(files);
    };

    // A directory without the server's key: refused by name before QEMU is asked.
    const partial = path.join(suite.dir, 'tls-partial');
    await mkdir(partial, { mode: 0o700 });
    for (const f of ['ca-cert.pem', 'server-cert.pem', 'client-cert.pem', 'client-key.pem'])
      await copyFile(path.join(s.good, f), path.join(partial, f));
    await expect(
      pullBackupIncremental(s.m, { dir, tcp: { port, tls: { dir: partial } } }),
    ).rejects.toMatchObject({
      name: 'PullExportError',
      reason: 'tls-files',
      missing: [path.join(partial, 'server-key.pem')],
      message: expect.stringContaining('server-key.pem'),
    });
    await unchanged();

    await expect(pullBackupIncremental(s.m, { dir, tcp: { port } })).rejects.toMatchObject({
      name: 'PullExportError',
      reason: 'plaintext-tcp',
    });
    await expect(
      pullBackupIncremental(s.m, { dir, tcp: { host: '192.0.2.7', port, tls: { dir: s.good } } }),
    ).rejects.toMatchObject({
      name: 'PullExportError',
      reason: 'remote-host',
      path: `192.0.2.7:${port}`,
    });
    await unchanged();

    // The reader trusts another CA: our client refuses QEMU's certificate, typed.
    const wrong = await settle(
      pullBackupIncremental(s.m, {
        dir,
        tcp: { port, tls: { dir: s.good, clientDir: s.wrongCa } },
      }),
    );
    expect(wrong).toMatchObject({
      name: 'BackupFailedError',
      chainIntact: true,
      cause: { name: 'NbdTlsError', reason: 'certificate' },
    });
    await unchanged();

    // The reader checks the server's certificate against a name it does not carry.
    const otherName = await settle(
      pullBackupIncremental(s.m, {
        dir,
        tcp: { port, tls: { dir: s.good, hostname: 'other.example' } },
      }),
    );
    expect(otherName).toMatchObject({
      name: 'BackupFailedError',
      chainIntact: true,
      cause: { name: 'NbdTlsError', reason: 'certificate', code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
    });
    await unchanged();

    // The port is taken: QEMU's refusal is typed, and the TLS object it made is gone again.
    const busy: Server = createServer();
    await new Promise<void>((resolve) => busy.listen(port, '127.0.0.1', resolve));
    try {
      const taken = await settle(
        pullBackupIncremental(s.m, { dir, tcp: { port, tls: { dir: s.good } } }),
      );
      expect(taken).toMatchObject({
        name: 'BackupFailedError',
        chainIntact: true,
        cause: { name: 'PullExportError', reason: 'server-start', path: `127.0.0.1:${port}` },
      });
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
    await unchanged();

    // After all that the chain still carries an incremental with every write since the full,
    // here on TCP without TLS (asked for): a reader that wants TLS is refused, never served
    // in plaintext.
    await write(s, 0x22, 3 * MiB, 64 * KiB);
    let starttls: unknown;
    const tls = {
      ca: await readFile(path.join(s.good, 'ca-cert.pem')),
      hostname: '127.0.0.1',
    };
    const inc = await pullBackupIncremental(s.m, {
      dir,
      tcp: { port, allowPlaintext: true },
      onPhase: async (p) => {
        if (p.phase === 'exported')
          starttls = await settle(
            NbdClient.connect({ tcp: { host: '127.0.0.1', port }, exportName: 'disk0', tls }),
          );
      },
    });
    expect(starttls).toMatchObject({ name: 'NbdTlsError', reason: 'starttls-refused' });
    expect(inc.point).toMatchObject({ kind: 'incremental', since: full.point.checkpoint });
    expect(inc.bytesRead).toEqual({ disk0: 64 * KiB });
    expect(await restoredSha(dir, inc.point.id)).toBe(sha256(s.bytes));
  });

  it('a backup whose process stopped while exported leaves a TLS object and a TCP server; the next backup of the directory removes them', async () => {
    const s = await setup();
    const dir = path.join(suite.dir, 'tls-stuck');
    const before = await state(s.m);
    const port = await freeLoopbackPort();
    const tcp = { port, tls: { dir: s.good } };
    await pullBackupFull(s.m, { dir, tcp });
    await write(s, 0x31, 0, 64 * KiB);

    // The backup's process "dies" in its exported phase: it never goes on, never cleans up.
    let exported = () => {};
    const reached = new Promise<void>((resolve) => {
      exported = resolve;
    });
    void pullBackupIncremental(s.m, {
      dir,
      tcp,
      onPhase: (p) => {
        if (p.phase !== 'exported') return;
        exported();
        return new Promise<void>(() => {
          // Never settles: this backup stands for a process that was killed here.
        });
      },
    });
    await reached;
    const left = await state(s.m);
    expect(left.objects).toContain('qmpkit-pull-tls-0002');
    expect(left.exports).toHaveLength(1);

    // The next backup reads the record, stops the server (its port is free again: the new
    // export listens on the same one) and deletes the object before it starts its own.
    await write(s, 0x32, 1 * MiB, 64 * KiB);
    const next = await pullBackupIncremental(s.m, { dir, tcp });
    expect(next.interrupted).toMatchObject({ id: '0002', mode: 'pull', chain: 'merged' });
    expect(next.interrupted?.leftovers).toEqual([]);
    expect(next.bytesRead).toEqual({ disk0: 128 * KiB });
    expect(await restoredSha(dir, next.point.id)).toBe(sha256(s.bytes));
    expect(await state(s.m)).toEqual(before);
    expect((await readManifest(dir))?.points.map((p) => p.kind)).toEqual(['full', 'incremental']);
  });
});
