import { describe, expect, it } from 'vitest';
import type { QmpProtocolError } from '../errors.js';
import { QmpDecoder } from './decoder.js';

// Runs in Node and in Chromium (vitest project `browser`): bytes come from TextEncoder.
const encoder = new TextEncoder();
const utf8 = (text: string): Uint8Array => encoder.encode(text);

type Seen = { kind: string; value?: unknown; code?: string; text?: string | undefined };

function streamDecoder(seen: Seen[], maxLineBytes = 1024 * 1024): QmpDecoder {
  const push = (kind: string) => (value: unknown) => seen.push({ kind, value });
  return new QmpDecoder(
    {
      greeting: push('greeting'),
      return: push('return'),
      error: push('error'),
      event: push('event'),
      command: push('command'),
      other: push('other'),
      protocolError: (error: QmpProtocolError, text?: string) =>
        seen.push({ kind: 'protocol', code: error.code, text }),
    },
    { framing: 'stream', maxLineBytes },
  );
}

function decode(chunks: readonly (string | Uint8Array)[], max?: number): Seen[] {
  const seen: Seen[] = [];
  const d = streamDecoder(seen, max);
  for (const c of chunks) d.push(typeof c === 'string' ? utf8(c) : c);
  d.end();
  return seen;
}

describe('QmpDecoder, stream framing (how QEMU reads QMP)', () => {
  const input =
    '{"execute":"qmp_capabilities"}{"execute":"query-status","id":"a}]"}\n  {"execute":\r\n"stop"}' +
    "{'execute':'x\\'}'}" +
    '{"execute":"é€😀"}';
  const want: Seen[] = [
    { kind: 'command', value: { execute: 'qmp_capabilities' } },
    { kind: 'command', value: { execute: 'query-status', id: 'a}]' } },
    { kind: 'command', value: { execute: 'stop' } },
    // Single quotes are QEMU's, not JSON.parse's: the fake's own parser reads them.
    { kind: 'protocol', code: 'invalid-json', text: "{'execute':'x\\'}'}" },
    { kind: 'command', value: { execute: 'é€😀' } },
  ];

  it('needs no newline; objects back to back, with blanks, across lines', () => {
    expect(decode([input])).toEqual(want);
  });

  it('gives the same messages however the bytes are split (every cut, every byte alone)', () => {
    const bytes = utf8(input);
    for (let cut = 1; cut < bytes.length; cut++)
      expect(decode([bytes.subarray(0, cut), bytes.subarray(cut)]), `cut ${cut}`).toEqual(want);
    expect(decode([...bytes].map((b) => new Uint8Array([b])))).toEqual(want);
  });

  it('copies what it keeps: a caller reusing its chunk buffer does not corrupt a message', () => {
    const seen: Seen[] = [];
    const d = streamDecoder(seen);
    const buf = utf8('{"execute":"ab');
    d.push(buf);
    buf.fill(0x40);
    d.push(utf8('c"}'));
    expect(seen).toEqual([{ kind: 'command', value: { execute: 'abc' } }]);
  });

  it('reports stray tokens with their bytes and resynchronises at a structural byte', () => {
    expect(
      decode(['01 @@@ {"execute":"a"} 1ex,tru\x01e 1e5x {"a":"b\x02"}{"execute":"b"}']),
    ).toEqual([
      { kind: 'protocol', code: 'stray-token', text: '01' },
      { kind: 'command', value: { execute: 'a' } },
      { kind: 'protocol', code: 'stray-token', text: '1ex' },
      // Recovery resumes at the comma: a message of its own.
      { kind: 'protocol', code: 'invalid-json', text: ',' },
      // `tru` is a keyword token (JSON.parse refuses it); \x01 ends it and is the stray;
      // recovery then skips everything up to the next structural byte (`{`).
      { kind: 'protocol', code: 'invalid-json', text: 'tru' },
      { kind: 'protocol', code: 'stray-token', text: '\x01' },
      { kind: 'protocol', code: 'stray-token', text: '"b\x02' },
      // The unbalanced `}` ends a message of its own, as in QEMU.
      { kind: 'protocol', code: 'invalid-json', text: '}' },
      { kind: 'command', value: { execute: 'b' } },
    ]);
  });

  it("enforces QEMU's nesting limit per message and goes on", () => {
    const ok = `${'['.repeat(1024)}${']'.repeat(1024)}`;
    const seen = decode([`${ok}${'['.repeat(1025)}\n{"execute":"after"}`]);
    expect(seen.map((s) => s.code ?? s.kind)).toEqual([
      'not-an-object',
      'nesting-too-deep',
      // QEMU's streamer drops the whole message at the limit and starts afresh.
      'command',
    ]);
  });

  it('bounds memory: an endless message is reported once and not held', () => {
    const seen: Seen[] = [];
    const d = streamDecoder(seen, 100);
    d.push(utf8('{"execute":"'));
    for (let i = 0; i < 50; i++) {
      d.push(new Uint8Array(1000).fill(0x61));
      expect(d.bufferedBytes).toBeLessThanOrEqual(100);
    }
    d.push(utf8('"}{"execute":"ok"}'));
    expect(seen).toEqual([
      { kind: 'protocol', code: 'message-too-long', text: undefined },
      { kind: 'command', value: { execute: 'ok' } },
    ]);
    // A complete message over the bound inside one chunk is refused too.
    expect(decode([`{"execute":"${'b'.repeat(200)}"}`], 100)).toEqual([
      { kind: 'protocol', code: 'message-too-long', text: undefined },
    ]);
  });

  it('a stream ending inside a message is truncated; blanks at the end are not', () => {
    expect(decode(['{"execute":"a"}  \n'])).toHaveLength(1);
    const seen = decode(['{"execute":"a"}{"exec']);
    expect(seen[1]).toMatchObject({ kind: 'protocol', code: 'truncated' });
  });

  it('stop() from a callback ignores the rest of the chunk', () => {
    const seen: Seen[] = [];
    const d: QmpDecoder = new QmpDecoder(
      {
        greeting: () => {},
        return: () => {},
        error: () => {},
        event: () => {},
        command: (m) => {
          seen.push({ kind: 'command', value: m });
          d.stop();
        },
        protocolError: () => {},
      },
      { framing: 'stream' },
    );
    d.push(utf8('{"execute":"a"}{"execute":"b"}'));
    d.push(utf8('{"execute":"c"}'));
    expect(seen).toEqual([{ kind: 'command', value: { execute: 'a' } }]);
  });
});
