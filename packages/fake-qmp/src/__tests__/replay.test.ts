import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, isQmpCommandError } from '@qmpkit/transport';
import { afterEach, describe, expect, it } from 'vitest';
import { isReplayDivergenceError } from '../errors.js';
import { formatConversation, importReplies, parseConversation } from '../replay/conversation.js';
import { replaceReplyId } from '../replay/player.js';
import { conversationFile, recordConversation } from '../replay/recorder.js';
import { createFakeQmp, type FakeQmp } from '../server/fake.js';
import { rawClient } from './helpers.js';

const fakes: FakeQmp[] = [];
async function fake(options: Parameters<typeof createFakeQmp>[0] = {}): Promise<FakeQmp> {
  const f = await createFakeQmp({ storage: 'memory', ...options });
  fakes.push(f);
  return f;
}
afterEach(async () => {
  for (const f of fakes.splice(0)) await f.close();
});

async function session(address: Parameters<typeof connect>[0]) {
  const qmp = await connect(address);
  const stop = qmp.expectEvent('STOP');
  await qmp.execute('stop');
  await stop.wait({ timeout: 1000 });
  const status = await qmp.execute('query-status');
  const error = await qmp.execute('blockdev-del', { 'node-name': 'x' }).catch((e: unknown) => e);
  await qmp.close();
  return { status, error };
}

