/**
 * A minimal JSON-lines client over a UNIX socket, for QMP and the guest agent in this
 * package's tests and benchmark (the typed clients live in transport and guest-agent).
 * Agent replies to `guest-sync-delimited` start with a 0xFF byte, which is dropped here.
 */
import { connect, type Socket } from 'node:net';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export class JsonLineClient {
  private buffer = Buffer.alloc(0);
  private readonly messages: JsonObject[] = [];
  private waiters: (() => void)[] = [];
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      for (;;) {
        const ff = this.buffer.indexOf(0xff);
        const nl = this.buffer.indexOf(0x0a);
        if (ff >= 0 && (nl < 0 || ff < nl)) {
          this.buffer = this.buffer.subarray(ff + 1); // sync delimiter: what came before is stale
          continue;
        }
        if (nl < 0) break;
        const line = this.buffer.subarray(0, nl).toString('utf8').trim();
        this.buffer = this.buffer.subarray(nl + 1);
        if (line !== '') this.messages.push(JSON.parse(line) as JsonObject);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    // errors end in 'close', which wakes waiters; nothing else to do with them here
    socket.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Connects, retrying while the listener does not exist yet, until `deadline` (epoch ms). */
  static async connect(path: string, deadline: number): Promise<JsonLineClient> {
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path, () => resolve(s));
          s.once('error', reject);
        });
        return new JsonLineClient(socket);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  send(message: JsonObject): void {
    this.socket.write(`${JSON.stringify(message)}\n`);
  }

  /** The next message (in arrival order) that `match` accepts; earlier non-matching ones are dropped. */
  async next(match: (m: JsonObject) => boolean, deadline: number): Promise<JsonObject> {
    for (;;) {
      while (this.messages.length > 0) {
        const m = this.messages.shift() as JsonObject;
        if (match(m)) return m;
      }
      if (this.closed) throw new Error('the socket closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
