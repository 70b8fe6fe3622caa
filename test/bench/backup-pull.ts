// Pull-mode backup (@qmpkit/backup `pullBackupFull` / `pullBackupIncremental`): how the reader
// of the VM's NBD export compares with the tools that could read it instead, on the same export
// in the same run.
//
//   pnpm bench:backup-pull [--size 256] [--changed 5] [--accel tcg]
//
// The disk is a qcow2 image of --size MiB, every cluster allocated with non-zero data, attached
// to a VM that runs no guest. While each backup's export is open (the backup waits in its
// `exported` phase), the baselines run against that same export:
// - `qemu-img convert` of the whole export into a qcow2 (what a reader without block status
//   for the bitmap does: it reads everything);
// - `qemu-img map --image-opts …x-dirty-bitmap=qemu:dirty-bitmap:NAME` (the dirty map alone,
//   what `nbdinfo --map` would print; it writes nothing).
// - for the full: our NBD client alone reading the whole export (no writes).
// Then our reader runs: the map by NBD_CMD_BLOCK_STATUS, READs of the dirty extents, WRITEs into
// the new layer through qemu-nbd. "reader" is the time from the end of the exported phase to
// the start of tear-down.
// The same full and incremental run once more with the export on loopback TCP under TLS
// (`tcp: { tls }`, the reader's and our client's reads over TLS), beside the unix socket ones
// in the same run; the ratios TLS / unix are printed.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import {
  NbdClient,
  type NbdConnectOptions,
  type PullPhase,
  type PullTcp,
  pullBackupFull,
  pullBackupIncremental,
} from '@qmpkit/backup';
import { type AccelConfig, MiB } from '@qmpkit/devices';
import { runQemuImg } from '@qmpkit/machine';
import { freeLoopbackPort } from '@qmpkit/testguest/test-support';
import { makeTlsDirs } from '../../packages/machine/src/tls.test-support.js';
import { launchFilledDisk } from './guest-config.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '256' },
    changed: { type: 'string', default: '5' },
    accel: { type: 'string', default: 'tcg' },
  },
});
const sizeMiB = Number(values.size);
const changedPercent = Number(values.changed);
const accel = values.accel.split(',').filter((a) => a !== '') as AccelConfig[];
const _exec = promisify(execFile);

