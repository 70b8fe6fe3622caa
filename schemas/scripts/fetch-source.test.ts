/**
 * `schemas:source --qemu-tree DIR`: copies a QEMU tree's qapi/*.json into the cache with a
 * provenance file, reuses a complete cache, and names what is wrong with a tree that is not
 * QEMU's. Uses a made-up version (99.1) so the real 7.2 cache is never touched.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { cacheRoot, fetchQapiSource, qapiSourceDir, qgaSourceDir } from './fetch-source.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'qmpkit-fetch-source-'));
const cached = path.join(cacheRoot, 'qemu-99.1');
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  rmSync(cached, { recursive: true, force: true });
});

function tree(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp, name);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

it('copies qapi/*.json of a named tree into the cache, then reuses the cache', async () => {
  const qemu = tree('qemu', {
    VERSION: '99.1.50\n',
    'qapi/qapi-schema.json': "{ 'include': 'a.json' }\n",
    'qapi/a.json': "{ 'command': 'x' }\n",
    'qapi/meson.build': 'not json\n',
    'qga/qapi-schema.json': "{ 'command': 'guest-ping' }\n",
    'qga/meson.build': 'not json\n',
  });
  const first = await fetchQapiSource({ qemuTree: qemu });
  expect(first).toEqual({ dir: cached, cached: false });
  expect(readdirSync(qapiSourceDir('99.1')).sort()).toEqual(['a.json', 'qapi-schema.json']);
  expect(readdirSync(qgaSourceDir('99.1'))).toEqual(['qapi-schema.json']);
  expect(JSON.parse(readFileSync(path.join(cached, 'provenance.json'), 'utf8'))).toEqual({
    source: 'tree',
    commit: 'unknown',
    files: 2,
    qgaFiles: 1,
  });
  expect(existsSync(`${cached}.partial`)).toBe(false);
  expect(await fetchQapiSource({ version: '99.1' })).toEqual({ dir: cached, cached: true });
});

it('names what is wrong with a tree that is not a QEMU source tree', async () => {
  await expect(fetchQapiSource({ qemuTree: path.join(tmp, 'none') })).rejects.toThrow(
    /VERSION not found/,
  );
  const noQapi = tree('no-qapi', { VERSION: '99.1.0\n' });
  await expect(fetchQapiSource({ qemuTree: noQapi })).rejects.toThrow(
    /qapi-schema\.json not found/,
  );
  const other = tree('other', { VERSION: '98.0.0\n', 'qapi/qapi-schema.json': '{}\n' });
  await expect(fetchQapiSource({ qemuTree: other, version: '99.1' })).rejects.toThrow(
    /is QEMU 98\.0, not 99\.1/,
  );
});