describe('record and replay', () => {
  it('records a session through the proxy and replays it to a client with other ids', async () => {
    const upstream = await fake({ listen: { unix: true } });
    const recorder = await recordConversation({ upstream: upstream.address });
    const finished = recorder.next();
    const live = await session(recorder.address);
    const conversation = await finished;
    await recorder.close();
    expect(conversation.records[0]).toMatchObject({ dir: 'out' });
    expect(
      conversation.records.filter((r) => r.dir === 'in').map((r) => JSON.parse(r.line).execute),
    ).toEqual(['qmp_capabilities', 'stop', 'query-status', 'blockdev-del']);
    const text = formatConversation(conversation);
    const replayed = await fake({ replay: parseConversation(text, 'mem.qmp') });
    const again = await session(replayed.pair());
    expect(again.status).toEqual(live.status);
    expect(isQmpCommandError(again.error) && again.error.desc).toBe(
      "Failed to find node with node-name='x'",
    );
    expect(() => replayed.verify()).not.toThrow();
  });

  it('writes each connection to its own file: the second does not overwrite the first', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fake-record-'));
    try {
      const upstream = await fake({ listen: { unix: true } });
      const file = path.join(dir, 'session.qmp');
      const recorder = await recordConversation({ upstream: upstream.address, file });
      let finished = recorder.next();
      await session(recorder.address);
      await finished;
      finished = recorder.next();
      const qmp = await connect(recorder.address);
      await qmp.execute('query-name');
      await qmp.close();
      await finished;
      await recorder.close();
      const second = path.join(dir, 'session-2.qmp');
      expect(recorder.files).toEqual([file, second]);
      const first = parseConversation(readFileSync(file, 'utf8'), file);
      const other = parseConversation(readFileSync(second, 'utf8'), second);
      const commands = (c: typeof first) =>
        c.records.filter((r) => r.dir === 'in').map((r) => JSON.parse(r.line).execute);
      expect(commands(first)).toEqual(['qmp_capabilities', 'stop', 'query-status', 'blockdev-del']);
      expect(commands(other)).toEqual(['qmp_capabilities', 'query-name']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the n-th connection file beside the first', () => {
    expect(conversationFile('/r/session.qmp', 1)).toBe('/r/session.qmp');
    expect(conversationFile('/r/session.qmp', 2)).toBe('/r/session-2.qmp');
    expect(conversationFile('/r/log', 3)).toBe('/r/log-3');
    expect(conversationFile('/r.d/a.b.jsonl', 10)).toBe('/r.d/a.b-10.jsonl');
    expect(() => conversationFile('/r/x', 0)).toThrow('connection numbers start at 1');
  });

  it('reports divergence: which command, expected vs got; the recording does not advance', async () => {
    const upstream = await fake({ listen: { unix: true } });
    const recorder = await recordConversation({ upstream: upstream.address });
    const finished = recorder.next();
    await session(recorder.address);
    const conversation = await finished;
    await recorder.close();
    const replayed = await fake({ replay: conversation });
    const qmp = await connect(replayed.pair());
    await expect(qmp.execute('cont')).rejects.toThrow(
      'qmpkit fake-qmp replay: command 2: expected execute stop {}, got execute cont {}',
    );
    await qmp.execute('stop');
    await qmp.close();
    let error: unknown;
    try {
      replayed.verify();
    } catch (e) {
      error = e;
    }
    expect(isReplayDivergenceError(error)).toBe(true);
    if (!isReplayDivergenceError(error)) throw error;
    expect(error.divergences).toHaveLength(1);
    expect(error.divergences[0]).toMatchObject({
      index: 1,
      expected: expect.stringContaining('"stop"'),
    });
    expect(error.divergences[0]?.got).toContain('"cont"');
    expect(error.leftover).toBe(2);
    expect(error.message).toContain('2 recorded command(s) were never sent');
  });

  it('imports libvirt .replies recordings (pretty JSON, command then reply) and serves them', async () => {
    const replies = [
      '{\n  "execute": "qmp_capabilities",\n  "id": "libvirt-1"\n}\n',
      '{\n  "return": {\n  },\n  "id": "libvirt-1"\n}\n',
      '{\n  "execute": "query-version",\n  "id": "libvirt-2"\n}\n',
      '{\n  "return": {\n    "qemu": {\n      "micro": 0,\n      "minor": 1,\n      "major": 9\n    },\n    "package": "v9.1.0"\n  },\n  "id": "libvirt-2"\n}\n',
      '{\n  "execute": "query-kvm",\n  "id": "libvirt-3"\n}\n',
      '{\n  "error": {\n    "class": "GenericError",\n    "desc": "nope"\n  },\n  "id": "libvirt-3"\n}\n',
    ].join('\n');
    const conversation = await importReplies(replies, 'caps_9.1.0_x86_64.replies');
    expect(conversation.qemu).toEqual({ major: 9, minor: 1, micro: 0 });
    const replayed = await fake({ replay: conversation });
    const c = rawClient(replayed);
    expect((await c.waitLines(1))[0]).toBe(
      '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 1, "major": 9}, "package": "v9.1.0"}, "capabilities": ["oob"]}}',
    );
    c.send(
      '{"execute":"qmp_capabilities","id":1}\n{"execute":"query-version","id":2}\n{"execute":"query-kvm","id":3}\n',
    );
    expect((await c.waitLines(4)).slice(1)).toEqual([
      '{"return": {}, "id": 1}',
      '{"return": {"qemu": {"micro": 0, "minor": 1, "major": 9}, "package": "v9.1.0"}, "id": 2}',
      '{"id": 3, "error": {"class": "GenericError", "desc": "nope"}}',
    ]);
    replayed.verify();
  });

  it('substitutes reply ids in QEMU line shapes', () => {
    expect(replaceReplyId('{"return": {}, "id": "libvirt-1"}', 'libvirt-1', 7)).toBe(
      '{"return": {}, "id": 7}',
    );
    expect(replaceReplyId('{"id": 1, "error": {"class": "X", "desc": "y"}}', 1, undefined)).toBe(
      '{"error": {"class": "X", "desc": "y"}}',
    );
    expect(replaceReplyId('{"return": {}}', undefined, 'a')).toBe('{"return": {}, "id": "a"}');
    expect(replaceReplyId('{"timestamp": {}, "event": "STOP"}', 1, 2)).toBe(
      '{"timestamp": {}, "event": "STOP"}',
    );
  });

  it('refuses a .replies file that is not one, with its location', async () => {
    await expect(
      importReplies('{"execute": "x"}\n\n{"bogus": 1}\n', 'bad.replies'),
    ).rejects.toThrow(/bad\.replies:3: entry 2: expected the reply to 'x'/);
  });
});
