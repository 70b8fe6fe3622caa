/**
 * `qmpkit serve` against a real VM: the boot-sector test guest (qcow2, 32 MiB) under a
 * supervisor started by `qmpkit vm start`, the dashboard server in-process through `main`.
 * A WebSocket client speaks the control protocol as the page does: status, block graph,
 * subscription (events and run state), save and load with progress, the tree; and the bad
 * input: no token, a wrong token, a method pages may not use, a binary frame, the
 * supervisor going away. One VM for the file.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { toJSON } from '@qmpkit/devices';
import { createQcow2Guest } from '@qmpkit/testguest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type RecordingIo, recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import {
  QEMU_BINARY,
  qemuSuite,
  SKIP_REASON,
  skipQemu,
  testVmConfig,
} from '../qemu.test-support.js';
import type {
  BlockGraph,
  LoadSummary,
  SaveSummary,
  StatusResult,
  SubscribeNotice,
  TreeResult,
} from '../vm/protocol.js';
import { CLOSE } from './gate.js';

const suite = qemuSuite({ prefix: 'qmpkit-serve-' });

interface Closed {
  readonly code: number;
  readonly reason: string;
}

/** A page's connection: requests by id, progress lines kept per request. */
class Page {
  readonly ws: WebSocket;
  readonly closed: Promise<Closed>;
  readonly hello: Promise<{ protocol: number; pid: number }>;
  readonly progress = new Map<number, unknown[]>();
  readonly #waiting = new Map<number, (message: Record<string, unknown>) => void>();
  /** Called for every progress line (after it is recorded). */
  onProgress: (id: number, progress: unknown) => void = () => {};
  #next = 1;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.closed = new Promise((resolve) =>
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    this.hello = new Promise((resolve) => {
      this.ws.on('message', (data) => {
        const message = JSON.parse(String(data)) as Record<string, unknown>;
        if ('hello' in message) {
          resolve(message.hello as { protocol: number; pid: number });
          return;
        }
        const id = message.id as number;
        if ('progress' in message) {
          this.progress.set(id, [...(this.progress.get(id) ?? []), message.progress]);
          this.onProgress(id, message.progress);
          return;
        }
        this.#waiting.get(id)?.(message);
      });
    });
  }

  /** Sends a request; `answer` is its final line (`result` or `error`). */
  send(
    method: string,
    params: object = {},
  ): { id: number; answer: Promise<Record<string, unknown>> } {
    const id = this.#next++;
    const answer = new Promise<Record<string, unknown>>((resolve) =>
      this.#waiting.set(id, resolve),
    );
    this.ws.send(JSON.stringify({ id, method, params }));
    return { id, answer };
  }

  async call<T>(method: string, params: object = {}): Promise<T> {
    const answer = await this.send(method, params).answer;
    if ('error' in answer) throw new Error(JSON.stringify(answer.error));
    return answer.result as T;
  }
}

