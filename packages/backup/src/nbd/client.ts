/**
 * A small NBD client over a unix socket or TCP, optionally TLS (`NBD_OPT_STARTTLS`, then the
 * socket is upgraded with `node:tls`; never a fallback to plaintext): enough to read a backup
 * export's dirty extents from QEMU (`qemu:dirty-bitmap:NAME` / `base:allocation` block
 * status, structured reads) and to write them into a `qemu-nbd` serving the new qcow2 layer.
 * Several requests may be in flight (replies are matched by cookie); the wire format lives in
 * `codec.ts`.
 */
import { createConnection, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  ByteQueue,
  CHUNK,
  CHUNK_FLAG_DONE,
  CMD,
  decodeBlockStatus,
  decodeErrorChunk,
  decodeOptionReply,
  decodeReplyHeader,
  encodeClientFlags,
  encodeGo,
  encodeOption,
  encodeRequest,
  encodeSetMetaContext,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  IHAVEOPT,
  INFO_EXPORT,
  NBDMAGIC,
  OPT,
  REP,
  REP_ERROR_BIT,
  replyHeaderRest,
  TFLAG,
} from './codec.js';
import { isNbdProtocolError, NbdProtocolError, NbdServerError, NbdTlsError } from './errors.js';

export interface NbdConnectOptions {
  /** Unix socket path of the server (or `tcp`). */
  readonly path?: string;
  /** The server's TCP address (instead of `path`). */
  readonly tcp?: { readonly host: string; readonly port: number };
  /** Upgrade to TLS before anything else is negotiated; refused servers fail, never plaintext. */
  readonly tls?: NbdTlsOptions;
  /** Export name. */
  readonly exportName: string;
  /** Metadata contexts to select (`base:allocation`, `qemu:dirty-bitmap:NAME`). */
  readonly metaContexts?: readonly string[];
}

/** PEM material for the TLS upgrade. */
export interface NbdTlsOptions {
  /** The CA the server's certificate must chain to. */
  readonly ca: Buffer;
  /** Our client certificate and key (a server with verify-peer asks for them). */
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** The name (or IP address) the server's certificate must carry. */
  readonly hostname: string;
}

export interface NbdExtent {
  readonly offset: number;
  readonly length: number;
  readonly flags: number;
}

/** Largest single read or write this client sends (QEMU accepts up to 32 MiB). */
export const MAX_REQUEST = 4 * 1024 * 1024;

export class NbdClient {
  readonly size: number;
  readonly transmissionFlags: number;
  /** Context name → id, for the contexts the server agreed to. */
  readonly contexts: ReadonlyMap<string, number>;
  /** Data bytes received by `read` (holes the server reported are not counted). */
  bytesRead = 0;
  readonly #io: SocketIo;
  #cookie = 1n;
  /** Requests sent and not yet answered, by cookie: several may be in flight. */
  readonly #pending = new Map<bigint, Pending>();
  #failure: Error | undefined;

  private constructor(io: SocketIo, size: number, flags: number, contexts: Map<string, number>) {
    this.#io = io;
    this.size = size;
    this.transmissionFlags = flags;
    this.contexts = contexts;
    this.#replies().catch((error: unknown) => this.#fail(error));
  }

  #fail(error: unknown): void {
    this.#failure ??=
      error instanceof Error ? error : new NbdProtocolError(`NBD reply loop: ${String(error)}`);
    for (const p of this.#pending.values()) p.reject(this.#failure);
    this.#pending.clear();
  }

