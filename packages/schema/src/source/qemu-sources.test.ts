/**
 * The real QAPI sources: QEMU 7.2 (fetched into the gitignored `.cache/` by
 * `pnpm schemas:source`) and a newer one (see `upstreamCandidates`); both are required in CI.
 * Neither is ever copied into the repository.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, type TestContext } from 'vitest';
import type { Schema } from '../model/ir.js';
import { allMembers } from '../model/schema.js';
import type { ParsedSchema } from './ast.js';
import { checkQapiSchema, parseQapiFile } from './index.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const qemu72 = path.join(repoRoot, '.cache/qapi-source/qemu-7.2/qapi/qapi-schema.json');
/**
 * A newer QEMU's QAPI source, the first that exists of: `QMPKIT_UPSTREAM_QAPI`, the team's
 * upstream copy next to the repository (c. QEMU 10.2), and Debian trixie's QEMU 10.0 fetched
 * by `pnpm schemas:source --release trixie` (what CI uses).
 */
const upstreamCandidates = [
  ...(process.env.QMPKIT_UPSTREAM_QAPI ? [process.env.QMPKIT_UPSTREAM_QAPI] : []),
  path.join(repoRoot, '..', 'shared/qapi/qemu-upstream'),
  path.join(repoRoot, '.cache/qapi-source/qemu-10.0/qapi'),
];
const upstreamDir =
  upstreamCandidates.find((dir) => existsSync(path.join(dir, 'qapi-schema.json'))) ??
  upstreamCandidates.join(' or ');
const upstream = path.join(upstreamDir, 'qapi-schema.json');

interface Loaded {
  readonly parsed: ParsedSchema;
  readonly schema: Schema;
  readonly ms: number;
}

const qemu100 = path.join(repoRoot, '.cache/qapi-source/qemu-10.0/qapi/qapi-schema.json');

const cache = new Map<string, Loaded>();

/** Reads and checks `file` with the rules of `qemuVersion` (the newest rules when omitted). */
function load(file: string, qemuVersion?: string): Loaded {
  const key = `${file}@${qemuVersion ?? 'newest'}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const start = performance.now();
  const parsed = parseQapiFile(file, qemuVersion ? { qemuVersion } : {});
  const schema = checkQapiSchema(parsed);
  const loaded = { parsed, schema, ms: performance.now() - start };
  cache.set(key, loaded);
  return loaded;
}

/** Skips with a reason when the 7.2 source is missing, except in CI where it must exist. */
function need72(ctx: TestContext): Loaded {
  if (!existsSync(qemu72)) {
    if (process.env.CI === 'true') {
      throw new Error(`${qemu72} is missing; run \`pnpm schemas:source\` before the tests`);
    }
    ctx.skip(`QEMU 7.2 QAPI source not fetched (${qemu72}); run \`pnpm schemas:source\``);
  }
  return load(qemu72, '7.2');
}

/** Skips with a reason when no newer source is there, except in CI where it must exist. */
function needUpstream(ctx: TestContext): Loaded {
  if (!existsSync(upstream)) {
    const why = `no newer QAPI source at ${upstreamDir}; run \`pnpm schemas:source --release trixie\``;
    if (process.env.CI === 'true') throw new Error(why);
    ctx.skip(why);
  }
  return load(upstream);
}

/** Counts computed from the raw expressions, independent of the lowering. */
function rawCounts(parsed: ParsedSchema) {
  const counts = { enum: 0, struct: 0, union: 0, alternate: 0, command: 0, event: 0 };
  for (const expr of parsed.expressions) {
    if (expr.kind !== 'definition') continue;
    for (const meta of Object.keys(counts) as (keyof typeof counts)[]) {
      if (expr.value.byKey.has(meta)) counts[meta]++;
    }
  }
  return counts;
}

