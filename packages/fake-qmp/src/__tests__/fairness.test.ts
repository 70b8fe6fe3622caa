/**
 * One client cannot stall the others or the fake's memory: input is handled in bounded
 * slices per turn, and a client whose replies pile up unread is not read from until they
 * drain. Exact by construction (orderings and byte counts), never timing.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { INPUT_PIECE_BYTES, INPUT_SLICE_MESSAGES } from '../server/connection.js';
import { createFakeQmp, type FakeQmp } from '../server/fake.js';
import { negotiated } from './helpers.js';

const fakes: FakeQmp[] = [];
async function fake(options: Parameters<typeof createFakeQmp>[0] = {}): Promise<FakeQmp> {
  const f = await createFakeQmp({ storage: 'memory', machine: 'none', ...options });
  fakes.push(f);
  return f;
}
afterEach(async () => {
  for (const f of fakes.splice(0)) await f.close();
});

const immediate = () => new Promise<void>((r) => setImmediate(r));

describe('fairness between clients', () => {
  it("another client's command is answered before one client's 512 KiB of garbage is consumed", async () => {
    // Regression: the whole garbage was handled in one go (1.3 s on a busy host) before the
    // other client's command was even read.
    const f = await fake();
    const a = await negotiated(f);
    const b = await negotiated(f);
    const garbage = 'garbage\n'.repeat(65536); // 512 KiB, one parse error reply per line
    a.send(`${garbage}{"execute":"query-status","id":"a-end"}`);
    b.send('{"execute":"query-status","id":"b"}');
    await b.waitLines(3, 30_000);
    await a.waitLines(2 + 65536 + 1, 60_000);
    const order = f.history.map((e) => e.id).filter((id) => id === 'a-end' || id === 'b');
    expect(order).toEqual(['b', 'a-end']);
    expect(a.lines.at(-1)).toContain('"a-end"');
    expect(a.lines.slice(2, 4)).toEqual([
      `{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'garbage'"}}`,
      `{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'garbage'"}}`,
    ]);
  }, 90_000);

  it('stops reading a client whose replies are not read, and resumes when they drain', async () => {
    const f = await fake();
    let replies = 0;
    let backlog = 0;
    let paused = false;
    let drained: (() => void) | undefined;
    const HWM = 64 * 1024;
    const connection = f.attach('memory', {
      write: (text) => {
        if (text.includes('"id": 1}')) replies++;
        backlog += text.length;
      },
      close: () => {},
      backlogged: () => backlog > HWM,
      whenWritable: (fn) => {
        drained = fn;
      },
      pause: () => {
        paused = true;
      },
      resume: () => {
        paused = false;
      },
    });
    await immediate();
    connection.data(Buffer.from('{"execute":"qmp_capabilities"}'));
    const command = '{"execute":"query-status","id":1}';
    const flood = Buffer.from(command.repeat(20_000)); // 680 KB
    connection.data(flood);
    for (let i = 0; i < 50; i++) await immediate();
    // Output stopped right after passing the mark (at most one slice of replies beyond it);
    // the input waits, held as it came, and the transport is told to stop reading.
    const reply =
      '{"return": {"status": "running", "singlestep": false, "running": true}, "id": 1}\r\n';
    // A turn ends after INPUT_SLICE_MESSAGES messages, checked between 1 KiB pieces.
    const perSlice =
      (INPUT_SLICE_MESSAGES + Math.ceil(INPUT_PIECE_BYTES / command.length)) * reply.length;
    expect(backlog).toBeGreaterThan(HWM);
    expect(backlog).toBeLessThanOrEqual(HWM + perSlice);
    expect(paused).toBe(true);
    expect(connection.pendingInputBytes).toBeGreaterThan(flood.length - 2 * HWM);
    // The client reads: everything is answered, then reading resumes.
    let rounds = 0;
    while (connection.pendingInputBytes > 0) {
      if (drained) {
        const fn = drained;
        drained = undefined;
        backlog = 0;
        rounds++;
        fn();
      }
      await immediate();
    }
    expect(replies).toBe(20_000);
    expect(paused).toBe(false);
    expect(rounds).toBeGreaterThan(10);
  }, 60_000);

  it('heap use returns to within 4 MiB of where it was after a slow-consumer flood (child with --expose-gc)', async () => {
    const script = path.join(import.meta.dirname, 'fixtures', 'flood-memory.ts');
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--conditions=@qmpkit/source', '--import', 'tsx', script, `${64 << 20}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, err }).toEqual({ code: 0, err: '' });
    const result = JSON.parse(out) as { before: number; during: number; after: number };
    const MiB = 1024 * 1024;
    // While the client does not read, the fake holds at most its socket's high-water mark of
    // replies and one slice of input (not the whole flood as replies).
    expect(result.during - result.before).toBeLessThan(4 * MiB);
    expect(result.after - result.before).toBeLessThan(4 * MiB);
  }, 120_000);
});
