import { describe, expect, it } from 'vitest';
import {
  ByteQueue,
  decodeBlockStatus,
  decodeErrorChunk,
  decodeOptionReply,
  decodeReplyHeader,
  encodeGo,
  encodeRequest,
  encodeSetMetaContext,
  REPLY_MAGIC,
  replyHeaderRest,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
} from './codec.js';

describe('NBD codec', () => {
  it('encodes a request header in network order', () => {
    const b = encodeRequest(7, 0x0102n, 0x1_0000_0000, 65536, 8);
    expect(b.toString('hex')).toBe(
      `25609513${'0008'}${'0007'}${'0000000000000102'}${'0000000100000000'}${'00010000'}`,
    );
  });

  it('encodes NBD_OPT_GO and NBD_OPT_SET_META_CONTEXT with length-prefixed names', () => {
    const go = encodeGo('disk0');
    expect(go.subarray(8, 16).toString('hex')).toBe('00000007' + '0000000b');
    expect(go.subarray(16).toString('hex')).toBe(
      `00000005${Buffer.from('disk0').toString('hex')}0000`,
    );
    const meta = encodeSetMetaContext('d', ['base:allocation']);
    expect(meta.readUInt32BE(8)).toBe(10);
    const data = meta.subarray(16);
    expect(data.readUInt32BE(0)).toBe(1);
    expect(data.readUInt32BE(5)).toBe(1);
    expect(data.readUInt32BE(9)).toBe(15);
    expect(data.subarray(13).toString()).toBe('base:allocation');
  });

  it('decodes option replies, reply headers, block status and error chunks', () => {
    const reply = Buffer.alloc(20);
    reply.writeBigUInt64BE(REPLY_MAGIC, 0);
    reply.writeUInt32BE(7, 8);
    reply.writeUInt32BE(3, 12);
    reply.writeUInt32BE(12, 16);
    expect(decodeOptionReply(reply)).toEqual({ option: 7, type: 3, length: 12 });
    reply.writeBigUInt64BE(1n, 0);
    expect(() => decodeOptionReply(reply)).toThrow(/bad option reply magic/);

    expect(replyHeaderRest(SIMPLE_REPLY_MAGIC)).toBe(12);
    expect(replyHeaderRest(STRUCTURED_REPLY_MAGIC)).toBe(16);
    expect(() => replyHeaderRest(0x1234)).toThrow(/bad reply magic/);
    const rest = Buffer.alloc(16);
    rest.writeUInt16BE(1, 0);
    rest.writeUInt16BE(5, 2);
    rest.writeBigUInt64BE(9n, 4);
    rest.writeUInt32BE(20, 12);
    expect(decodeReplyHeader(STRUCTURED_REPLY_MAGIC, rest)).toEqual({
      kind: 'structured',
      flags: 1,
      type: 5,
      cookie: 9n,
      length: 20,
    });

    const status = Buffer.alloc(20);
    status.writeUInt32BE(2, 0);
    status.writeUInt32BE(65536, 4);
    status.writeUInt32BE(1, 8);
    status.writeUInt32BE(131072, 12);
    status.writeUInt32BE(0, 16);
    expect(decodeBlockStatus(status)).toEqual({
      context: 2,
      extents: [
        { length: 65536, flags: 1 },
        { length: 131072, flags: 0 },
      ],
    });

    const err = Buffer.concat([Buffer.from([0, 0, 0, 5, 0, 3]), Buffer.from('EIO')]);
    expect(decodeErrorChunk(err)).toEqual({ errno: 5, message: 'EIO' });
  });

  it('hands out exactly the bytes asked for across chunk boundaries', () => {
    const q = new ByteQueue();
    q.push(Buffer.from([1, 2, 3]));
    q.push(Buffer.from([4, 5]));
    expect([...q.take(4)]).toEqual([1, 2, 3, 4]);
    expect(q.length).toBe(1);
    q.push(Buffer.from([6]));
    expect([...q.take(2)]).toEqual([5, 6]);
    expect(() => q.take(1)).toThrow(/take\(1\) with 0 bytes/);
  });

  it('moves queued bytes straight into a target buffer, partly when fewer are queued', () => {
    const q = new ByteQueue();
    for (let i = 0; i < 200; i++) q.push(Buffer.from([i, i + 1]));
    const target = Buffer.alloc(300, 0xff);
    expect(q.takeInto(target, 10, 280)).toBe(280);
    expect(target[9]).toBe(0xff);
    expect([...target.subarray(10, 14)]).toEqual([0, 1, 1, 2]);
    expect(target[289]).toBe(140);
    expect(q.length).toBe(120);
    // Fewer queued than asked: moves what is there, and take() still sees the order.
    expect(q.takeInto(Buffer.alloc(200), 0, 200)).toBe(120);
    q.push(Buffer.from([7, 8, 9]));
    expect([...q.take(2)]).toEqual([7, 8]);
    expect(q.length).toBe(1);
  });
});
