/**
 * Many QEMU versions in one artifact (issue #8), checked against the real recordings:
 * libvirt's `caps_<ver>.x86_64.replies` (fetched into .cache/ by `pnpm schemas:libvirt
 * --fetch-only`; required in CI) and our own 7.2 capture.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  assertSameVersion,
  CodegenError,
  diffSchemas,
  formatSchemaList,
  loadQapiSource,
  type NameMap,
  readIntrospection,
  recoverNames,
  type Schema,
  schemaFromReplies,
} from '@qmpkit/codegen';
import { formatProblem, type SchemaTables, validateReturn } from '@qmpkit/qapi/runtime-v1';
import { describe, expect, it, type TestContext } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const recordings = path.join(repoRoot, '.cache/libvirt/qemucapabilitiesdata');
const sourceMain = path.join(repoRoot, '.cache/qapi-source/qemu-7.2/qapi/qapi-schema.json');
const versions = readdirSync(path.join(repoRoot, 'schemas'))
  .filter((d) => /^qemu-\d+\.\d+$/.test(d))
  .map((d) => d.slice('qemu-'.length));
/**
 * The versions libvirt recorded: bookworm's libvirt 9.0 (what `schemas:libvirt` unpacks) has
 * replies for QEMU up to 7.2 (and the 8.0 development snapshot qmpkit dropped); 10.0 is a
 * capture of our own with no libvirt recording beside it.
 */
const recorded = versions.filter((v) => {
  const [major = 0, minor = 0] = v.split('.').map(Number);
  return major < 7 || (major === 7 && minor <= 2);
});

function need(ctx: TestContext, file: string, how: string): void {
  if (existsSync(file)) return;
  if (process.env.CI === 'true') throw new Error(`${file} is missing: run \`${how}\` first`);
  ctx.skip(`${path.relative(repoRoot, file)} not fetched; run \`${how}\``);
}

function capture(version: string): Schema {
  const dir = path.join(repoRoot, 'schemas', `qemu-${version}`);
  return readIntrospection({
    file: `schemas/qemu-${version}/query-qmp-schema.json`,
    text: readFileSync(path.join(dir, 'query-qmp-schema.json'), 'utf8'),
    names: JSON.parse(readFileSync(path.join(dir, 'names.json'), 'utf8')) as NameMap,
  });
}

function rawNames(version: string, meta: 'command' | 'event'): Set<string> {
  const list = JSON.parse(
    readFileSync(
      path.join(repoRoot, 'schemas', `qemu-${version}`, 'query-qmp-schema.json'),
      'utf8',
    ),
  ) as {
    name: string;
    'meta-type': string;
  }[];
  return new Set(list.filter((e) => e['meta-type'] === meta).map((e) => e.name));
}

const KNOWN_RECORDING_QUIRKS: Record<string, RegExp> = {
  '4.2':
    /^line \d+ device-list-properties: \$\[\d+\]\.default-value: unexpected member 'default-value'/,
};