function checkCommonFacts({ parsed, schema }: Loaded): void {
  const counts = rawCounts(parsed);
  expect(schema.commands.size).toBe(counts.command);
  expect(schema.events.size).toBe(counts.event);
  const named = [...schema.types.values()].filter((t) => !t.implicit);
  expect(named.length).toBe(counts.enum + counts.struct + counts.union + counts.alternate);
  expect(schema.modules[0]).toBe('qapi-schema');
  expect(schema.modules).toEqual(parsed.files.map((f) => f.module));
  expect(schema.pragmas?.docRequired).toBe(true);

  // doc-required: every definition carries its doc, and docs name what follows them.
  for (const def of [...named, ...schema.commands.values(), ...schema.events.values()]) {
    expect(def.doc, def.name).toBeDefined();
  }

  const status = schema.commands.get('query-status');
  expect(status?.returns).toEqual({ kind: 'named', name: 'StatusInfo' });
  expect(status?.module).toBe('run-state');
  expect(status?.doc?.since).toBe('0.14');

  const add = schema.commands.get('blockdev-add');
  expect(add).toMatchObject({ boxed: true, args: 'BlockdevOptions' });
  const options = schema.types.get('BlockdevOptions');
  expect(options).toMatchObject({
    kind: 'union',
    discriminator: 'driver',
    base: 'BlockdevOptionsBase',
  });
  expect(schema.types.get('BlockdevOptionsBase')?.implicit).toEqual({
    owner: 'BlockdevOptions',
    role: 'base',
  });
  expect(allMembers(schema, 'BlockdevOptions')?.find((m) => m.name === 'driver')?.type).toEqual({
    kind: 'named',
    name: 'BlockdevDriver',
  });

  const completed = schema.events.get('BLOCK_JOB_COMPLETED');
  expect(completed?.data).toBe('BlockJobCompletedEvent');
  expect(schema.types.get('BlockJobCompletedEvent')?.module).toBe('block-core');
}

interface IntrospectionInfo {
  readonly name: string;
  readonly 'meta-type': string;
  readonly 'arg-type'?: string;
  readonly members?: readonly { readonly name: string }[];
}

describe('QEMU 7.2 QAPI source', () => {
  it('parses and checks with zero errors', async (ctx) => {
    const loaded = need72(ctx);
    // Speed is bench:qapi-source's business; the test only reports it.
    await ctx.annotate(`parsed and checked in ${Math.round(loaded.ms)} ms`);
    checkCommonFacts(loaded);
  });

  it('agrees with the introspection captured from QEMU 7.2 on commands, events and their arguments', (ctx) => {
    const { schema } = need72(ctx);
    const captured = JSON.parse(
      readFileSync(path.join(repoRoot, 'schemas/qemu-7.2/query-qmp-schema.json'), 'utf8'),
    ) as IntrospectionInfo[];
    const infos = new Map(captured.map((info) => [info.name, info]));
    let compared = 0;
    for (const info of captured) {
      if (info['meta-type'] !== 'command' && info['meta-type'] !== 'event') continue;
      const def =
        info['meta-type'] === 'command'
          ? schema.commands.get(info.name)
          : schema.events.get(info.name);
      expect(def, info.name).toBeDefined();
      if (!def || (def.kind === 'command' ? def.boxed : def.kind === 'event' && def.boxed))
        continue;
      const argType =
        def.kind === 'command' ? def.args : def.kind === 'event' ? def.data : undefined;
      const introspected = infos.get(info['arg-type'] ?? '')?.members?.map((m) => m.name) ?? [];
      const source = argType ? (allMembers(schema, argType) ?? []) : [];
      // The source has every member; introspection drops those whose `if` is false here.
      expect(source.map((m) => m.name)).toEqual(expect.arrayContaining(introspected));
      for (const member of source)
        if (!member.if) expect(introspected, info.name).toContain(member.name);
      compared++;
    }
    expect(compared).toBeGreaterThan(200);
  });
});

describe("each source against its own version's rules", () => {
  it("7.2's doc comments break the newer rules (so the rules differ where it matters)", (ctx) => {
    need72(ctx);
    expect(() => load(qemu72)).toThrow(/qemu-7\.2\/qapi\/.*\.json:\d+:\d+: /);
  });

  it('QEMU 10.0 (trixie, 10.0.13) parses and checks with zero errors as 10.0', async (ctx) => {
    if (!existsSync(qemu100)) {
      const why = `no QEMU 10.0 QAPI source at ${qemu100}; run \`pnpm schemas:source --release trixie\``;
      if (process.env.CI === 'true') throw new Error(why);
      ctx.skip(why);
    }
    const loaded = load(qemu100, '10.0');
    await ctx.annotate(`parsed and checked in ${Math.round(loaded.ms)} ms`);
    checkCommonFacts(loaded);
    // 10.0's docs follow the newer rules only: read as 7.2 they are de-indents.
    expect(() => load(qemu100, '7.2')).toThrow(/unexpected de-indent/);
  });
});

describe('newer upstream QAPI source (QEMU 10.x)', () => {
  it('parses and checks with zero errors', async (ctx) => {
    const loaded = needUpstream(ctx);
    await ctx.annotate(`parsed and checked in ${Math.round(loaded.ms)} ms`);
    checkCommonFacts(loaded);
    // Newer doc syntax: `Errors:` sections exist upstream only.
    const errors = [...loaded.schema.commands.values()].filter((c) =>
      c.doc?.sections.some((s) => s.tag === 'Errors'),
    );
    expect(errors.length).toBeGreaterThan(0);
  });
});