  /** Reads replies for as long as the connection lives and hands them to their requests. */
  async #replies(): Promise<void> {
    for (;;) {
      const magic = (await this.#io.read(4)).readUInt32BE(0);
      const header = decodeReplyHeader(magic, await this.#io.read(replyHeaderRest(magic)));
      const pending = this.#pending.get(header.cookie);
      if (pending === undefined)
        throw new NbdProtocolError(`reply for unknown cookie ${header.cookie}`);
      if (header.kind === 'simple') {
        this.#pending.delete(header.cookie);
        if (header.error !== 0) {
          pending.reject(new NbdServerError(pending.what, header.error, ''));
          continue;
        }
        if (pending.simpleDataLength > 0 && pending.into !== undefined) {
          await this.#io.readInto(pending.into.buffer, 0, pending.simpleDataLength);
          pending.into.received += pending.simpleDataLength;
        }
        pending.resolve();
        continue;
      }
      if (
        header.type === CHUNK.OFFSET_DATA &&
        pending.into !== undefined &&
        pending.error === undefined &&
        header.length >= 8
      ) {
        // Read data goes straight from the socket's chunks into the caller's buffer: one copy,
        // no intermediate payload buffer (docs/decisions.md has the profile that asked for it).
        const into = pending.into;
        const at = Number((await this.#io.read(8)).readBigUInt64BE(0)) - into.offset;
        const length = header.length - 8;
        if (at < 0 || at + length > into.buffer.length)
          throw new NbdProtocolError(`read data outside the request at ${into.offset + at}`);
        await this.#io.readInto(into.buffer, at, length);
        into.received += length;
        if ((header.flags & CHUNK_FLAG_DONE) !== 0) {
          this.#pending.delete(header.cookie);
          pending.resolve();
        }
        continue;
      }
      const payload = await this.#io.read(header.length);
      if (header.type === CHUNK.ERROR || header.type === CHUNK.ERROR_OFFSET) {
        const e = decodeErrorChunk(payload);
        pending.error ??= new NbdServerError(pending.what, e.errno, e.message);
      } else if (pending.error === undefined) pending.onChunk?.(header.type, payload);
      if ((header.flags & CHUNK_FLAG_DONE) !== 0) {
        this.#pending.delete(header.cookie);
        if (pending.error !== undefined) pending.reject(pending.error);
        else pending.resolve();
      }
    }
  }

  static async connect(options: NbdConnectOptions): Promise<NbdClient> {
    const where =
      options.tcp !== undefined
        ? `${options.tcp.host}:${options.tcp.port}`
        : (options.path ?? '(no address)');
    let io = await SocketIo.open(options);
    try {
      const hello = await io.read(18);
      if (hello.readBigUInt64BE(0) !== NBDMAGIC || hello.readBigUInt64BE(8) !== IHAVEOPT)
        throw new NbdProtocolError(`${where} is not a newstyle NBD server`);
      const serverFlags = hello.readUInt16BE(16);
      if ((serverFlags & FLAG_FIXED_NEWSTYLE) === 0)
        throw new NbdProtocolError('the NBD server does not speak fixed newstyle');
      io.write(encodeClientFlags(FLAG_FIXED_NEWSTYLE | (serverFlags & FLAG_NO_ZEROES)));

      if (options.tls !== undefined) {
        io.write(encodeOption(OPT.STARTTLS));
        const header = decodeOptionReply(await io.read(20));
        const data = await io.read(header.length);
        if (header.option !== OPT.STARTTLS)
          throw new NbdProtocolError(`reply to option ${header.option}, expected STARTTLS`);
        if ((header.type & REP_ERROR_BIT) !== 0 || header.type !== REP.ACK) {
          const errno = header.type & ~REP_ERROR_BIT;
          throw new NbdTlsError(
            'starttls-refused',
            `the NBD server at ${where} refused TLS (reply ${errno}${data.length > 0 ? `: ${data.toString('utf8')}` : ''}); not continuing in plaintext`,
            { errno },
          );
        }
        io = await io.upgrade(options.tls);
      }

      io.write(encodeOption(OPT.STRUCTURED_REPLY));
      try {
        await expectAck(io, OPT.STRUCTURED_REPLY, 'structured replies');
      } catch (error) {
        throw options.tls !== undefined && io.received === 0 && isNbdProtocolError(error)
          ? clientCertificateRefused(where, options.tls, error)
          : error;
      }

      const contexts = new Map<string, number>();
      const wanted = options.metaContexts ?? [];
      if (wanted.length > 0) {
        io.write(encodeSetMetaContext(options.exportName, wanted));
        for (;;) {
          const reply = await optionReply(io, OPT.SET_META_CONTEXT, 'meta contexts');
          if (reply.type === REP.ACK) break;
          if (reply.type === REP.META_CONTEXT)
            contexts.set(reply.data.subarray(4).toString('utf8'), reply.data.readUInt32BE(0));
        }
        const missing = wanted.filter((c) => !contexts.has(c));
        if (missing.length > 0)
          throw new NbdServerError(
            `meta context ${missing.join(', ')}`,
            0,
            `export '${options.exportName}' does not offer it`,
          );
      }

      io.write(encodeGo(options.exportName));
      let size: number | undefined;
      let flags = 0;
      for (;;) {
        const reply = await optionReply(io, OPT.GO, `export '${options.exportName}'`);
        if (reply.type === REP.ACK) break;
        if (reply.type === REP.INFO && reply.data.readUInt16BE(0) === INFO_EXPORT) {
          size = Number(reply.data.readBigUInt64BE(2));
          flags = reply.data.readUInt16BE(10);
        }
      }
      if (size === undefined) throw new NbdProtocolError('the NBD server sent no export size');
      return new NbdClient(io, size, flags, contexts);
    } catch (error) {
      io.destroy();
      throw error;
    }
  }

  /**
   * The extents of context `name` from `offset` on (at least one, maybe fewer bytes than
   * asked: call again from where they end).
   */
  async blockStatus(name: string, offset: number, length: number): Promise<NbdExtent[]> {
    const id = this.contexts.get(name);
    if (id === undefined) throw new NbdProtocolError(`meta context ${name} was not negotiated`);
    const out: NbdExtent[] = [];
    await this.#command(
      CMD.BLOCK_STATUS,
      offset,
      Math.min(length, 0xffff_ffff),
      undefined,
      (type, payload) => {
        if (type !== CHUNK.BLOCK_STATUS) return;
        const status = decodeBlockStatus(payload);
        if (status.context !== id) return;
        let at = offset;
        for (const e of status.extents) {
          out.push({ offset: at, length: e.length, flags: e.flags });
          at += e.length;
        }
      },
    );
    if (out.length === 0) throw new NbdProtocolError(`no extents of ${name} at ${offset}`);
    return out;
  }

  /** `length` bytes at `offset` (holes come back as zeros). */
  async read(offset: number, length: number): Promise<Buffer> {
    return (await this.readCounted(offset, length)).data;
  }

  /** Like `read`, with the data bytes that came over the wire (holes are not sent). */
  async readCounted(offset: number, length: number): Promise<{ data: Buffer; received: number }> {
    // Zero-filled: holes (OFFSET_HOLE chunks) are not sent and must read as zeros.
    const into = { buffer: Buffer.alloc(length), offset, received: 0 };
    await this.#command(CMD.READ, offset, length, undefined, undefined, length, into);
    this.bytesRead += into.received;
    return { data: into.buffer, received: into.received };
  }

  async write(offset: number, data: Buffer): Promise<void> {
    await this.#command(CMD.WRITE, offset, data.length, data);
  }

  /** Zeros at `offset` (as a WRITE of zeros when the server lacks WRITE_ZEROES). */
  async writeZeroes(offset: number, length: number): Promise<void> {
    if ((this.transmissionFlags & TFLAG.SEND_WRITE_ZEROES) !== 0)
      await this.#command(CMD.WRITE_ZEROES, offset, length);
    else
      for (let at = 0; at < length; at += MAX_REQUEST)
        await this.write(offset + at, Buffer.alloc(Math.min(MAX_REQUEST, length - at)));
  }

  async flush(): Promise<void> {
    if ((this.transmissionFlags & TFLAG.SEND_FLUSH) !== 0) await this.#command(CMD.FLUSH, 0, 0);
  }

  /** Says goodbye (`NBD_CMD_DISC`) and closes the socket. */
  async close(): Promise<void> {
    if (!this.#io.closed) {
      this.#io.write(encodeRequest(CMD.DISC, this.#cookie++, 0, 0));
      await this.#io.end();
    }
  }

  /** Drops the connection without goodbye. */
  destroy(): void {
    this.#io.destroy();
  }

  #command(
    type: number,
    offset: number,
    length: number,
    data?: Buffer,
    onChunk?: (type: number, payload: Buffer) => void,
    simpleDataLength = 0,
    into?: ReadTarget,
  ): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const cookie = this.#cookie++;
    const what = `${commandName(type)} at ${offset}+${length}`;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(cookie, {
        what,
        offset,
        simpleDataLength,
        resolve,
        reject,
        ...(onChunk === undefined ? {} : { onChunk }),
        ...(into === undefined ? {} : { into }),
      });
      this.#io.write(encodeRequest(type, cookie, offset, length));
      if (data !== undefined) this.#io.write(data);
    });
  }
}

