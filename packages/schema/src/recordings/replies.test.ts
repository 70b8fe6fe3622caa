import { describe, expect, it } from 'vitest';
import { SchemaError } from '../errors.js';
import { parseReplies, schemaFromReplies } from './replies.js';

const recording = `{
  "execute": "qmp_capabilities",
  "id": "libvirt-1"
}

{
  "return": {
  },
  "id": "libvirt-1"
}

{
  "execute": "query-version",
  "id": "libvirt-2"
}

{
  "return": {
    "qemu": { "micro": 0, "minor": 2, "major": 6 },
    "package": "v6.2.0"
  },
  "id": "libvirt-2"
}

{
  "execute": "query-qmp-schema",
  "id": "libvirt-3"
}

{
  "return": [
    { "name": "stop", "meta-type": "command", "arg-type": "0", "ret-type": "0" },
    { "name": "0", "meta-type": "object", "members": [] },
    { "name": "a \\" } brace in a string", "meta-type": "builtin", "json-type": "string" }
  ],
  "id": "libvirt-3"
}
`;

describe('libvirt .replies recordings', () => {
  it('reads command/reply pairs with their lines', () => {
    const exchanges = parseReplies('caps.replies', recording);
    expect(exchanges.map((e) => [e.command.execute, e.line])).toEqual([
      ['qmp_capabilities', 1],
      ['query-version', 12],
      ['query-qmp-schema', 25],
    ]);
  });

  it('extracts the schema and version', () => {
    const { schema, version } = schemaFromReplies('caps.replies', recording);
    expect(schema).toHaveLength(3);
    expect(version).toEqual({ major: 6, minor: 2, micro: 0, package: 'v6.2.0' });
  });

  const bad: [string, string, RegExp][] = [
    [
      'no schema',
      recording.slice(0, recording.indexOf('{\n  "execute": "query-qmp-schema"')),
      /no query-qmp-schema exchange/,
    ],
    [
      'a malformed schema reply',
      recording.replace('"return": [', '"return": 7, "x": ['),
      /entry is not valid JSON|not a SchemaInfo list/,
    ],
    [
      'a schema reply that is not a list',
      recording.replace(/"return": \[[\s\S]*?\n {2}\],/, '"return": {},'),
      /caps\.replies:\d+:1: the query-qmp-schema reply is not a SchemaInfo list/,
    ],
    ['a truncated file', recording.slice(0, -20), /unterminated entry/],
    [
      'mismatched ids',
      recording.replace('"id": "libvirt-3"\n}\n', '"id": "libvirt-9"\n}\n'),
      /caps\.replies:30:1: reply id "libvirt-3" does not match command id "libvirt-9"/,
    ],
    [
      'garbage between entries',
      recording.replace(
        '\n\n{\n  "execute": "query-version"',
        '\n\nxyz\n{\n  "execute": "query-version"',
      ),
      /caps\.replies:12:1: unexpected 'x' between entries/,
    ],
  ];
  it.each(bad)('rejects %s with an error naming the file and entry', (_what, text, message) => {
    expect(() => schemaFromReplies('caps.replies', text)).toThrow(SchemaError);
    expect(() => schemaFromReplies('caps.replies', text)).toThrow(message);
  });
});
