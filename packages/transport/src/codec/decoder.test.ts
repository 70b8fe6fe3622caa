import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { QmpProtocolError } from '../errors.js';
import { decodeAll, QmpDecoder, type QmpMessageHandler } from './decoder.js';
import {
  encodeCommand,
  encodeError,
  encodeEvent,
  encodeGreeting,
  encodeReturn,
} from './encoder.js';
import type { QmpMessage } from './messages.js';

const recorded = readFileSync(path.join(import.meta.dirname, 'fixtures/qemu-7.2-session.qmp'));
/** The recorded session without the 200 KB schema line: cheap to chunk exhaustively. */
const small = Buffer.from(
  recorded
    .toString('latin1')
    .split('\n')
    .filter((l) => !l.includes('"meta-type"'))
    .join('\n'),
  'latin1',
);

function collector(options: { maxLineBytes?: number; chunksAreImmutable?: boolean } = {}) {
  const messages: QmpMessage[] = [];
  const errors: QmpProtocolError[] = [];
  const handler: QmpMessageHandler = {
    greeting: (message) => messages.push({ kind: 'greeting', message }),
    return: (message) => messages.push({ kind: 'return', message }),
    error: (message) => messages.push({ kind: 'error', message }),
    event: (message) => messages.push({ kind: 'event', message }),
    command: (message) => messages.push({ kind: 'command', message }),
    protocolError: (error) => errors.push(error),
  };
  const decoder = new QmpDecoder(handler, options);
  return { decoder, messages, errors };
}

function decodeChunks(
  chunks: readonly Uint8Array[],
  options: { maxLineBytes?: number; chunksAreImmutable?: boolean } = {},
) {
  const c = collector(options);
  for (const chunk of chunks) c.decoder.push(chunk);
  c.decoder.end();
  return c;
}

function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    out.push(buf.subarray(last, p));
    last = p;
  }
  out.push(buf.subarray(last));
  return out;
}

describe('QmpDecoder on a recorded QEMU 7.2 stream', () => {
  it('classifies every message by shape', () => {
    const messages = decodeAll(recorded);
    const kinds = messages.map((m) => m.kind);
    expect(kinds[0]).toBe('greeting');
    expect(kinds.filter((k) => k === 'event')).toHaveLength(3); // RESUME, STOP, SHUTDOWN
    expect(kinds.filter((k) => k === 'error')).toHaveLength(3);
    const schema = messages.find(
      (m) => m.kind === 'return' && Array.isArray(m.message.return) && m.message.id === 7,
    );
    expect(schema).toBeDefined();
    expect((schema!.message as { return: unknown[] }).return.length).toBeGreaterThan(1000);
  });

  it('decodes the same messages for every chunking (property)', () => {
    const expected = decodeAll(small);
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: small.length }), { maxLength: 40 }),
        fc.boolean(),
        (cuts, immutable) => {
          const { messages, errors } = decodeChunks(splitAt(small, cuts), {
            chunksAreImmutable: immutable,
          });
          expect(errors).toEqual([]);
          expect(messages).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('decodes the 200 KB schema line across random chunkings (property)', () => {
    const expected = decodeAll(recorded);
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: recorded.length }), { maxLength: 200 }),
        fc.boolean(),
        (cuts, immutable) => {
          const { messages, errors } = decodeChunks(splitAt(recorded, cuts), {
            chunksAreImmutable: immutable,
          });
          expect(errors).toEqual([]);
          expect(messages).toEqual(expected);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('decodes byte-by-byte', () => {
    const chunks = [...small].map((b) => Uint8Array.of(b));
    expect(decodeChunks(chunks).messages).toEqual(decodeAll(small));
  });
});

