/** Bad input: what a misbehaving client does must not take the server down. */
import { connect } from '@qmpkit/transport';
import { afterEach, describe, expect, it } from 'vitest';
import { isConversationFileError } from '../errors.js';
import { parseConversation } from '../replay/conversation.js';
import { createFakeQmp, type FakeQmp } from '../server/fake.js';
import { negotiated, rawClient, rawSocket } from './helpers.js';

const fakes: FakeQmp[] = [];
async function fake(options: Parameters<typeof createFakeQmp>[0] = {}): Promise<FakeQmp> {
  const f = await createFakeQmp({ storage: 'memory', ...options });
  fakes.push(f);
  return f;
}
afterEach(async () => {
  for (const f of fakes.splice(0)) await f.close();
});

describe('bad input', () => {
  it('reads QMP as a JSON stream: no newline needed, objects back to back, split anywhere', async () => {
    // Regression: the fake waited for a newline, so QEMU's Python client (which sends
    // none) hung in negotiation.
    const f = await fake();
    const c = rawClient(f);
    await c.waitLines(1);
    c.send('{"execute":"qmp_capabilities"}');
    expect(await c.waitLines(2)).toEqual([expect.stringContaining('"QMP"'), '{"return": {}}']);
    c.send('{"execute":"query-status","id":1}{"execute":"stop","id":2} {"execute":"cont","id":3}');
    await c.waitLines(7);
    c.send('{"execute":"query-st');
    c.send('atus","id":4}');
    await c.waitLines(8);
    expect(c.lines.slice(2).map((l) => l.replace(/"timestamp": \{[^}]*\}/, 'T'))).toEqual([
      '{"return": {"status": "running", "singlestep": false, "running": true}, "id": 1}',
      '{T, "event": "STOP"}',
      '{"return": {}, "id": 2}',
      '{T, "event": "RESUME"}',
      '{"return": {}, "id": 3}',
      '{"return": {"status": "running", "singlestep": false, "running": true}, "id": 4}',
    ]);
  });

  it('garbage gets QEMU parse errors and the client can go on', async () => {
    const f = await fake();
    const c = await negotiated(f);
    c.send('\u0000\u00ff garbage }{ [1,,] "unterminated\n{"execute":"query-status","id":"ok"}\n');
    await c.waitLines(6);
    // The same line is in the contract scenario "malformed JSON", so QEMU says exactly this.
    expect(c.lines.slice(2)).toEqual([
      `{"error": {"class": "GenericError", "desc": "JSON parse error, stray ''"}}`,
      `{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}`,
      `{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\\"unterminated\\n'"}}`,
      '{"return": {"status": "running", "singlestep": false, "running": true}, "id": "ok"}',
    ]);
  });

  it('a message over the limit: error and close for that client only; the server keeps serving', async () => {
    const f = await fake({ maxLineBytes: 1024, listen: { unix: true } });
    const big = await rawSocket(f.address);
    const other = await rawSocket(f.address);
    await big.waitLines(1);
    big.send(`{"execute":"query-status","id":"${'x'.repeat(2000)}"}\n`);
    await big.closed;
    expect(big.lines[1]).toBe(
      '{"error": {"class": "GenericError", "desc": "JSON token size limit exceeded"}}',
    );
    // Without a newline, too (a never-ending message).
    const endless = await rawSocket(f.address);
    await endless.waitLines(1);
    endless.send(`{"execute": "${'y'.repeat(3000)}`);
    await endless.closed;
    await other.waitLines(1);
    other.send('{"execute":"qmp_capabilities"}\n{"execute":"query-version"}\n');
    expect((await other.waitLines(3))[2]).toContain('"qemu"');
    other.destroy();
  });

  it('a client that disconnects in the middle of jobs does not disturb the fake', async () => {
    const f = await fake({ machine: 'none', timing: { jobMs: 20 } });
    const a = await negotiated(f);
    a.send(
      '{"execute":"blockdev-create","arguments":{"job-id":"c1","options":{"driver":"file","filename":"/m/a","size":0}}}\n',
    );
    await a.waitLines(5); // created, running, return
    a.destroy();
    // A job that holds the monitor (snapshot-save): disconnect before its reply.
    const b = await negotiated(f);
    b.send(
      '{"execute":"snapshot-save","arguments":{"job-id":"s1","tag":"t","vmstate":"nope","devices":["nope"]}}\n',
    );
    await b.waitLines(4); // created, running
    b.destroy();
    await new Promise((r) => setTimeout(r, 80));
    const qmp = await connect(f.pair());
    const jobs = await qmp.execute('query-jobs');
    expect(jobs.map((j) => [j.id, j.status, j.error])).toEqual([
      ['s1', 'concluded', "No block device node 'nope'"],
      ['c1', 'concluded', undefined],
    ]);
    await qmp.execute('job-dismiss', { id: 's1' });
    await qmp.close();
  });

  it('serves 200 concurrent clients', async () => {
    const f = await fake({ listen: { unix: true } });
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const qmp = await connect(f.address, { connectTimeout: 20_000 });
        const got: string[] = [];
        for (let k = 0; k < 5; k++) got.push((await qmp.execute('query-status')).status);
        await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': `n${i}` });
        await qmp.close();
        return got.every((s) => s === 'running');
      }),
    );
    expect(results.every(Boolean)).toBe(true);
    expect(f.model.block.all()).toHaveLength(200);
    expect(f.clients).toHaveLength(0);
  });

  it.each([
    ['', 'empty file (no header)'],
    ['{"format":"something-else"}\n', 'not a qmpkit conversation'],
    ['{"format":"qmpkit-conversation","version":2}\n', 'unsupported conversation version 2'],
    ['{"format":"qmpkit-conversation","version":1}\n{"dir":"in","line":"x"}\n', 'no greeting'],
    [
      '{"format":"qmpkit-conversation","version":1}\n{"dir":"out","line":"{}"}\n{"dir":"up","line":"x"}\n',
      '"dir" must be',
    ],
    ['{"format":"qmpkit-conversation","version":1}\n{"dir":"out","line":"{}"\n', 'not valid JSON'],
    [
      '{"format":"qmpkit-conversation","version":1}\n{"dir":"out","line":1}\n',
      '"line" must be a string',
    ],
    [
      '{"format":"qmpkit-conversation","version":1}\n{"dir":"out","line":"{}","t":-1}\n',
      '"t" must be',
    ],
  ])('a corrupt replay file is refused with its location: %j', (text, reason) => {
    let error: unknown;
    try {
      parseConversation(text, 'rec.qmp');
    } catch (e) {
      error = e;
    }
    expect(isConversationFileError(error)).toBe(true);
    expect((error as Error).message).toContain('rec.qmp');
    expect((error as Error).message).toContain(reason);
  });

  it('a client that sends before the greeting is answered after it', async () => {
    const f = await fake();
    f.inject({ kind: 'delay-greeting', ms: 30 });
    const c = rawClient(f);
    c.send('{"execute":"qmp_capabilities"}\n');
    const lines = await c.waitLines(2);
    expect(lines[0]).toMatch(/^\{"QMP"/);
    expect(lines[1]).toBe('{"return": {}}');
  });
});