/** Where a READ's data goes: `buffer[i]` is the byte at `offset + i`. */
interface ReadTarget {
  readonly buffer: Buffer;
  readonly offset: number;
  /** Data bytes that came over the wire (holes are not sent). */
  received: number;
}

interface Pending {
  readonly what: string;
  readonly into?: ReadTarget;
  readonly offset: number;
  readonly simpleDataLength: number;
  readonly onChunk?: (type: number, payload: Buffer) => void;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  /** An error chunk came; the request fails once its last chunk is in. */
  error?: Error;
}

function commandName(type: number): string {
  return Object.entries(CMD).find(([, v]) => v === type)?.[0] ?? `command ${type}`;
}

async function optionReply(
  io: SocketIo,
  option: number,
  what: string,
): Promise<{ type: number; data: Buffer }> {
  const header = decodeOptionReply(await io.read(20));
  const data = await io.read(header.length);
  if (header.option !== option)
    throw new NbdProtocolError(`reply to option ${header.option}, expected ${option}`);
  if ((header.type & REP_ERROR_BIT) !== 0)
    throw new NbdServerError(what, header.type & ~REP_ERROR_BIT, data.toString('utf8'));
  return { type: header.type, data };
}

async function expectAck(io: SocketIo, option: number, what: string): Promise<void> {
  const reply = await optionReply(io, option, what);
  if (reply.type !== REP.ACK)
    throw new NbdProtocolError(`expected ACK for ${what}, got reply type ${reply.type}`);
}

