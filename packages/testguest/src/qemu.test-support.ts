/**
 * A bare-bones QMP client for this package's real-QEMU tests (enough for `query-kvm` and
 * `pmemsave`; the real client lives in the transport package, which this package must not
 * depend on). Skip rules, temp dirs and cleanup are in `./test-support/`. Not published.
 */
import { connect, type Socket } from 'node:net';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A minimal line-oriented QMP client over a UNIX socket. */
export class MiniQmp {
  private readonly socket: Socket;
  private buffer = '';
  private readonly pending: ((message: { [key: string]: Json }) => void)[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (;;) {
        const end = this.buffer.indexOf('\n');
        if (end < 0) break;
        const line = this.buffer.slice(0, end).trim();
        this.buffer = this.buffer.slice(end + 1);
        if (!line) continue;
        const message = JSON.parse(line) as { [key: string]: Json };
        if ('event' in message) continue;
        this.pending.shift()?.(message);
      }
    });
  }

  /** Connects (retrying while QEMU creates the socket) and negotiates capabilities. */
  static async connect(path: string, timeoutMs = 10_000): Promise<MiniQmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path, () => resolve(s));
          s.once('error', reject);
        });
        const qmp = new MiniQmp(socket);
        await qmp.next(); // greeting
        await qmp.execute('qmp_capabilities');
        return qmp;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private next(): Promise<{ [key: string]: Json }> {
    return new Promise((resolve) => this.pending.push(resolve));
  }

  /** Executes a command; resolves with `return`, rejects with the QMP error. */
  async execute(command: string, args?: { [key: string]: Json }): Promise<Json> {
    const reply = this.next();
    this.socket.write(
      `${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`,
    );
    const message = await reply;
    if ('error' in message) throw new Error(`${command}: ${JSON.stringify(message.error)}`);
    return message.return ?? null;
  }

  close(): void {
    this.socket.destroy();
  }
}
