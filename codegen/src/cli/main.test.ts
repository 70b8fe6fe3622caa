import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from './main.js';

const repoRoot = path.resolve(import.meta.dirname, '../../..');
const fixture = (p: string) => path.join(repoRoot, 'test/fixtures', p);
const capture = path.join(repoRoot, 'schemas/qemu-7.2/query-qmp-schema.json');
const names = path.join(repoRoot, 'schemas/qemu-7.2/names.json');

let stderr: string[];
beforeEach(() => {
  stderr = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr.push(String(chunk));
    return true;
  });
});
afterEach(() => vi.restoreAllMocks());

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const code = await main(argv, (t) => out.push(t));
  return { code, out: out.join(''), err: stderr.join('') };
}

describe('qmpkit-codegen', () => {
  it('check: exit 0 and a summary for a valid schema', async () => {
    const r = await run('check', fixture('qapi/valid/schema/main.json'));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/main\.json: ok\ncommands: \d+/);
  });

  it('check: exit 1 with file:line:col and no stack trace for an invalid schema', async () => {
    const r = await run('check', fixture('qapi/invalid/include-cycle.json'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^\S+include-cycle-b\.json:3:1: inclusion loop for include-cycle\.json\n$/,
    );
    expect(r.err).not.toMatch(/\bat \S+:\d+:\d+\)/);
  });

  it('check: a missing file is a clear error', async () => {
    const r = await run('check', fixture('qapi/nope.json'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/nope\.json/);
  });

  it('generate: writes one file per module plus the maps, removing stale files', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'qmpkit-codegen-'));
    try {
      const stale = path.join(out, 'old.generated.ts');
      await import('node:fs').then((fs) => fs.writeFileSync(stale, '// stale'));
      const r = await run(
        'generate',
        '--from-introspection',
        capture,
        '--names',
        names,
        '--qemu-version',
        '7.2.22',
        '--out',
        out,
      );
      expect(r.code).toBe(0);
      const files = readdirSync(out);
      expect(files).toContain('run-state.generated.ts');
      expect(files).toContain('qmp-commands.generated.ts');
      expect(files).not.toContain('old.generated.ts');
      expect(readFileSync(path.join(out, 'index.generated.ts'), 'utf8')).toContain(
        'from "@qmpkit/qapi/runtime-v1"',
      );
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('generate: more than one input is a usage error (exit 2)', async () => {
    const r = await run(
      'generate',
      '--from-introspection',
      capture,
      '--from-source',
      'x.json',
      '--out',
      'x',
    );
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/exactly one of/);
  });

  it('summary: valid JSON that is not a SchemaInfo list fails naming the file and the entry', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'codegen-notinfo-'));
    try {
      const object = path.join(dir, 'object.json');
      writeFileSync(object, '{"hello": "world"}\n');
      let r = await run('summary', '--from-introspection', object);
      expect(r.code).toBe(1);
      expect(r.err).toContain(object);
      expect(r.err).toContain('not a SchemaInfo list: expected a JSON array');

      const entries = path.join(dir, 'entries.json');
      writeFileSync(
        entries,
        JSON.stringify([
          { name: 'int', 'meta-type': 'builtin', 'json-type': 'int' },
          { name: 'frobnicate', 'meta-type': 'gadget' },
        ]),
      );
      r = await run('summary', '--from-introspection', entries);
      expect(r.code).toBe(1);
      expect(r.err).toContain(entries);
      expect(r.err).toContain("SchemaInfo entry #1 'frobnicate': unknown meta-type 'gadget'");
      expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('summary: introspection input that is not JSON at all fails with a located parse error', async () => {
    const r = await run('summary', '--from-introspection', fixture('qapi/valid/schema/main.json'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/main\.json:\d+:\d+: invalid JSON/);
  });

  it('diff: lists what 6.2 → 7.2 added, as text and as JSON', async () => {
    const dir = (v: string) => path.join(repoRoot, `schemas/qemu-${v}`);
    const text = await run('diff', dir('6.2'), dir('7.2'));
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^\+ command query-stats$/m);
    expect(text.out).toMatch(/^\+ argument blockdev-change-medium\.force \(bool\)$/m);
    const json = await run('diff', dir('6.2'), dir('7.2'), '--json');
    const parsed = JSON.parse(json.out) as {
      changes: { kind: string; target: string; path: string }[];
    };
    expect(parsed.changes).toContainEqual(
      expect.objectContaining({ kind: 'added', target: 'command', path: 'query-stats' }),
    );
    const same = await run('diff', dir('7.2'), dir('7.2'));
    expect(same.out).toMatch(/: 0 changes\n$/);
  });

  it('diff: a missing input is a usage error', async () => {
    const r = await run('diff', 'nope/qemu-1.0', path.join(repoRoot, 'schemas/qemu-7.2'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/nope\/qemu-1\.0: no such file or directory/);
  });
});
