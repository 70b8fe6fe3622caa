import type { WireEvent } from '../codec/messages.js';
import { QmpDisconnectedError, QmpEventOverflowError, QmpTimeoutError } from '../errors.js';
import type { Logger } from '../session/session.js';

/** Something that receives events from the hub. */
interface Subscriber {
  readonly names: ReadonlySet<string> | undefined;
  deliver(event: WireEvent): void;
  /** The client closed for good: end iterators, reject waits. */
  end(error: Error | undefined): void;
}

/** Fans events out to listeners, iterators and expectations without ever blocking. */
export class EventHub {
  private subscribers: Subscriber[] = [];
  private endedWith: { error: Error | undefined } | undefined;

  constructor(private readonly logger: Logger) {}

  dispatch(event: WireEvent): void {
    const subscribers = this.subscribers;
    for (let i = 0; i < subscribers.length; i++) {
      const s = subscribers[i]!;
      if (s.names !== undefined && !s.names.has(event.event)) continue;
      try {
        s.deliver(event);
      } catch (error) {
        this.logger.warn(`event listener threw for ${event.event}`, error);
      }
    }
  }

  add(subscriber: Subscriber): () => void {
    if (this.endedWith) {
      const { error } = this.endedWith;
      queueMicrotask(() => subscriber.end(error));
      return () => {};
    }
    // Copy on write: dispatch may be iterating.
    this.subscribers = [...this.subscribers, subscriber];
    return () => {
      this.subscribers = this.subscribers.filter((s) => s !== subscriber);
    };
  }

  get size(): number {
    return this.subscribers.length;
  }

  end(error: Error | undefined): void {
    if (this.endedWith) return;
    this.endedWith = { error };
    const subscribers = this.subscribers;
    this.subscribers = [];
    for (const s of subscribers) s.end(error);
  }
}

export function listener(
  hub: EventHub,
  names: readonly string[] | undefined,
  fn: (event: WireEvent) => void,
): () => void {
  return hub.add({
    names: names === undefined ? undefined : new Set(names),
    deliver: fn,
    end: () => {},
  });
}

export interface EventStreamOptions<Ev> {
  /** Only these events (default: all). */
  readonly names?: readonly string[];
  /** Only events for which this returns true (runs on the reader; keep it cheap). */
  readonly filter?: (event: Ev) => boolean;
  /** Aborting ends the iteration by throwing the signal's reason (like `events.on`). */
  readonly signal?: AbortSignal;
  /** Buffered events before overflow (default 10 000). */
  readonly capacity?: number;
  /**
   * On overflow: `error` (default) — deliver what is buffered, then throw
   * `QmpEventOverflowError` from the iterator; `drop-oldest` — keep going, count
   * `dropped`, call `onOverflow`.
   */
  readonly overflow?: 'error' | 'drop-oldest';
  readonly onOverflow?: (dropped: number) => void;
}

/**
 * A bounded, non-blocking async iterator of events. The reader pushes into the buffer;
 * a slow consumer never slows the connection. Ends (done) when the client closes.
 */
