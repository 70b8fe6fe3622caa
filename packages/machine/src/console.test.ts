import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Console } from './console.js';
import { isConsoleClosedError, isConsoleTimeoutError } from './errors.js';
import { ByteRing } from './ring.js';

const root = mkdtempSync(path.join(tmpdir(), 'qmpkit-machine-console-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A connected pair of sockets: `ours` goes to the console, `guest` plays QEMU's end. */
async function pair(): Promise<{ ours: net.Socket; guest: net.Socket }> {
  const file = path.join(root, `s${++n}.sock`);
  const accepted = new Promise<net.Socket>((resolve) => {
    const server = net.createServer((s) => {
      server.close();
      resolve(s);
    });
    server.listen(file);
  });
  await new Promise((r) => setTimeout(r, 5));
  const ours = net.connect(file);
  await new Promise((resolve) => ours.once('connect', resolve));
  return { ours, guest: await accepted };
}

async function attached(capacity = 1024) {
  const { ours, guest } = await pair();
  const console = new Console('ser0', 'utf8', capacity);
  console.attach(ours);
  return { console, guest };
}

describe('Console', () => {
  it('expects strings and RegExps, consuming up to the end of each match', async () => {
    const { console, guest } = await attached();
    guest.write('G=00000001\r\nC=00000001\r\nC=000');
    const hello = await console.expect('G=');
    expect(hello).toEqual({ match: 'G=', before: '', groups: [], named: {} });
    const line = await console.expect(/C=(?<n>[0-9A-F]{8})\r\n/g);
    expect(line.before).toBe('00000001\r\n');
    expect(line.groups).toEqual(['00000001']);
    expect(line.named).toEqual({ n: '00000001' });
    const next = console.expect(/C=([0-9A-F]{8})\r\n/);
    guest.write('00002\r\n');
    expect((await next).groups[0]).toBe('00000002');
    expect(console.read()).toBe('');
    guest.destroy();
  });

  it('serves waiters in call order', async () => {
    const { console, guest } = await attached();
    const a = console.expect('one');
    const b = console.expect('two');
    guest.write('two one two');
    expect((await a).before).toBe('two ');
    expect((await b).before).toBe(' ');
    guest.destroy();
  });

  it('times out with the unread text, and keeps that text', async () => {
    const { console, guest } = await attached();
    guest.write('booting…');
    await new Promise((r) => setTimeout(r, 20));
    const error = await console.expect(/login:/, { timeout: 30 }).catch((e: unknown) => e);
    expect(isConsoleTimeoutError(error)).toBe(true);
    if (isConsoleTimeoutError(error)) {
      expect(error.unread).toBe('booting…');
      expect(error.message).toContain('/login:/');
    }
    expect(console.peek()).toBe('booting…');
    guest.destroy();
  });

  it('rejects waiters when the connection closes, but still matches buffered text', async () => {
    const { console, guest } = await attached();
    const waiting = console.expect('never');
    guest.end('last words');
    const error = await waiting.catch((e: unknown) => e);
    expect(isConsoleClosedError(error)).toBe(true);
    expect(console.closed).toBe(true);
    expect((await console.expect('words')).before).toBe('last ');
    expect(isConsoleClosedError(await console.expect('more').catch((e: unknown) => e))).toBe(true);
    expect(isConsoleClosedError(await console.write('x').catch((e: unknown) => e))).toBe(true);
  });

  it('writes to the guest', async () => {
    const { console, guest } = await attached();
    const got = new Promise<string>((resolve) =>
      guest.once('data', (b: Buffer) => resolve(b.toString())),
    );
    await console.write('hi\r');
    expect(await got).toBe('hi\r');
    guest.destroy();
  });

  it('saves and restores the unread buffer (what a snapshot must bring back)', async () => {
    const { console, guest } = await attached();
    guest.write('before the snapshot\n');
    await console.expect('before');
    const saved = console.state();
    expect(saved).toEqual({ chardev: 'ser0', unread: ' the snapshot\n' });
    await console.expect('snapshot');
    expect(console.peek()).toBe('\n');
    const waiting = console.expect('the snapshot');
    console.restore(saved.unread);
    expect((await waiting).before).toBe(' ');
    guest.destroy();
  });

  it('keeps at most `capacity` unread characters and counts what it dropped', async () => {
    const { console, guest } = await attached(10);
    guest.write('0123456789abcdef');
    await new Promise((r) => setTimeout(r, 20));
    expect(console.peek()).toBe('6789abcdef');
    expect(console.dropped).toBe(6);
    guest.destroy();
  });

  it('decodes UTF-8 split across chunks', async () => {
    const { console, guest } = await attached();
    const bytes = Buffer.from('é€', 'utf8');
    guest.write(bytes.subarray(0, 1));
    await new Promise((r) => setTimeout(r, 10));
    guest.write(bytes.subarray(1));
    expect((await console.expect('€')).before).toBe('é');
    guest.destroy();
  });
});

describe('ByteRing', () => {
  it('keeps the last bytes', () => {
    const ring = new ByteRing(8);
    ring.push(Buffer.from('abc'));
    ring.push(Buffer.from('defgh'));
    expect(ring.text()).toBe('abcdefgh');
    ring.push(Buffer.from('ij'));
    expect(ring.text()).toBe('cdefghij');
    expect(ring.dropped).toBe(2);
    ring.push(Buffer.from('0123456789'));
    expect(ring.text()).toBe('23456789');
    expect(ring.length).toBe(8);
    expect(() => new ByteRing(0)).toThrow(RangeError);
  });
});
