// Read two raw query-qmp-schema captures (type names masked, as QEMU sends them) and list
// what changed between QEMU 6.2 and 7.2.
// Run: node --conditions=@qmpkit/source --import tsx packages/schema/examples/diff.ts
import { readFileSync } from 'node:fs';
import { diffSchemas, formatChange, readIntrospection } from '@qmpkit/schema';

const capture = (version: string) => {
  const file = new URL(`../../../schemas/qemu-${version}/query-qmp-schema.json`, import.meta.url);
  return readIntrospection({ file: file.pathname, text: readFileSync(file, 'utf8') });
};

const before = capture('6.2');
const after = capture('7.2');
console.log(`7.2: ${after.commands.size} commands, ${after.events.size} events`);
const changes = diffSchemas(before, after);
for (const change of changes.filter((c) => c.target === 'branch').slice(0, 3))
  console.log(formatChange(change));
console.log(`${changes.length} changes`);