export class EventStream<Ev> implements AsyncIterableIterator<Ev> {
  private buffer: Ev[] = [];
  private head = 0;
  private waiter:
    | { resolve: (r: IteratorResult<Ev>) => void; reject: (e: unknown) => void }
    | undefined;
  private done = false;
  private failure: unknown;
  private droppedCount = 0;
  private readonly capacity: number;
  private readonly unsubscribe: () => void;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    hub: EventHub,
    private readonly options: EventStreamOptions<Ev> = {},
  ) {
    this.capacity = options.capacity ?? 10_000;
    if (!(this.capacity >= 1)) throw new RangeError('capacity must be ≥ 1');
    const filter = options.filter;
    this.unsubscribe = hub.add({
      names: options.names === undefined ? undefined : new Set(options.names),
      deliver: (event) => {
        const ev = event as unknown as Ev;
        if (filter && !filter(ev)) return;
        this.push(ev);
      },
      end: () => this.finish(undefined),
    });
    const signal = options.signal;
    if (signal) {
      this.onAbort = () => {
        // Abort means stop now: buffered events are not delivered.
        this.buffer = [];
        this.head = 0;
        this.finish(signal.reason ?? new Error('aborted'));
      };
      if (signal.aborted) this.onAbort();
      else signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  /** Events not delivered because of overflow (`drop-oldest`) so far. */
  get dropped(): number {
    return this.droppedCount;
  }
  /** Events waiting in the buffer. */
  get buffered(): number {
    return this.buffer.length - this.head;
  }

  private push(event: Ev): void {
    if (this.done) return;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve({ value: event, done: false });
      return;
    }
    if (this.buffered >= this.capacity) {
      this.droppedCount++;
      if (this.options.overflow === 'drop-oldest') {
        this.head++;
        this.buffer.push(event);
        this.compact();
        this.options.onOverflow?.(this.droppedCount);
        return;
      }
      this.options.onOverflow?.(this.droppedCount);
      // Stop listening; the consumer gets the buffered events, then the error.
      this.finish(new QmpEventOverflowError(this.droppedCount, this.capacity));
      return;
    }
    this.buffer.push(event);
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.buffer.length) {
      this.buffer = this.buffer.slice(this.head);
      this.head = 0;
    }
  }

  private finish(error: unknown): void {
    if (this.done) return;
    this.done = true;
    this.failure = error;
    this.unsubscribe();
    if (this.onAbort) this.options.signal?.removeEventListener('abort', this.onAbort);
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      // Buffer is empty whenever someone waits.
      if (error !== undefined) {
        this.failure = undefined;
        waiter.reject(error);
      } else waiter.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<Ev>> {
    if (this.head < this.buffer.length) {
      const value = this.buffer[this.head]!;
      this.buffer[this.head] = undefined as unknown as Ev;
      this.head++;
      if (this.head === this.buffer.length) {
        this.buffer = [];
        this.head = 0;
      } else this.compact();
      return Promise.resolve({ value, done: false });
    }
    if (this.done) {
      const failure = this.failure;
      if (failure !== undefined) {
        this.failure = undefined;
        return Promise.reject(failure);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Ev>> {
    this.finish(undefined);
    this.failure = undefined;
    this.buffer = [];
    this.head = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

export interface WaitOptions {
  /** Milliseconds until `QmpTimeoutError` (counted from `wait()`). */
  readonly timeout?: number;
  readonly signal?: AbortSignal;
}

/**
 * An armed wait for one event. Create it *before* sending the command whose event you
 * await (QEMU may emit the event before the reply), then `await handle.wait()`.
 * Matching starts at creation; the first match is kept until `wait()` collects it.
 */
export class EventExpectation<Ev> {
  private matched: Ev | undefined;
  private hasMatch = false;
  private failure: Error | undefined;
  private resolver: ((event: Ev) => void) | undefined;
  private rejecter: ((error: unknown) => void) | undefined;
  private readonly unsubscribe: () => void;
  private readonly label: string;

  constructor(
    hub: EventHub,
    names: readonly string[],
    predicate: ((event: Ev) => boolean) | undefined,
  ) {
    this.label = names.join('|');
    this.unsubscribe = hub.add({
      names: new Set(names),
      deliver: (event) => {
        if (this.hasMatch || this.failure) return;
        const ev = event as unknown as Ev;
        if (predicate && !predicate(ev)) return;
        this.hasMatch = true;
        this.matched = ev;
        this.unsubscribe();
        this.resolver?.(ev);
      },
      end: (error) => {
        if (this.hasMatch) return;
        this.failure = new QmpDisconnectedError(undefined, { cause: error });
        this.rejecter?.(this.failure);
      },
    });
  }

  /** True once a matching event arrived. */
  get received(): boolean {
    return this.hasMatch;
  }

  /** The matching event (immediately if it already arrived). */
  wait(options: WaitOptions = {}): Promise<Ev> {
    if (this.hasMatch) return Promise.resolve(this.matched as Ev);
    if (this.failure) return Promise.reject(this.failure);
    const { timeout, signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Ev>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = (): void => {
        cleanup();
        reject(signal?.reason);
      };
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.resolver = undefined;
        this.rejecter = undefined;
      };
      this.resolver = (ev) => {
        cleanup();
        resolve(ev);
      };
      this.rejecter = (error) => {
        cleanup();
        reject(error);
      };
      if (timeout !== undefined) {
        timer = setTimeout(() => {
          cleanup();
          reject(
            new QmpTimeoutError(this.label, timeout, `no ${this.label} event within ${timeout} ms`),
          );
        }, timeout);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Stop listening (a pending `wait()` stays pending; use its signal to end it). */
  cancel(): void {
    this.unsubscribe();
  }
}
