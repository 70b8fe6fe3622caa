/**
 * The capture script's core against the installed QEMU: the manifest describes what was
 * written (version, package, target, the file's SHA-256 and entry count), and when the
 * installed binary is the one the committed capture came from, the capture reproduces the
 * committed file byte for byte — the committed data is what our script makes, nothing edited.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { QEMU, qemuSuite } from '@qmpkit/testguest/test-support';
import { expect, it } from 'vitest';
import { captureSchema } from './capture.js';

// Skip rules (never skip with CI=true), the temp dir and cleanup: the shared test support.
const out = qemuSuite({ prefix: 'qmpkit-capture-' }).dir;
const committedDir = path.resolve(import.meta.dirname, '../../../../schemas/qemu-7.2');

interface Manifest {
  qemu: { major: number; minor: number; micro: number; version: string; package: string };
  target: string;
  source: { kind: string; binary: string; command: string; options: string[] };
  files: Record<string, { sha256: string; entries: number }>;
}

it('captureSchema writes the schema and a manifest that describes it', {
  timeout: 60_000,
}, async (ctx) => {
  const result = await captureSchema(QEMU.system, out);
  const manifest = JSON.parse(
    readFileSync(path.join(result.dir, 'manifest.json'), 'utf8'),
  ) as Manifest;
  const text = readFileSync(path.join(result.dir, 'query-qmp-schema.json'), 'utf8');
  const entries = JSON.parse(text) as { name: string; 'meta-type': string }[];

  expect(path.basename(result.dir)).toBe(`qemu-${manifest.qemu.major}.${manifest.qemu.minor}`);
  expect(manifest.qemu.version).toBe(result.version);
  expect(manifest.target).toBe('x86_64');
  expect(manifest.source).toMatchObject({ kind: 'capture', binary: QEMU.system });
  expect(manifest.files['query-qmp-schema.json']).toEqual({
    sha256: createHash('sha256').update(text).digest('hex'),
    entries: entries.length,
  });
  expect(entries.length).toBe(result.entries);
  expect(entries.some((e) => e.name === 'query-status' && e['meta-type'] === 'command')).toBe(true);

  const committed = JSON.parse(
    readFileSync(path.join(committedDir, 'manifest.json'), 'utf8'),
  ) as Manifest;
  if (manifest.qemu.package !== committed.qemu.package) {
    await ctx.annotate(
      `installed QEMU (${manifest.qemu.package}) is not the committed capture's (${committed.qemu.package}); byte comparison skipped`,
    );
    return;
  }
  expect(text).toBe(readFileSync(path.join(committedDir, 'query-qmp-schema.json'), 'utf8'));
  // `qapiSource` is added afterwards by `pnpm schemas:names` (the source the names came from).
  const { qapiSource: _names, ...captured } = committed as Manifest & { qapiSource?: unknown };
  expect(manifest).toEqual(captured);
});

it('captureSchema names a binary that is not there', async () => {
  await expect(captureSchema('qemu-system-none-such', out)).rejects.toThrow(
    /qemu-system-none-such/,
  );
});
