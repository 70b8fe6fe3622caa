/**
 * Recover real names of masked introspection types from QAPI source of the same version:
 *   pnpm schemas:names [--version 7.2] [--storage-daemon]
 * Reads schemas/qemu-<ver>/query-qmp-schema.json and the source cache
 * (.cache/qapi-source/qemu-<ver>, see `pnpm schemas:source`), writes schemas/qemu-<ver>/names.json
 * (identifiers and module names only — no QEMU prose), and notes in the manifest's `qapiSource`
 * which source package the names (and locally built docs) come from: it may be a later patch
 * release than the captured binary (10.0: binary 10.0.2 from bookworm-backports, source 10.0.13
 * from trixie). `--storage-daemon` does the same for schemas/qsd-<ver>/ (a qemu-storage-daemon
 * capture): the daemon's schema is a subset of the same QAPI modules, so QEMU's full source
 * names its types.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadQapiSource, recoverNames } from '@qmpkit/codegen';

const repoRoot = path.resolve(import.meta.dirname, '../..');

/** The QAPI source's provenance as the manifest records it (`qemu_10.0.13+ds-…` → `10.0.13`). */
export function sourceProvenance(provenanceText: string): {
  release: string;
  package: string;
  version: string;
} {
  const p = JSON.parse(provenanceText) as { source?: string; package?: string };
  const version = /^qemu_(?:\d+:)?(\d+\.\d+(?:\.\d+)?)/.exec(p.package ?? '')?.[1];
  if (p.source === undefined || p.package === undefined || version === undefined)
    throw new Error(`unreadable QAPI source provenance: ${provenanceText.trim()}`);
  return { release: p.source, package: p.package, version };
}

export function namesFor(
  version: string,
  prefix: 'qemu' | 'qsd' = 'qemu',
): {
  text: string;
  unmatched: readonly string[];
  conflicts: readonly string[];
} {
  const capture = path.join(repoRoot, `schemas/${prefix}-${version}/query-qmp-schema.json`);
  const sourceMain = path.join(
    repoRoot,
    `.cache/qapi-source/qemu-${version}/qapi/qapi-schema.json`,
  );
  if (!existsSync(sourceMain))
    throw new Error(`no QAPI source for ${version}: run \`pnpm schemas:source\` first`);
  const source = loadQapiSource(sourceMain, { qemuVersion: version });
  const recovered = recoverNames(
    path.relative(repoRoot, capture),
    readFileSync(capture, 'utf8'),
    source,
  );
  const text = `${JSON.stringify({ types: recovered.types, modules: recovered.modules, openArguments: recovered.openArguments, integers: recovered.integers }, null, 1)}\n`;
  return { text, unmatched: recovered.unmatched, conflicts: recovered.conflicts };
}

if (process.argv[1]?.endsWith('recover-names.ts')) {
  const { values } = parseArgs({
    options: {
      version: { type: 'string', default: '7.2' },
      'storage-daemon': { type: 'boolean', default: false },
    },
  });
  const prefix = values['storage-daemon'] ? 'qsd' : 'qemu';
  try {
    const { text, unmatched, conflicts } = namesFor(values.version, prefix);
    const out = path.join(repoRoot, `schemas/${prefix}-${values.version}/names.json`);
    writeFileSync(out, text);
    const provenanceFile = path.join(
      repoRoot,
      `.cache/qapi-source/qemu-${values.version}/provenance.json`,
    );
    if (existsSync(provenanceFile)) {
      const manifestFile = path.join(repoRoot, `schemas/${prefix}-${values.version}/manifest.json`);
      const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Record<string, unknown>;
      manifest.qapiSource = sourceProvenance(readFileSync(provenanceFile, 'utf8'));
      writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
    }
    const count = Object.keys((JSON.parse(text) as { types: object }).types).length;
    console.log(
      `${path.relative(process.cwd(), out)}: ${count} names recovered, ${unmatched.length} unmatched, ${conflicts.length} conflicts`,
    );
    for (const c of conflicts) console.log(`  conflict: ${c}`);
    if (unmatched.length > 0) console.log(`  unmatched masked types: ${unmatched.join(', ')}`);
  } catch (error) {
    console.error(`schemas:names: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}
