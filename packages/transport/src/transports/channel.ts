/**
 * What a `StreamChannel` uses of a Node `Duplex` (a `net.Socket`, a socketpair end, any other
 * Duplex; all of them fit). Typed here rather than imported from `node:stream` so the root
 * entry's declarations name no Node type: a web project without `@types/node` type-checks
 * against them.
 */
export interface DuplexLike {
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
  on(event: 'data', listener: (chunk: Uint8Array) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  write(chunk: string): unknown;
  end(): unknown;
  destroy(): unknown;
}

/** What a session needs from a transport: bytes in, lines out, one close notification. */
export interface QmpChannelHandlers {
  data(chunk: Uint8Array): void;
  /** Called once when the channel is gone; `error` when it ended abnormally. */
  close(error: Error | undefined): void;
}

export interface QmpChannel {
  /** The address for messages (`unix:/…`, `tcp:…`, `ws://…`, `duplex`). */
  readonly label: string;
  start(handlers: QmpChannelHandlers): void;
  /** Queues one encoded message. Writes made in the same tick go out in one syscall. */
  write(line: string): void;
  /** Graceful close: flush, then end. */
  end(): void;
  /** Immediate close. */
  destroy(): void;
}

/** A Node stream (net.Socket, a child's stdio socketpair end, or another Duplex) as a channel. */
export class StreamChannel implements QmpChannel {
  readonly label: string;
  private readonly stream: DuplexLike;
  private closedOnce = false;
  private error: Error | undefined;
  private handlers: QmpChannelHandlers | undefined;

  constructor(stream: DuplexLike, label = 'duplex') {
    this.stream = stream;
    this.label = label;
  }

  start(handlers: QmpChannelHandlers): void {
    this.handlers = handlers;
    const stream = this.stream;
    stream.on('data', handlers.data);
    stream.on('error', (error: Error) => {
      this.error ??= error;
      // Errors are followed by 'close' for sockets; make sure of it for other Duplexes.
      if (!stream.destroyed) stream.destroy();
    });
    // The peer ended its side: QMP has no half-close, so we are done too.
    stream.on('end', () => {
      if (!stream.destroyed) stream.destroy();
    });
    stream.on('close', () => this.finish());
    if (stream.destroyed) queueMicrotask(() => this.finish());
  }

  private finish(): void {
    if (this.closedOnce) return;
    this.closedOnce = true;
    this.handlers?.close(this.error);
  }

  write(line: string): void {
    const stream = this.stream;
    if (stream.destroyed || stream.writableEnded) return;
    // The first write of a tick goes out at once (lowest latency for sequential use);
    // later writes in the same tick are joined and sent as one write at the tick's end.
    if (this.batch === undefined) {
      this.batch = '';
      process.nextTick(this.flush);
      stream.write(line);
    } else {
      this.batch += line;
    }
  }

  private batch: string | undefined;
  private readonly flush = (): void => {
    const batch = this.batch;
    this.batch = undefined;
    if (batch && !this.stream.destroyed && !this.stream.writableEnded) this.stream.write(batch);
  };

  end(): void {
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end();
  }

  destroy(): void {
    if (!this.stream.destroyed) this.stream.destroy();
  }
}
