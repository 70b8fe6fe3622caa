/**
 * A recording proxy: clients connect to it, it connects to a real QEMU and passes bytes
 * through unchanged in both directions, recording every line (with its time) as a
 * conversation. QEMU serves one QMP client at a time, and so does the proxy: each client
 * connection becomes one conversation.
 *
 * With `file`, every conversation gets its own file, numbered by connection order: the first
 * is `file` itself, the second `<name>-2<ext>`, the third `<name>-3<ext>`, … (a conversation
 * file holds exactly one conversation, which is what replay serves to one client).
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseAddress } from '@qmpkit/transport';
import { FakeQmpUsageError } from '../errors.js';
import { type Conversation, type ConversationRecord, formatConversation } from './conversation.js';
import { parseLine } from './player.js';

export interface RecorderOptions {
  /** The real QEMU's QMP address: `unix:/path` or `tcp:host:port`. */
  readonly upstream: string;
  /** Where the proxy listens: `{ unix: path }` or `{ tcp: { host, port } }` (default: loopback, a free port). */
  readonly listen?:
    | { readonly unix: string }
    | { readonly tcp: { readonly host?: string; readonly port?: number } };
  /**
   * Where the first connection's conversation is written when it finishes; later connections
   * go to numbered siblings (`conversationFile(file, n)`), so none overwrites another.
   */
  readonly file?: string;
  /** Free text stored in the conversation header. */
  readonly source?: string;
}

export interface Recorder {
  /** Address clients connect to (`unix:…` or `tcp:…`). */
  readonly address: string;
  /** Finished conversations, one per client connection. */
  readonly conversations: readonly Conversation[];
  /** Files written so far, in the order they were written (empty without `file`). */
  readonly files: readonly string[];
  /** Resolves with the next conversation that finishes. */
  next(): Promise<Conversation>;
  close(): Promise<void>;
}

class LineSplitter {
  private rest = '';
  constructor(private readonly emit: (line: string) => void) {}
  push(chunk: Buffer): void {
    const text = this.rest + chunk.toString('utf8');
    const parts = text.split('\n');
    this.rest = parts.pop() ?? '';
    for (const part of parts) {
      const line = part.endsWith('\r') ? part.slice(0, -1) : part;
      if (line.trim() !== '') this.emit(line);
    }
  }
  end(): void {
    if (this.rest.trim() !== '') this.emit(this.rest);
    this.rest = '';
  }
}

/**
 * The file of the `n`-th connection (1-based) of a recorder given `file`: `file` itself for
 * the first, then `<name>-<n><ext>` beside it (`session.qmp`, `session-2.qmp`, …).
 */
export function conversationFile(file: string, n: number): string {
  if (!Number.isInteger(n) || n < 1)
    throw new FakeQmpUsageError(`connection numbers start at 1, got ${n}`);
  if (n === 1) return file;
  const ext = path.extname(file);
  return `${file.slice(0, file.length - ext.length)}-${n}${ext}`;
}

export async function recordConversation(options: RecorderOptions): Promise<Recorder> {
  const upstream = parseAddress(options.upstream);
  if (upstream.kind !== 'unix' && upstream.kind !== 'tcp')
    throw new FakeQmpUsageError('the recorder connects to unix: or tcp: QMP addresses');
  const conversations: Conversation[] = [];
  const waiters: ((c: Conversation) => void)[] = [];
  const files: string[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((client) => {
    const number = ++connections;
    sockets.add(client);
    const qemu =
      upstream.kind === 'unix'
        ? net.connect(upstream.path)
        : net.connect({ host: upstream.host, port: upstream.port });
    sockets.add(qemu);
    const started = performance.now();
    const records: ConversationRecord[] = [];
    const t = () => Math.round((performance.now() - started) * 1000) / 1000;
    const inbound = new LineSplitter((line) => records.push({ dir: 'in', t: t(), line }));
    const outbound = new LineSplitter((line) => records.push({ dir: 'out', t: t(), line }));
    client.on('data', (d: Buffer) => {
      inbound.push(d);
      qemu.write(d);
    });
    qemu.on('data', (d: Buffer) => {
      outbound.push(d);
      client.write(d);
    });
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      inbound.end();
      outbound.end();
      client.destroy();
      qemu.destroy();
      sockets.delete(client);
      sockets.delete(qemu);
      const greeting = records.find((r) => r.dir === 'out');
      const version = greeting
        ? (parseLine(greeting.line) as
            | { QMP?: { version?: { qemu?: { major: number; minor: number; micro: number } } } }
            | undefined)
        : undefined;
      const qemuVersion = version?.QMP?.version?.qemu;
      const conversation: Conversation = {
        format: 'qmpkit-conversation',
        version: 1,
        ...(qemuVersion
          ? {
              qemu: {
                major: qemuVersion.major,
                minor: qemuVersion.minor,
                micro: qemuVersion.micro,
              },
            }
          : {}),
        source: options.source ?? `recorded from ${options.upstream}`,
        records,
      };
      conversations.push(conversation);
      if (options.file !== undefined) {
        const file = conversationFile(options.file, number);
        writeFileSync(file, formatConversation(conversation));
        files.push(file);
      }
      for (const w of waiters.splice(0)) w(conversation);
    };
    for (const s of [client, qemu]) {
      s.on('error', finish);
      s.on('close', finish);
    }
  });
  const listen = options.listen ?? { tcp: {} };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('unix' in listen) server.listen(listen.unix, resolve);
    else
      server.listen({ host: listen.tcp.host ?? '127.0.0.1', port: listen.tcp.port ?? 0 }, resolve);
  });
  const info = server.address();
  const address =
    typeof info === 'string'
      ? `unix:${info}`
      : `tcp:${info?.address ?? '127.0.0.1'}:${info?.port ?? 0}`;
  return {
    address,
    conversations,
    files,
    next: () => new Promise<Conversation>((resolve) => waiters.push(resolve)),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
