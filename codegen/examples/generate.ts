// Read QEMU 7.2's introspection capture, generate bindings in memory, and diff two schemas.
// Run: node --conditions=@qmpkit/source --import tsx codegen/examples/generate.ts
import { readFileSync } from 'node:fs';
import {
  diffSchemas,
  emitTypeScript,
  formatChange,
  type NameMap,
  readIntrospection,
} from '@qmpkit/codegen';

const dir = new URL('../../schemas/qemu-7.2/', import.meta.url);
const text = readFileSync(new URL('query-qmp-schema.json', dir), 'utf8');
const names = JSON.parse(readFileSync(new URL('names.json', dir), 'utf8')) as NameMap;
const schema = readIntrospection({
  file: 'query-qmp-schema.json',
  text,
  names,
  qemuVersion: '7.2.22',
});
console.log(
  `${schema.commands.size} commands, ${schema.events.size} events, ${schema.types.size} types`,
);

const files = emitTypeScript(schema, {
  runtimeImport: '@qmpkit/qapi/runtime-v1',
  generatorVersion: '0.1.0',
  inputDescription: 'query-qmp-schema.json',
  qemuVersion: '7.2.22',
});
console.log('files:', [...files.keys()].slice(0, 5).join(', '), '…');

// A schema without `snapshot-save`, as QEMU 5.2 would be: what changed?
const older = {
  ...schema,
  commands: new Map([...schema.commands].filter(([n]) => n !== 'snapshot-save')),
};
for (const change of diffSchemas(older, schema)) console.log(formatChange(change));