describe('QmpDecoder edge cases', () => {
  it('handles a multi-byte UTF-8 character split across chunks', () => {
    const line = Buffer.from(`${encodeReturn('héllo → 😀', 1)}`, 'utf8');
    const emoji = line.indexOf(0xf0);
    for (let cut = emoji; cut <= emoji + 4; cut++) {
      const { messages, errors } = decodeChunks([line.subarray(0, cut), line.subarray(cut)]);
      expect(errors).toEqual([]);
      expect(messages).toEqual([{ kind: 'return', message: { return: 'héllo → 😀', id: 1 } }]);
    }
  });

  it('classifies by shape, not position: events before the greeting and the negotiation reply', () => {
    const stream =
      encodeEvent('VSERPORT_CHANGE', { id: 'x', open: true }, { seconds: 1, microseconds: 2 }) +
      encodeGreeting({ qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, ['oob']) +
      encodeEvent('RESUME', undefined, { seconds: 1, microseconds: 3 }) +
      encodeReturn({}, 0);
    expect(decodeAll(stream).map((m) => m.kind)).toEqual(['event', 'greeting', 'event', 'return']);
  });

  it('decodes client commands (server side)', () => {
    const stream =
      encodeCommand('qmp_capabilities', { enable: ['oob'] }, 1) +
      encodeCommand('migrate-recover', { uri: 'x' }, 'abc', true) +
      encodeCommand('stop');
    expect(decodeAll(stream)).toEqual([
      {
        kind: 'command',
        message: { execute: 'qmp_capabilities', arguments: { enable: ['oob'] }, id: 1 },
      },
      {
        kind: 'command',
        message: { 'exec-oob': 'migrate-recover', arguments: { uri: 'x' }, id: 'abc' },
      },
      { kind: 'command', message: { execute: 'stop' } },
    ]);
  });

  it('hands unknown objects to `other` when the handler has one', () => {
    const others: object[] = [];
    const c = collector();
    const decoder = new QmpDecoder({ ...handlerOf(c), other: (v) => others.push(v) });
    decoder.push(Buffer.from('{"arguments":{}}\n'));
    expect(others).toEqual([{ arguments: {} }]);
  });

  it('encodes server errors and returns with CRLF and ids', () => {
    expect(encodeError('GenericError', 'bad', 3)).toBe(
      '{"error":{"class":"GenericError","desc":"bad"},"id":3}\r\n',
    );
    expect(encodeReturn({}, undefined)).toBe('{"return":{}}\r\n');
  });

  it.each([
    ['garbage', 'hello world\n', 'invalid-json'],
    ['a JSON array', '[1,2]\n', 'not-an-object'],
    ['a JSON string', '"QMP"\n', 'not-an-object'],
    ['an unknown object', '{"foo":1}\n', 'unknown-shape'],
    ['a greeting without version', '{"QMP":{}}\n', 'bad-greeting'],
    ['an error without class', '{"error":"x","id":1}\n', 'unknown-shape'],
  ])('reports %s as QmpProtocolError(%s)', (_name, input, code) => {
    const { errors, messages } = decodeChunks([Buffer.from(input)]);
    expect(messages).toEqual([]);
    expect(errors.map((e) => e.code)).toEqual([code]);
    expect(errors[0]).toBeInstanceOf(QmpProtocolError);
    expect(errors[0]?.raw).toBe(input.trimEnd());
  });

  it('reports invalid UTF-8 and goes on with the next line', () => {
    const bad = Buffer.concat([
      Buffer.from('{"return":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('","id":1}\n'),
      Buffer.from(encodeReturn('ok', 2)),
    ]);
    const { errors, messages } = decodeChunks([bad]);
    expect(errors.map((e) => e.code)).toEqual(['invalid-utf8']);
    expect(messages).toEqual([{ kind: 'return', message: { return: 'ok', id: 2 } }]);
  });

  it('accepts a literal U+FFFD', () => {
    expect(decodeAll(encodeReturn('\uFFFD', 1))).toHaveLength(1);
  });

  it('reports an over-long line as soon as the limit is passed, without buffering it', () => {
    const c = collector({ maxLineBytes: 1024 });
    c.decoder.push(Buffer.from(`{"return":"${'x'.repeat(800)}`));
    expect(c.errors).toEqual([]);
    c.decoder.push(Buffer.from('y'.repeat(800)));
    expect(c.errors.map((e) => e.code)).toEqual(['line-too-long']);
    expect(c.decoder.bufferedBytes).toBe(0);
    c.decoder.push(Buffer.from('z'.repeat(10_000)));
    expect(c.decoder.bufferedBytes).toBe(0);
    c.decoder.push(Buffer.from(`","id":1}\n${encodeReturn({}, 2)}`));
    expect(c.messages).toEqual([{ kind: 'return', message: { return: {}, id: 2 } }]);
    expect(c.errors).toHaveLength(1);
  });

  it('reports an over-long line that arrives in one chunk', () => {
    const { errors, messages } = decodeChunks(
      [Buffer.from(`${encodeReturn('x'.repeat(100), 1)}${encodeReturn(1, 2)}`)],
      { maxLineBytes: 50 },
    );
    expect(errors.map((e) => e.code)).toEqual(['line-too-long']);
    expect(messages).toHaveLength(1);
  });

  it('accepts the 200 KB schema line with the default limit and a 64 MiB line', () => {
    const big = encodeReturn('a'.repeat(64 * 1024 * 1024 - 30), 1);
    const c = collector();
    for (let i = 0; i < big.length; i += 1 << 20)
      c.decoder.push(Buffer.from(big.slice(i, i + (1 << 20))));
    expect(c.errors).toEqual([]);
    expect(c.messages).toHaveLength(1);
  });

  it('reports a stream that ends inside a message as truncated', () => {
    const { errors } = decodeChunks([Buffer.from('{"return": {}, "i')]);
    expect(errors.map((e) => e.code)).toEqual(['truncated']);
  });

  it('ignores blank lines and CRLF', () => {
    expect(decodeAll('\r\n  \n{"return":{},"id":1}\r\n\n')).toHaveLength(1);
  });

  it('copies partial lines unless chunks are declared immutable', () => {
    const chunk = Buffer.from('{"return": 1, "id": 1');
    const copying = collector();
    copying.decoder.push(chunk);
    chunk.fill(0x20); // the caller reuses its buffer
    copying.decoder.push(Buffer.from('}\n'));
    expect(copying.messages).toEqual([{ kind: 'return', message: { return: 1, id: 1 } }]);
  });

  it('stop() ignores the rest', () => {
    const c = collector();
    c.decoder.stop();
    c.decoder.push(Buffer.from(encodeReturn({}, 1)));
    expect(c.messages).toEqual([]);
    expect(c.decoder.isStopped).toBe(true);
  });

  it('rejects a bad limit', () => {
    expect(() => new QmpDecoder(handlerOf(collector()), { maxLineBytes: 0 })).toThrow(RangeError);
  });
});

function handlerOf(c: ReturnType<typeof collector>): QmpMessageHandler {
  return {
    greeting: (message) => c.messages.push({ kind: 'greeting', message }),
    return: (message) => c.messages.push({ kind: 'return', message }),
    error: (message) => c.messages.push({ kind: 'error', message }),
    event: (message) => c.messages.push({ kind: 'event', message }),
    command: (message) => c.messages.push({ kind: 'command', message }),
    protocolError: (error) => c.errors.push(error),
  };
}

describe('QmpDecoder on random bytes (property)', () => {
  it('only ever reports QmpProtocolError, never throws, never holds more than the limit', () => {
    const limit = 4096;
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 2000 }), { maxLength: 20 }), (chunks) => {
        const c = collector({ maxLineBytes: limit });
        for (const chunk of chunks) {
          c.decoder.push(chunk);
          expect(c.decoder.bufferedBytes).toBeLessThanOrEqual(limit);
        }
        c.decoder.end();
        for (const error of c.errors) expect(error).toBeInstanceOf(QmpProtocolError);
        // Random bytes with no newline-terminated JSON object produce no messages
        // unless they happen to contain one; either way nothing else escapes.
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes without newlines in a line-sized stream yield a protocol error at end', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 500 }), (bytes) => {
        const noNewline = bytes.map((b) => (b === 0x0a ? 0x41 : b));
        const nonBlank = noNewline.some((b) => b !== 0x20 && b !== 0x09 && b !== 0x0d);
        const { errors, messages } = decodeChunks([noNewline]);
        expect(messages).toEqual([]);
        expect(errors.length).toBe(nonBlank ? 1 : 0);
      }),
      { numRuns: 300 },
    );
  });

  it('random JSON values are classified or rejected, never crash (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { maxLength: 10 }), (values) => {
        const text = values.map((v) => `${JSON.stringify(v)}\n`).join('');
        const c = decodeChunks([Buffer.from(text)]);
        expect(c.messages.length + c.errors.length).toBe(values.length);
      }),
      { numRuns: 300 },
    );
  });
});

describe('line text for servers', () => {
  it('hands every callback the decoded line (CR stripped), also across chunks and for errors', () => {
    const lines: string[] = [];
    const decoder = new QmpDecoder({
      greeting: (_m, line) => lines.push(`greeting ${line}`),
      return: (_m, line) => lines.push(`return ${line}`),
      error: (_m, line) => lines.push(`error ${line}`),
      event: (_m, line) => lines.push(`event ${line}`),
      command: (_m, line) => lines.push(`command ${line}`),
      other: (_v, line) => lines.push(`other ${line}`),
      protocolError: (e, line) => lines.push(`${e.code} ${line ?? '-'}`),
    });
    decoder.push(Buffer.from('{"execute": "a"}\r\n{"foo":1}\n[1]\n{"exec'));
    decoder.push(Buffer.from('ute":"b", "id":1}\n{bad\n{"return": {}}\n'));
    expect(lines).toEqual([
      'command {"execute": "a"}',
      'other {"foo":1}',
      'not-an-object [1]',
      'command {"execute":"b", "id":1}',
      'invalid-json {bad',
      'return {"return": {}}',
    ]);
  });
});
