/**
 * Which Node types a package's declaration files lean on, seen from one entry: follows the
 * relative imports and re-exports of `.d.ts` files from the entry (the files a consumer's
 * compiler reads) and reports every `node:` or bare Node built-in import, `/// <reference
 * types="node" />`, and use of Node's global types (`Buffer`, `NodeJS.*`). A web project
 * without `@types/node` cannot type-check against a declaration that has any of these.
 */
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';

export interface NodeTypeUse {
  /** The declaration file, relative to the scanned root. */
  readonly file: string;
  readonly line: number;
  /** What was found: `import node:net`, `reference types=node`, `Buffer`, `NodeJS.Timeout`. */
  readonly what: string;
}

const BUILTINS = new Set(builtinModules.filter((m) => !m.startsWith('_')));
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/g;
const GLOBALS = /\b(Buffer|NodeJS\.[A-Za-z]+)\b/g;

/** Removes comments (JSDoc mentions of Buffer are harmless), keeping line breaks. */
function stripComments(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '))
    .replace(/(^|[^:])\/\/.*$/gm, '$1');
}

/** Every Node type use reachable from `entries` (paths of `.d.ts` files under `root`). */
export function nodeTypeUses(root: string, entries: readonly string[]): NodeTypeUse[] {
  const uses: NodeTypeUse[] = [];
  const seen = new Set<string>();
  const queue = entries.map((e) => path.resolve(root, e));
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    if (seen.has(file)) continue;
    seen.add(file);
    const rel = path.relative(root, file);
    const raw = readFileSync(file, 'utf8');
    const lines = stripComments(raw).split('\n');
    const rawLines = raw.split('\n');
    lines.forEach((text, i) => {
      const at = { file: rel, line: i + 1 };
      if (/^\s*\/\/\/\s*<reference\s+types\s*=\s*["']node["']/.test(rawLines[i] ?? ''))
        uses.push({ ...at, what: 'reference types=node' });
      for (const match of text.matchAll(SPECIFIER)) {
        const spec = match[1]!;
        if (spec.startsWith('node:') || BUILTINS.has(spec.split('/')[0]!))
          uses.push({ ...at, what: `import ${spec}` });
        else if (spec.startsWith('.')) queue.push(declarationOf(path.dirname(file), spec));
      }
      // Identifiers only outside string literals ('Buffer' in a message is not a type).
      const code = text.replace(/(['"`])(?:\\.|(?!\1).)*\1/g, '""');
      for (const match of code.matchAll(GLOBALS)) uses.push({ ...at, what: match[1]! });
    });
  }
  return uses;
}

/** `./x.js` → `./x.d.ts` (or `./x/index.d.ts`). */
function declarationOf(dir: string, spec: string): string {
  const base = path.resolve(dir, spec.replace(/\.(m|c)?js$/, ''));
  for (const candidate of [`${base}.d.ts`, path.join(base, 'index.d.ts')])
    if (existsSync(candidate)) return candidate;
  return `${base}.d.ts`;
}
