/**
 * The client side of the control socket (`protocol.ts`): connect, send requests, route
 * progress lines and the one answer of each request back to it.
 */
import net from 'node:net';
import { CliConnectError } from '../errors.js';
import { vmPaths } from './paths.js';
import {
  asWireError,
  isRecord,
  lineReader,
  type Method,
  type Methods,
  PROTOCOL_VERSION,
  type ProgressOf,
  type WireError,
} from './protocol.js';

/** The supervisor answered a request with an error; `remote` is what it sent. */
export class SupervisorError extends Error {
  override readonly name = 'SupervisorError' as const;
  readonly remote: WireError;
  constructor(remote: WireError) {
    super(remote.message);
    this.remote = remote;
  }
}

export function isSupervisorError(value: unknown): value is SupervisorError {
  return isRecord(value) && value.name === 'SupervisorError';
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  onProgress: ((progress: unknown) => void) | undefined;
}

export interface PendingRequest<T> {
  readonly id: number;
  readonly result: Promise<T>;
}

export class ControlClient {
  readonly #socket: net.Socket;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed: Error | undefined;
  /** The supervisor's pid (from its greeting). */
  readonly pid: number;

  private constructor(socket: net.Socket, pid: number) {
    this.#socket = socket;
    this.pid = pid;
    socket.on('close', () => {
      this.#closed = new Error('the supervisor closed the control connection');
      for (const pending of this.#pending.values()) pending.reject(this.#closed);
      this.#pending.clear();
    });
  }

  /**
   * Connects to the supervisor of the VM directory `dir`. No supervisor (no socket, refused,
   * no greeting within `timeout`) is a `CliConnectError` (exit 2).
   */
  static connect(dir: string, options: { timeout?: number } = {}): Promise<ControlClient> {
    const paths = vmPaths(dir);
    const timeout = options.timeout ?? 5000;
    return new Promise((resolve, reject) => {
      const socket = net.connect(paths.control);
      let client: ControlClient | undefined;
      const fail = (code: string | undefined, detail: string, cause?: unknown) => {
        clearTimeout(timer);
        socket.destroy();
        reject(
          new CliConnectError(
            paths.control,
            code,
            `no qmpkit VM supervisor is running at ${paths.dir} (${detail}); start one with: qmpkit vm start <config.json> --dir ${dir}`,
            cause === undefined ? undefined : { cause },
          ),
        );
      };
      const timer = setTimeout(
        () => fail('ETIMEDOUT', `no greeting within ${timeout} ms`),
        timeout,
      );
      socket.once('error', (error: NodeJS.ErrnoException) => {
        if (client === undefined)
          fail(error.code, `${error.code ?? 'error'} on control.sock`, error);
      });
      socket.on(
        'data',
        lineReader(
          (value) => {
            if (client === undefined) {
              const hello = isRecord(value) && isRecord(value.hello) ? value.hello : undefined;
              if (hello === undefined || hello.protocol !== PROTOCOL_VERSION) {
                fail(undefined, `unexpected greeting ${JSON.stringify(value).slice(0, 80)}`);
                return;
              }
              clearTimeout(timer);
              client = new ControlClient(socket, typeof hello.pid === 'number' ? hello.pid : 0);
              resolve(client);
              return;
            }
            client.#receive(value);
          },
          () => {},
        ),
      );
    });
  }

  #receive(value: unknown): void {
    if (!isRecord(value) || typeof value.id !== 'number') return;
    const pending = this.#pending.get(value.id);
    if (pending === undefined) return;
    if ('progress' in value) {
      pending.onProgress?.(value.progress);
      return;
    }
    this.#pending.delete(value.id);
    if ('error' in value && isRecord(value.error))
      pending.reject(new SupervisorError(asWireError(value.error)));
    else pending.resolve(value.result);
  }

  /** Sends a request; `result` settles with its answer (`SupervisorError` for an error). */
  request<M extends Method>(
    method: M,
    params: Methods[M]['params'],
    options: { onProgress?: (progress: ProgressOf<M>) => void } = {},
  ): PendingRequest<Methods[M]['result']> {
    const id = this.#nextId++;
    const result = new Promise<Methods[M]['result']>((resolve, reject) => {
      if (this.#closed !== undefined) {
        reject(this.#closed);
        return;
      }
      this.#pending.set(id, {
        resolve: resolve as (value: unknown) => void,
        reject,
        // The wire's progress lines are the method's shape (the supervisor sends nothing else).
        onProgress:
          options.onProgress === undefined
            ? undefined
            : (progress) => options.onProgress?.(progress as ProgressOf<M>),
      });
      this.#socket.write(`${JSON.stringify({ id, method, params })}\n`);
    });
    return { id, result };
  }

  /** One request, awaited. */
  call<M extends Method>(method: M, params: Methods[M]['params']): Promise<Methods[M]['result']> {
    return this.request(method, params).result;
  }

  close(): void {
    this.#socket.end();
    this.#socket.destroy();
  }
}