/** The socket, with `read(n)` that resolves once `n` bytes arrived (or fails when it closes). */
class SocketIo {
  readonly #socket: Socket;
  readonly #queue = new ByteQueue();
  #waiter: Waiter | undefined;
  #failure: Error | undefined;
  closed = false;

  /** Bytes the peer has sent on this (possibly TLS) stream so far. */
  received = 0;
  readonly #onData = (chunk: Buffer) => {
    this.received += chunk.length;
    this.#queue.push(chunk);
    this.#wake();
  };
  readonly #onError = (e: Error) =>
    this.#fail(new NbdProtocolError(`NBD connection failed: ${e.message}`, { cause: e }));
  readonly #onClose = () =>
    this.#fail(new NbdProtocolError('the NBD server closed the connection'));

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', this.#onData);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  #fail(error: Error): void {
    this.closed = true;
    this.#failure ??= error;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(this.#failure);
  }

  static open(options: NbdConnectOptions): Promise<SocketIo> {
    const where =
      options.tcp !== undefined ? `${options.tcp.host}:${options.tcp.port}` : options.path;
    return new Promise((resolve, reject) => {
      if (where === undefined) {
        reject(new NbdProtocolError('an NBD connection needs a socket path or a TCP address'));
        return;
      }
      const socket =
        options.tcp !== undefined
          ? createConnection({ host: options.tcp.host, port: options.tcp.port })
          : createConnection({ path: where });
      if (options.tcp !== undefined) socket.setNoDelay(true);
      const onError = (e: Error) =>
        reject(
          new NbdProtocolError(`cannot connect to NBD server ${where}: ${e.message}`, { cause: e }),
        );
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(new SocketIo(socket));
      });
    });
  }

  /**
   * Hands the socket to `node:tls` (after the server acknowledged `NBD_OPT_STARTTLS`) and
   * returns the reader of the encrypted connection. The server sends nothing between its
   * acknowledgement and the handshake, so no plaintext byte may be waiting here.
   */
  upgrade(tls: NbdTlsOptions): Promise<SocketIo> {
    if (this.#queue.length > 0)
      return Promise.reject(
        new NbdProtocolError('the NBD server sent data before the TLS handshake'),
      );
    const raw = this.#socket;
    raw.off('data', this.#onData);
    raw.off('error', this.#onError);
    raw.off('close', this.#onClose);
    return new Promise((resolve, reject) => {
      const secure = tlsConnect({
        socket: raw,
        ca: [tls.ca],
        ...(tls.cert === undefined ? {} : { cert: tls.cert }),
        ...(tls.key === undefined ? {} : { key: tls.key }),
        // The identity check uses `host`; SNI (`servername`) takes names only, not addresses.
        host: tls.hostname,
        ...(isIP(tls.hostname) === 0 ? { servername: tls.hostname } : {}),
        minVersion: 'TLSv1.2',
        rejectUnauthorized: true,
      });
      const onError = (e: Error) => {
        secure.destroy();
        reject(tlsFailure(e, tls.hostname));
      };
      const onClose = () =>
        reject(
          new NbdTlsError(
            'handshake',
            'the NBD server closed the connection during the TLS handshake (does it accept our client certificate?)',
          ),
        );
      secure.once('error', onError);
      secure.once('close', onClose);
      secure.once('secureConnect', () => {
        secure.off('error', onError);
        secure.off('close', onClose);
        resolve(new SocketIo(secure));
      });
    });
  }

  read(n: number): Promise<Buffer> {
    if (this.#queue.length >= n) return Promise.resolve(this.#queue.take(n));
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiter = { n, resolve, reject };
    });
  }

  /** Copies the next `n` bytes into `target` at `at`, as they arrive. */
  readInto(target: Buffer, at: number, n: number): Promise<void> {
    const done = this.#queue.takeInto(target, at, n);
    if (done === n) return Promise.resolve();
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiter = { n, into: { target, at, done }, resolve: () => resolve(), reject };
    });
  }

  write(data: Buffer): void {
    this.#socket.write(data);
  }

  end(): Promise<void> {
    return new Promise((resolve) => {
      this.closed = true;
      this.#socket.end(() => resolve());
      this.#socket.once('close', () => resolve());
    });
  }

  destroy(): void {
    this.closed = true;
    this.#socket.destroy();
  }

  #wake(): void {
    const w = this.#waiter;
    if (w === undefined) return;
    if (w.into !== undefined) {
      const { target, at } = w.into;
      w.into.done += this.#queue.takeInto(target, at + w.into.done, w.n - w.into.done);
      if (w.into.done < w.n) return;
      this.#waiter = undefined;
      w.resolve(EMPTY);
    } else if (this.#queue.length >= w.n) {
      this.#waiter = undefined;
      w.resolve(this.#queue.take(w.n));
    }
  }
}

