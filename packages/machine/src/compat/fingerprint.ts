/**
 * What identifies a QEMU build for compatibility answers: its version plus a SHA-256 over the
 * executable and every firmware/ROM file in its search path (`-L help`: the data dir and, on
 * Debian, SeaBIOS's and iPXE's dirs). A ROM whose size changes changes the migration stream
 * (`Size mismatch: …rom`), so an upgraded `ipxe-qemu` is another build even when the binary
 * is not. Never a path: the same build unpacked elsewhere has the same fingerprint.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { type QemuBinary, qemuBinaryArgs, qemuBinaryEnv, runOnce } from '../binary.js';
import { CompatProbeError } from './errors.js';

export interface QemuFingerprint {
  readonly version: string;
  /** SHA-256 (hex) over the executable and the firmware files, by name and content. */
  readonly sha256: string;
  /** Firmware files hashed (names only, sorted), for reports. */
  readonly firmware: readonly string[];
}

function fileHash(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('error', reject)
      .on('data', (chunk) => h.update(chunk))
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** Per file (path, size, mtime): hashing 20 MB again for every probe is wasted work. */
const hashes = new Map<string, Promise<string>>();

async function cachedFileHash(file: string): Promise<string> {
  const info = await stat(file);
  const key = [file, info.size, info.mtimeMs].join('\0');
  let h = hashes.get(key);
  if (h === undefined) {
    h = fileHash(file);
    hashes.set(key, h);
    h.catch(() => hashes.delete(key));
  }
  return h;
}

/** The directories QEMU searches for firmware (`-L help`), in its order. */
export async function firmwareDirs(qemu: QemuBinary): Promise<string[]> {
  const run = await runOnce(
    qemu.path,
    [...qemuBinaryArgs(qemu), '-L', 'help'],
    qemuBinaryEnv(qemu),
    20_000,
  );
  if (run.code !== 0)
    throw new CompatProbeError('fingerprint', `${qemu.path} -L help failed: ${run.output.trim()}`, {
      ...(run.error ? { cause: run.error } : {}),
    });
  return run.output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('/'));
}

/** The fingerprint of `qemu` (see the module comment). */
export async function qemuFingerprint(qemu: QemuBinary): Promise<QemuFingerprint> {
  const exe = qemu.path.includes('/') ? qemu.path : undefined;
  if (exe === undefined)
    throw new CompatProbeError(
      'fingerprint',
      `${qemu.path} is a name on PATH; resolve it to a file first`,
    );
  const entries: [string, string][] = [['<executable>', await cachedFileHash(exe)]];
  const seen = new Set<string>();
  for (const dir of await firmwareDirs(qemu)) {
    const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
      // A search dir that does not exist holds no firmware (QEMU lists it all the same).
      if (error.code === 'ENOENT') return [] as string[];
      throw error;
    });
    for (const name of names.sort()) {
      // The first dir with a name wins, as in QEMU's own lookup.
      if (seen.has(name)) continue;
      const file = path.join(dir, name);
      const info = await stat(file).catch(() => undefined);
      if (info === undefined || !info.isFile()) continue;
      seen.add(name);
      entries.push([name, await cachedFileHash(file)]);
    }
  }
  const h = createHash('sha256');
  for (const [name, digest] of entries) h.update(`${name}\0${digest}\n`);
  return {
    version: qemu.version,
    sha256: h.digest('hex'),
    firmware: entries.slice(1).map(([n]) => n),
  };
}
