/** `--trace` on `exec`, `events` and `shell` against the fake QMP server (issue #12 §4). */
import { PassThrough } from 'node:stream';
import { createFakeQmp, type FakeQmp } from '@qmpkit/fake-qmp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';

interface Traced {
  readonly dir: '>' | '<';
  readonly message: Record<string, unknown>;
}

/** The stderr lines of a trace, each parsed; anything else on stderr is returned apart. */
function wire(stderr: string): { traced: Traced[]; other: string[] } {
  const traced: Traced[] = [];
  const other: string[] = [];
  for (const line of stderr.split('\n')) {
    if (line === '') continue;
    const dir = line.slice(0, 2);
    if (dir === '> ' || dir === '< ') {
      traced.push({
        dir: dir[0] as '>' | '<',
        message: JSON.parse(line.slice(2)) as Record<string, unknown>,
      });
    } else other.push(line);
  }
  return { traced, other };
}

const sent = (traced: Traced[]) =>
  traced.filter((t) => t.dir === '>').map((t) => t.message.execute);

describe('--trace', () => {
  let fake: FakeQmp;
  beforeAll(async () => {
    fake = await createFakeQmp({ listen: { unix: true }, storage: 'memory', paused: true });
  });
  afterAll(async () => {
    await fake?.close();
  });

  it('exec prints every line sent and received on stderr, stdout unchanged', async () => {
    const io = recordingIo();
    const code = await main(['exec', '--trace', '--no-pretty', fake.address, 'query-status'], io);
    expect(code).toBe(0);
    expect(JSON.parse(io.out())).toMatchObject({ status: 'prelaunch' });
    const { traced, other } = wire(io.err());
    expect(other).toEqual([]);
    expect(traced[0]).toMatchObject({ dir: '<', message: { QMP: {} } });
    expect(sent(traced)).toEqual(['qmp_capabilities', 'query-qmp-schema', 'query-status']);
    const query = traced.find((t) => t.message.execute === 'query-status');
    const reply = traced.find((t) => t.dir === '<' && t.message.id === query?.message.id);
    expect(reply?.message.return).toMatchObject({ status: 'prelaunch' });
  });

  it('exec without --trace prints nothing on stderr', async () => {
    const io = recordingIo();
    expect(await main(['exec', fake.address, 'query-status'], io)).toBe(0);
    expect(io.err()).toBe('');
  });

  it('events prints the handshake and each event as it arrives', async () => {
    const io = recordingIo();
    // Emit once the command says it is listening (its ready line on stderr).
    io.stderr.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('qmpkit: listening')) fake.emit('RESUME');
    });
    const code = await main(['events', '--trace', '--count', '1', fake.address], io);
    expect(code).toBe(0);
    expect(JSON.parse(io.out())).toMatchObject({ event: 'RESUME' });
    const { traced, other } = wire(io.err());
    expect(other).toEqual([`qmpkit: listening on ${fake.address}`]);
    expect(traced.map((t) => t.dir)).toEqual(['<', '>', '<', '<']);
    expect(sent(traced)).toEqual(['qmp_capabilities']);
    expect(traced[3]?.message).toMatchObject({ event: 'RESUME' });
  });

  it('shell prints the wire of each command line', async () => {
    const stdin = new PassThrough();
    stdin.end('query-name\n');
    const io = { ...recordingIo(), stdin };
    const code = await main(['shell', '--no-history', '--trace', fake.address], io);
    expect(code).toBe(0);
    const { traced } = wire(io.err());
    expect(sent(traced)).toEqual(['qmp_capabilities', 'query-qmp-schema', 'query-name']);
    const query = traced.find((t) => t.message.execute === 'query-name');
    expect(traced.at(-1)).toMatchObject({ dir: '<', message: { id: query?.message.id } });
  });
});