describe('versions', () => {
  it('has bindings for at least six versions, 4.2 to 7.2, and no development snapshot', () => {
    expect(versions.length).toBeGreaterThanOrEqual(6);
    expect(versions).toContain('4.2');
    expect(versions).toContain('7.2');
    // libvirt's caps_8.0.0 recording is QEMU 7.2.50, a development snapshot: no bindings.
    expect(versions).not.toContain('8.0');
    for (const v of versions) {
      expect(
        existsSync(path.join(repoRoot, `packages/qapi/src/gen/qemu-${v}/index.generated.ts`)),
        v,
      ).toBe(true);
    }
  });

  it("libvirt's 7.2 recording and our 7.2 capture give the same IR, up to build-time if-conditions", (ctx) => {
    const file = path.join(recordings, 'caps_7.2.0.x86_64.replies');
    need(ctx, file, 'pnpm schemas:libvirt --fetch-only');
    need(ctx, sourceMain, 'pnpm schemas:source');
    const source = loadQapiSource(sourceMain, { qemuVersion: '7.2' });
    const text = formatSchemaList(schemaFromReplies(file, readFileSync(file, 'utf8')).schema);
    const recorded = readIntrospection({ file, text, names: recoverNames(file, text, source) });
    const changes = assertSameVersion(
      '7.2',
      { label: 'recording', schema: recorded },
      { label: 'capture', schema: capture('7.2') },
      source,
    );
    // What differs is the build configuration (libvirt's build had io_uring/libblkio, Debian's gtk).
    expect(changes.every((c) => c.kind === 'added' || c.kind === 'removed')).toBe(true);
    expect([...recorded.commands.keys()].sort()).toEqual(
      [...capture('7.2').commands.keys()].sort(),
    );
  });

  it('rejects two inputs that claim one version with different content', () => {
    const real = capture('7.2');
    const tampered: Schema = {
      ...real,
      commands: new Map([...real.commands].filter(([n]) => n !== 'query-status')),
    };
    expect(() =>
      assertSameVersion('7.2', { label: 'a', schema: real }, { label: 'b', schema: tampered }),
    ).toThrow(CodegenError);
    expect(() =>
      assertSameVersion('7.2', { label: 'a', schema: real }, { label: 'b', schema: tampered }),
    ).toThrow(
      /two inputs claim QEMU 7\.2 with different content \(a vs b\):\n {2}- command query-status/,
    );
  });

  // it.for (not it.each) passes the test context, for ctx.skip.
  it.for(recorded)(
    'every non-schema reply of the %s recording validates against its tables',
    async (version, ctx) => {
      const file = path.join(recordings, `caps_${version}.0.x86_64.replies`);
      need(ctx, file, 'pnpm schemas:libvirt --fetch-only');
      const index = pathToFileURL(
        path.join(repoRoot, `packages/qapi/src/gen/qemu-${version}/index.generated.ts`),
      ).href;
      const { tables } = (await import(/* @vite-ignore */ index)) as { tables: SchemaTables };
      const { exchanges } = schemaFromReplies(file, readFileSync(file, 'utf8'));
      const problems: string[] = [];
      let checked = 0;
      for (const { command, reply, line } of exchanges) {
        if (command.execute === 'query-qmp-schema' || !('return' in reply)) continue;
        checked++;
        for (const p of validateReturn(tables, command.execute, reply.return))
          problems.push(`line ${line} ${command.execute}: ${formatProblem(p)}`);
      }
      // libvirt's 4.2 recording carries `default-value` in device-list-properties replies, a
      // member QEMU 4.2's own ObjectPropertyInfo lacks (added in 5.0): the recording was edited
      // after it was made. Only that, and only as a forward-compatible difference, is allowed.
      const known = KNOWN_RECORDING_QUIRKS[version];
      expect(problems.filter((p) => !known?.test(p)).slice(0, 20)).toEqual([]);
      expect(checked).toBeGreaterThan(20);
    },
  );

  it('the 6.2 → 7.2 diff lists exactly the commands and events the raw schemas add and remove', () => {
    const changes = diffSchemas(capture('6.2'), capture('7.2'));
    for (const meta of ['command', 'event'] as const) {
      const before = rawNames('6.2', meta);
      const after = rawNames('7.2', meta);
      const added = changes
        .filter((c) => c.target === meta && c.kind === 'added')
        .map((c) => c.path)
        .sort();
      const removed = changes
        .filter((c) => c.target === meta && c.kind === 'removed')
        .map((c) => c.path)
        .sort();
      expect(added).toEqual([...after].filter((n) => !before.has(n)).sort());
      expect(removed).toEqual([...before].filter((n) => !after.has(n)).sort());
    }
    // Known facts about QEMU 7.0–7.2, as the raw schemas show them.
    expect(
      changes.some((c) => c.target === 'command' && c.kind === 'added' && c.path === 'query-stats'),
    ).toBe(true);
  });
});