const EMPTY = Buffer.alloc(0);

/** Node's codes for a certificate that does not verify (chain, dates, name). */
const CERTIFICATE_CODE =
  /^(ERR_TLS_CERT_ALTNAME_INVALID|UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_SELF_SIGNED|CERT_|HOSTNAME_MISMATCH)/;

function tlsFailure(e: Error, hostname: string): NbdTlsError {
  const code = (e as { code?: unknown }).code;
  const text = typeof code === 'string' ? code : undefined;
  if (text !== undefined && CERTIFICATE_CODE.test(text))
    return new NbdTlsError(
      'certificate',
      `the NBD server's certificate was refused (${text}): it must chain to the given CA and name ${hostname}`,
      { code: text },
      { cause: e },
    );
  return new NbdTlsError(
    'handshake',
    `the TLS handshake with the NBD server failed: ${e.message}`,
    text === undefined ? {} : { code: text },
    { cause: e },
  );
}

/**
 * The server ended a TLS connection before it sent a single byte over it: under TLS 1.3 our
 * handshake completes before the server has looked at our certificate, and QEMU checks the
 * client certificate (CA, authz) only after its handshake, then drops the connection without
 * an answer. Nothing else makes QEMU drop a client at that point (it answers every option,
 * refusals included), so the refusal is named as what it is.
 */
function clientCertificateRefused(
  where: string,
  tls: NbdTlsOptions,
  cause: NbdProtocolError,
): NbdTlsError {
  const which =
    tls.cert === undefined
      ? 'it refused us without a client certificate (it verifies peers: give client-cert.pem and client-key.pem)'
      : 'it refused our client certificate (it must be signed by the CA the server trusts, and allowed by its authz)';
  return new NbdTlsError(
    'client-certificate-refused',
    `the NBD server at ${where} closed the connection right after the TLS handshake, before answering anything: ${which}`,
    {},
    { cause },
  );
}

/** The one read waiting for data: `n` bytes as a buffer, or copied into `into.target`. */
interface Waiter {
  readonly n: number;
  readonly into?: { readonly target: Buffer; readonly at: number; done: number };
  readonly resolve: (b: Buffer) => void;
  readonly reject: (e: Error) => void;
}
