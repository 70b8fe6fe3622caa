import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { isSnapshotIntegrityError } from './errors.js';
import { verifyStateFile } from './statefile.js';

const root = mkdtempSync(path.join(tmpdir(), 'qmpkit-statefile-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function stream(version = 3): Buffer {
  const head = Buffer.alloc(8);
  head.write('QEVM', 0, 'latin1');
  head.writeUInt32BE(version, 4);
  return Buffer.concat([head, Buffer.alloc(1000, 7)]);
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function problem(
  bytes: Buffer,
  expected: { bytes: number; sha256: string },
  mode: 'full' | 'quick' = 'full',
) {
  const file = path.join(root, `f${Math.random()}`);
  await writeFile(file, bytes);
  const error = await verifyStateFile('s', file, expected, mode).then(
    () => undefined,
    (e: unknown) => e,
  );
  return isSnapshotIntegrityError(error) ? error.problem : error === undefined ? undefined : 'ok';
}

it('accepts a stream whose size, magic, version and SHA-256 match', async () => {
  const good = stream();
  expect(await problem(good, { bytes: good.length, sha256: sha(good) })).toBeUndefined();
});

it('auto: an unchanged file (same inode, mtime, ctime) is not hashed again; a written one is', async () => {
  const { stat, open } = await import('node:fs/promises');
  const good = stream();
  const file = path.join(root, 'auto');
  await writeFile(file, good);
  const st = await stat(file);
  const expected = {
    bytes: good.length,
    sha256: sha(good),
    written: { ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs },
  };
  expect(await verifyStateFile('s', file, expected, 'auto')).toBe('unchanged');
  expect(await verifyStateFile('s', file, expected, 'full')).toBe('sha256');
  await new Promise((r) => setTimeout(r, 20));
  const h = await open(file, 'r+');
  await h.write(Buffer.from([1]), 0, 1, 500);
  await h.close();
  const error = await verifyStateFile('s', file, expected, 'auto').catch((e: unknown) => e);
  expect(isSnapshotIntegrityError(error) && error.problem).toBe('checksum');
});

it('names each problem', async () => {
  const good = stream();
  expect(
    await problem(good.subarray(0, good.length - 1), { bytes: good.length, sha256: sha(good) }),
  ).toBe('size');
  const flipped = Buffer.from(good);
  flipped[500] = 0;
  expect(await problem(flipped, { bytes: good.length, sha256: sha(good) })).toBe('checksum');
  expect(
    await problem(flipped, { bytes: good.length, sha256: sha(good) }, 'quick'),
  ).toBeUndefined();
  const v2 = stream(2);
  expect(await problem(v2, { bytes: v2.length, sha256: sha(v2) })).toBe('version');
  const bad = Buffer.from(good);
  bad.write('XXXX', 0, 'latin1');
  expect(await problem(bad, { bytes: bad.length, sha256: sha(bad) })).toBe('magic');
  const error = await verifyStateFile(
    's',
    path.join(root, 'missing'),
    { bytes: 1, sha256: '' },
    'full',
  ).catch((e: unknown) => e);
  expect(isSnapshotIntegrityError(error) && error.problem).toBe('missing');
});