describe.skipIf(skipQemu)(`qmpkit serve (real VM)${SKIP_REASON}`, () => {
  const work = suite.dir;
  const dir = path.join(work, 'vm');
  let io: RecordingIo;
  let exited: Promise<number>;
  let url: string;
  let wsUrl: string;
  let page: Page;
  /** Notices of `page`'s subscription, in order. */
  const notices: SubscribeNotice[] = [];
  let subscription: { id: number; answer: Promise<Record<string, unknown>> };

  beforeAll(async () => {
    await createQcow2Guest(path.join(work, 'guest.qcow2'), { intervalMs: 50 });
    const vm = testVmConfig({ serial: false });
    const config = path.join(work, 'vm.json');
    writeFileSync(config, toJSON(vm));
    const startIo = recordingIo({ PATH: process.env.PATH });
    const code = await main(
      ['vm', 'start', config, '--dir', dir, '--accel', 'tcg', '--qemu', QEMU_BINARY.system],
      startIo,
    );
    if (code !== 0) throw new Error(`vm start failed: ${startIo.err()}`);

    io = recordingIo();
    exited = main(['serve', '--dir', dir, '--listen', '127.0.0.1:0'], io);
    let done = false;
    void exited.finally(() => {
      done = true;
    });
    while (!io.out().includes('\n') && !done) await new Promise((r) => setImmediate(r));
    url = io.out().trim();
    if (!url.startsWith('http://')) throw new Error(`serve did not start: ${io.err()}`);
    const parsed = new URL(url);
    wsUrl = `ws://${parsed.host}/ws?token=${parsed.searchParams.get('token')}`;
    page = new Page(wsUrl);
    page.onProgress = (id, progress) => {
      if (id === subscription?.id) notices.push(progress as SubscribeNotice);
    };
    await page.hello;
  });

  afterAll(async () => {
    page?.ws.close();
    io?.interrupt();
    await exited;
  });

  it('serves the page: HTML, the module and the stylesheet; nothing else', async () => {
    const html = await fetch(url);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(html.headers.get('content-security-policy')).toMatch(/^default-src 'self'; /);
    const text = await html.text();
    expect(text).toContain('<script type="module" src="app.js"></script>');
    expect(text).toContain('aria-label="Snapshot tree"');
    const js = await fetch(new URL('/app.js', url));
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await js.text()).toContain("request('subscribe'");
    expect((await fetch(new URL('/style.css', url))).status).toBe(200);
    expect((await fetch(new URL('/../vm/state.json', url))).status).toBe(404);
    expect((await fetch(new URL('/index.html', url), { method: 'POST' })).status).toBe(405);
  });

  it('status, block graph and an empty tree; the subscription starts with the status', async () => {
    const status = await page.call<StatusResult>('status');
    suite.trackPid(status.pid);
    suite.trackPid(status.qemu.pid);
    expect(status.qemu.runState).toBe('running');
    const graph = await page.call<BlockGraph>('graph');
    const byId = new Map(graph.nodes.map((n) => [n.id, n]));
    const edges = graph.edges.map((e) => [
      byId.get(e.parent)?.name,
      e.name,
      byId.get(e.child)?.name,
    ]);
    expect(edges).toContainEqual(['disk0', 'file', 'disk0-file']);
    expect(graph.nodes.some((n) => n.type === 'block-backend')).toBe(true);
    expect(await page.call<TreeResult>('tree')).toEqual({ current: null, roots: [] });

    subscription = page.send('subscribe');
    await page.call('status'); // answered after the subscription's first notice was sent
    expect(notices[0]).toMatchObject({ kind: 'status', status: { qemu: { runState: 'running' } } });
  });

  it('save and load with progress; events and run state reach the subscription, also after the load restarted QEMU', async () => {
    const save = page.send('save', { name: 's1' });
    const saved = (await save.answer).result as SaveSummary;
    expect(saved).toMatchObject({ name: 's1', strategy: 'external' });
    expect(page.progress.get(save.id)?.length).toBeGreaterThan(0);
    expect(page.progress.get(save.id)?.[0]).toHaveProperty('phase');
    // The save paused the guest and resumed it: both events and both run states.
    const seen = () => notices.flatMap((n) => (n.kind === 'event' ? [n.event.event] : []));
    expect(seen()).toEqual(expect.arrayContaining(['STOP', 'RESUME']));
    const busy = notices.flatMap((n) =>
      n.kind === 'status' ? [n.status.busy?.method ?? null] : [],
    );
    expect(busy).toContain('save');

    const load = page.send('load', { name: 's1' });
    const loaded = (await load.answer).result as LoadSummary;
    expect(loaded).toMatchObject({ name: 's1', strategy: 'external' });
    expect(page.progress.get(load.id)?.length).toBeGreaterThan(0);
    const status = await page.call<StatusResult>('status');
    suite.trackPid(status.qemu.pid);

    // A save on the new QEMU: its events still reach the page.
    const before = seen().length;
    await page.call<SaveSummary>('save', { name: 's2' });
    expect(seen().slice(before)).toEqual(expect.arrayContaining(['STOP', 'RESUME']));

    const tree = await page.call<TreeResult>('tree');
    expect(tree.roots.map((r) => [r.name, r.children.map((c) => c.name)])).toEqual([
      ['s1', ['s2']],
    ]);
    expect(tree.current).toBe(tree.roots[0]?.children[0]?.id);
  });

  it('refuses methods pages may not use, without passing them on', async () => {
    const answer = await page.send('stop').answer;
    expect(answer.error).toMatchObject({ name: 'ProtocolError' });
    expect(String((answer.error as { message: string }).message)).toMatch(
      /^'stop' is not available to pages \(status, list, tree/,
    );
    expect((await page.call<StatusResult>('status')).qemu.runState).toBe('running');
  });

  it('no token, a wrong token and a binary frame are closed with their codes', async () => {
    const bare = new Page(wsUrl.replace(/\?token=.*$/, ''));
    await new Promise((r) => bare.ws.once('open', r));
    bare.ws.send('{"id":1,"method":"status"}');
    expect((await bare.closed).code).toBe(CLOSE.badToken);
    const wrong = new Page(wsUrl.replace(/token=.*$/, 'token=nope'));
    expect(await wrong.closed).toEqual({ code: CLOSE.badToken, reason: 'wrong token' });
    const binary = new Page(wsUrl);
    await binary.hello;
    binary.ws.send(Buffer.from([1, 2, 3]));
    expect((await binary.closed).code).toBe(CLOSE.binary);
    expect(io.err()).toMatch(/closed \(4401\): wrong token/);
  });

  it('vm stop: the subscription ends and the page is closed with 4502', async () => {
    const stop = recordingIo({ PATH: process.env.PATH });
    expect(await main(['vm', 'stop', '--dir', dir], stop)).toBe(0);
    expect(await page.closed).toEqual({
      code: CLOSE.upstreamGone,
      reason: 'the VM supervisor closed the connection (VM stopped?)',
    });
    // A new page finds no supervisor.
    const late = new Page(wsUrl);
    const closed = await late.closed;
    expect(closed.code).toBe(CLOSE.upstreamGone);
    expect(closed.reason).toMatch(/^no VM supervisor at .*: (ENOENT|ECONNREFUSED)$/);
  });
});
