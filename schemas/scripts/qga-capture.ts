/**
 * A doc-free structural capture of the guest agent's QAPI schema (`qga/qapi-schema.json`):
 *   pnpm schemas:qga --release bookworm      QEMU 7.2 (Debian 12's qemu source package)
 *   pnpm schemas:qga --release trixie        QEMU 10.0
 *   pnpm schemas:qga --qemu-tree DIR         any QEMU source tree
 * There is no introspection for the agent, so the committed input is made from the source:
 * every definition and pragma with its names, types, conditions and features, and nothing
 * else — no comment, no doc block (QEMU's doc prose is GPL and is never committed). The
 * capture is itself QAPI syntax, so the generator reads it with the same parser and checks.
 * Output: `schemas/qga-<major>.<minor>/qga-schema.json` and `manifest.json`.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadQapiSource, parseQapiFile, type QapiValue, type ReadOptions } from '@qmpkit/codegen';
import { fetchQapiSource } from './fetch-source.js';

const schemasDir = path.resolve(import.meta.dirname, '..');

export const QGA_CAPTURE_FILE = 'qga-schema.json';

class QgaCaptureError extends Error {
  override readonly name = 'QgaCaptureError';
}

/** A QAPI value in QAPI syntax (single-quoted strings, no whitespace inside). */
function qapiText(value: QapiValue): string {
  switch (value.kind) {
    case 'string':
      if (/['\\\n]/.test(value.value))
        throw new QgaCaptureError(
          `${value.loc.file}:${value.loc.line}: a string the capture cannot quote: ${value.value}`,
        );
      return `'${value.value}'`;
    case 'bool':
      return value.value ? 'true' : 'false';
    case 'array':
      return `[${value.items.map(qapiText).join(', ')}]`;
    case 'object':
      return `{ ${value.entries.map((e) => `'${e.key}': ${qapiText(e.value)}`).join(', ')} }`;
  }
}

/**
 * The capture text of a parsed qga schema: one definition per line, in source order. Pragmas
 * are kept (the checks need their exception lists) except `doc-required`, since the capture
 * has no docs by design.
 */
export function qgaCaptureText(
  mainFile: string,
  options: ReadOptions = {},
): { text: string; definitions: number } {
  const parsed = parseQapiFile(mainFile, options);
  const lines: string[] = [];
  let definitions = 0;
  for (const expr of parsed.expressions) {
    if (expr.kind === 'include') continue; // included files are already flattened in order
    if (expr.kind === 'pragma') {
      const entries = expr.value.entries.filter((e) => e.key !== 'doc-required');
      if (entries.length === 0) continue;
      lines.push(`{ 'pragma': ${qapiText({ ...expr.value, entries })} }`);
      continue;
    }
    definitions++;
    lines.push(qapiText(expr.value));
  }
  return { text: `${lines.join('\n')}\n`, definitions };
}

export async function captureQga(options: {
  release?: string;
  qemuTree?: string;
  out?: string;
}): Promise<{ dir: string; version: string; definitions: number }> {
  const { dir: sourceDir } = await fetchQapiSource(options);
  const main = path.join(sourceDir, 'qga', 'qapi-schema.json');
  if (!existsSync(main))
    throw new QgaCaptureError(`${main} not found: the cached source holds no qga/ schema`);
  const provenance = JSON.parse(readFileSync(path.join(sourceDir, 'provenance.json'), 'utf8')) as {
    source: string;
    package?: string;
    commit?: string;
  };
  const version = path.basename(sourceDir).slice('qemu-'.length);
  const { text, definitions } = qgaCaptureText(main, { qemuVersion: version });
  const outDir = path.join(options.out ?? schemasDir, `qga-${version}`);
  mkdirSync(outDir, { recursive: true });
  const captureFile = path.join(outDir, QGA_CAPTURE_FILE);
  writeFileSync(captureFile, text);
  // The capture must read back into the same schema as the source, docs aside.
  const fromSource = loadQapiSource(main, { qemuVersion: version });
  const fromCapture = loadQapiSource(captureFile, { qemuVersion: version });
  for (const kind of ['types', 'commands', 'events'] as const) {
    const a = [...fromSource[kind].keys()].sort().join(',');
    const b = [...fromCapture[kind].keys()].sort().join(',');
    if (a !== b) throw new QgaCaptureError(`the capture lost ${kind}: ${a} vs ${b}`);
  }
  const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
  const manifest = {
    qemu: { version, package: provenance.package ?? provenance.commit ?? 'unknown' },
    source: {
      kind: 'qga-source-structure',
      from: `${provenance.source}: qga/qapi-schema.json`,
      sha256: sha256(readFileSync(main)),
    },
    files: { [QGA_CAPTURE_FILE]: { sha256: sha256(text), definitions } },
  };
  writeFileSync(path.join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir: outDir, version, definitions };
}

if (process.argv[1]?.endsWith('qga-capture.ts')) {
  const { values } = parseArgs({
    options: {
      release: { type: 'string' },
      'qemu-tree': { type: 'string' },
      out: { type: 'string' },
    },
  });
  try {
    const result = await captureQga({
      ...(values.release ? { release: values.release } : {}),
      ...(values['qemu-tree'] ? { qemuTree: values['qemu-tree'] } : {}),
      ...(values.out ? { out: values.out } : {}),
    });
    console.log(
      `captured the qga schema of QEMU ${result.version}: ${result.definitions} definitions → ${path.relative(process.cwd(), result.dir)}`,
    );
  } catch (error) {
    console.error(`schemas:qga: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}