/** Our client alone: every byte of the export, 1 MiB requests, 8 in flight, data dropped. */
async function readAll(
  to: Omit<NbdConnectOptions, 'exportName'>,
  exportName: string,
): Promise<void> {
  const client = await NbdClient.connect({ ...to, exportName });
  try {
    let next = 0;
    const worker = async () => {
      for (let at = next; at < client.size; at = next) {
        next += MiB;
        await client.read(at, Math.min(MiB, client.size - at));
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  } finally {
    await client.close();
  }
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

const dir = await mkdtemp(join(tmpdir(), 'qmpkit-bench-pull-'));
try {
  const { vm } = await launchFilledDisk(dir, sizeMiB, accel);
  const rows: string[] = [];
  let n = 0;
  /** Runs the baselines on the open export and times our reader after them. */
  const probe = (bitmap: string | undefined, tls?: Omit<NbdConnectOptions, 'exportName'>) => {
    const t = { convert: 0, map: 0, readerStart: 0, reader: 0, client: 0 };
    const onPhase = async (p: PullPhase) => {
      if (p.phase === 'exported' && tls !== undefined) {
        // TLS run: our client alone over TLS, then the shipped reader.
        if (bitmap === undefined) t.client = await timed(() => readAll(tls, 'disk0'));
        t.readerStart = performance.now();
      } else if (p.phase === 'exported') {
        const socket = p.socket ?? '';
        const uri = `nbd+unix:///disk0?socket=${socket}`;
        t.convert = await timed(() =>
          runQemuImg([
            'convert',
            '-f',
            'raw',
            '-O',
            'qcow2',
            uri,
            join(dir, `convert-${++n}.qcow2`),
          ]),
        );
        if (bitmap === undefined) t.client = await timed(() => readAll({ path: socket }, 'disk0'));
        if (bitmap !== undefined)
          t.map = await timed(() =>
            runQemuImg([
              'map',
              '--output=json',
              '--image-opts',
              `driver=nbd,server.type=unix,server.path=${socket},export=disk0,x-dirty-bitmap=qemu:dirty-bitmap:${bitmap}`,
            ]),
          );
        t.readerStart = performance.now();
      } else if (p.phase === 'tearing-down') t.reader = performance.now() - t.readerStart;
    };
    return { t, onPhase };
  };
  try {
    const backups = join(dir, 'backups');
    const f = probe(undefined);
    const full = await pullBackupFull(vm, { dir: backups, onPhase: f.onPhase });
    const runs = Math.max(1, Math.round((sizeMiB * changedPercent) / 100));
    const stride = Math.floor(sizeMiB / runs);
    for (let i = 0; i < runs; i++)
      await vm.qmp.hmp(`qemu-io -d disk0 "write -P 0xa5 ${i * stride}M 1M"`);
    const i = probe(full.point.checkpoint);
    const inc = await pullBackupIncremental(vm, { dir: backups, onPhase: i.onPhase });
    // The same again over loopback TCP with TLS.
    const certs = await makeTlsDirs(join(dir, 'tls'));
    const tcp: PullTcp = { port: await freeLoopbackPort(), tls: { dir: certs.good } };
    const client = {
      tcp: { host: '127.0.0.1', port: tcp.port },
      tls: {
        ca: await readFile(join(certs.good, 'ca-cert.pem')),
        cert: await readFile(join(certs.good, 'client-cert.pem')),
        key: await readFile(join(certs.good, 'client-key.pem')),
        hostname: '127.0.0.1',
      },
    };
    const tlsBackups = join(dir, 'backups-tls');
    const ft = probe(undefined, client);
    const fullTls = await pullBackupFull(vm, { dir: tlsBackups, tcp, onPhase: ft.onPhase });
    for (let i = 0; i < runs; i++)
      await vm.qmp.hmp(`qemu-io -d disk0 "write -P 0x3c ${i * stride}M 1M"`);
    const it = probe(fullTls.point.checkpoint, client);
    const incTls = await pullBackupIncremental(vm, { dir: tlsBackups, tcp, onPhase: it.onPhase });
    const ms = (x: number) => `${x.toFixed(0).padStart(7)} ms`;
    const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;
    rows.push(
      `pull backup of a ${sizeMiB} MiB qcow2 disk (all allocated), accel ${accel.join(',')}`,
    );
    rows.push(
      `load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    rows.push(
      `full: qemu-img convert of the export  ${ms(f.t.convert)}  reads ${mib(sizeMiB * MiB)}`,
    );
    rows.push(
      `full: our NBD client, reads only      ${ms(f.t.client)}  reads ${mib(sizeMiB * MiB)} (1 MiB x 8 in flight)`,
    );
    rows.push(
      `full: shipped reader                  ${ms(f.t.reader)}  reads ${mib(full.bytesRead.disk0 ?? 0)}`,
    );
    rows.push(`incremental (${changedPercent}%, ${runs} MiB written):`);
    rows.push(
      `  qemu-img convert of the export      ${ms(i.t.convert)}  reads ${mib(sizeMiB * MiB)}`,
    );
    rows.push(`  qemu-img map x-dirty-bitmap (map)   ${ms(i.t.map)}  reads nothing`);
    rows.push(
      `  our reader (map + read + write)     ${ms(i.t.reader)}  reads ${mib(inc.bytesRead.disk0 ?? 0)}`,
    );
    rows.push(
      `ratios: full reader / convert ${(f.t.reader / f.t.convert).toFixed(2)}x; incremental reader / convert ${(i.t.reader / i.t.convert).toFixed(3)}x for ${((inc.bytesRead.disk0 ?? 0) / (sizeMiB * MiB)).toFixed(3)} of the data; snapshot-access ${inc.snapshotAccess}`,
    );
    rows.push('TLS over loopback TCP (same VM, same run):');
    rows.push(
      `  full: our NBD client, reads only    ${ms(ft.t.client)}  ${(ft.t.client / f.t.client).toFixed(2)}x the unix socket`,
    );
    rows.push(
      `  full: shipped reader (qemu-img)     ${ms(ft.t.reader)}  ${(ft.t.reader / f.t.reader).toFixed(2)}x the unix socket; reads ${mib(fullTls.bytesRead.disk0 ?? 0)}`,
    );
    rows.push(
      `  incremental: our reader             ${ms(it.t.reader)}  ${(it.t.reader / i.t.reader).toFixed(2)}x the unix socket; reads ${mib(incTls.bytesRead.disk0 ?? 0)}`,
    );
    console.log(rows.join('\n'));
  } finally {
    await vm.stop();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
