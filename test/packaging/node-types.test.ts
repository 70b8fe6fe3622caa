import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { nodeTypeUses } from './node-types.js';

const root = mkdtempSync(path.join(tmpdir(), 'qmpkit-node-types-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function write(file: string, text: string): void {
  mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
  writeFileSync(path.join(root, file), text);
}

it('reports Node imports, references and global types reachable from the entry, nothing else', () => {
  write(
    'index.d.ts',
    [
      "export * from './a.js';",
      "export { type B } from './sub/index.js';",
      '/** Returns a Buffer in Node (a comment: not a use). */',
      "export declare const label: 'Buffer';",
    ].join('\n'),
  );
  write(
    'a.d.ts',
    [
      '/// <reference types="node" />',
      "import type { Duplex } from 'node:stream';",
      "import type { Socket } from 'net';",
      'export declare function f(d: Duplex, s: Socket): Buffer;',
      'export declare const t: NodeJS.Timeout; // and Buffer here is a comment',
    ].join('\n'),
  );
  write('sub/index.d.ts', "export interface B { bytes: Uint8Array }\nexport * from '../c.js';");
  write('c.d.ts', "import type { X } from 'some-package';\nexport type C = X;");
  write('unreached.d.ts', "import type { Socket } from 'node:net';\nexport type U = Buffer;");

  expect(nodeTypeUses(root, ['index.d.ts'])).toEqual([
    { file: 'a.d.ts', line: 1, what: 'reference types=node' },
    { file: 'a.d.ts', line: 2, what: 'import node:stream' },
    { file: 'a.d.ts', line: 3, what: 'import net' },
    { file: 'a.d.ts', line: 4, what: 'Buffer' },
    { file: 'a.d.ts', line: 5, what: 'NodeJS.Timeout' },
  ]);
  expect(nodeTypeUses(root, ['sub/index.d.ts'])).toEqual([]);
});
