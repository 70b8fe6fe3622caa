/**
 * Introspection reports every integer type as `int`, but QEMU checks widths (`uint8_t`,
 * `uint64`, …) and words its errors after them. This script reads the QAPI *source* of one
 * QEMU version and writes, for every struct member (and array element) with a sized
 * integer type, its real builtin — identifiers only, no QEMU prose — to
 * `schemas/qemu-<ver>/integer-members.json`, keyed by the names the generated tables use.
 *
 *   node --conditions=@qmpkit/source --import tsx packages/fake-qmp/scripts/integer-members.ts [--version 7.2]
 * Needs the source cache (`pnpm schemas:source`).
 */
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { allMembers, loadQapiSource, type TypeRef } from '@qmpkit/codegen';
import { tables } from '@qmpkit/qapi/qemu-7.2';

const repo = path.join(import.meta.dirname, '../../..');
const SIZED = new Set(['int8', 'int16', 'int32', 'uint8', 'uint16', 'uint32', 'uint64', 'size']);

function sized(ref: TypeRef): string | undefined {
  if (ref.kind === 'array') {
    const inner = sized(ref.element);
    return inner === undefined ? undefined : `[${inner}]`;
  }
  return SIZED.has(ref.name) ? ref.name : undefined;
}

const { values } = parseArgs({ options: { version: { type: 'string', default: '7.2' } } });
const main = path.join(repo, `.cache/qapi-source/qemu-${values.version}/qapi/qapi-schema.json`);
if (!existsSync(main)) {
  console.error(`no QAPI source for ${values.version}: run \`pnpm schemas:source\` first`);
  process.exit(1);
}
const schema = loadQapiSource(main);
const out: Record<string, Record<string, string>> = {};
let unmatched = 0;
for (const [typeName, table] of Object.entries(tables.types)) {
  if (table.kind !== 'object') continue;
  const members = allMembers(schema, typeName);
  if (!members) {
    unmatched++;
    continue;
  }
  for (const m of members) {
    const s = sized(m.type);
    if (s === undefined || !table.members.some((x) => x.name === m.name)) continue;
    const entry = out[typeName] ?? {};
    entry[m.name] = s;
    out[typeName] = entry;
  }
}
const sorted = Object.fromEntries(
  Object.keys(out)
    .sort()
    .map((k) => [
      k,
      Object.fromEntries(Object.entries(out[k]!).sort(([a], [b]) => (a < b ? -1 : 1))),
    ]),
);
const file = path.join(repo, `schemas/qemu-${values.version}/integer-members.json`);
writeFileSync(file, `${JSON.stringify(sorted, null, 1)}\n`);
console.log(
  `${path.relative(repo, file)}: ${Object.keys(sorted).length} types with sized integers (${unmatched} table types without a source struct)`,
);
