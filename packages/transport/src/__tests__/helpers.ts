/**
 * Test support: tiny QMP peers on private UNIX sockets, and real QEMU processes spawned
 * with argument arrays (only pids started here are ever killed).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import type { Commands, Events } from '@qmpkit/qapi';
import type { ConnectOptions } from '../client/client.js';
import { connect, type QmpClient } from '../client/client.js';
import { QmpDecoder } from '../codec/decoder.js';
import { encodeError, encodeEvent, encodeGreeting, encodeReturn } from '../codec/encoder.js';
import type { WireCommand } from '../codec/messages.js';
import { InheritedFds } from '../fd/inherited.js';

export function tempDir(prefix = 'qmpkit-test-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A raw peer: the test decides byte for byte what it sends. */
export async function rawPeer(
  onConnection: (socket: net.Socket) => void,
): Promise<{ path: string; address: string; close(): Promise<void>; sockets: net.Socket[] }> {
  const { dir, remove } = tempDir();
  const socketPath = path.join(dir, 'peer.sock');
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    path: socketPath,
    address: `unix:${socketPath}`,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      remove();
    },
  };
}

export const GREETING = encodeGreeting(
  { qemu: { major: 7, minor: 2, micro: 22 }, package: 'fake' },
  ['oob'],
);

export interface FakeConnection {
  readonly socket: net.Socket;
  send(line: string): void;
  event(name: string, data?: unknown): void;
}

export type FakeHandler = (
  command: WireCommand,
  conn: FakeConnection,
) => { return: unknown } | { error: [string, string] } | 'no-reply' | undefined;

/**
 * A small QMP server built on the codec: greeting, negotiation, `query-status`, and
 * whatever `handler` answers; unknown commands get CommandNotFound like QEMU.
 */
export async function fakeQmp(handler: FakeHandler = () => undefined, greeting = GREETING) {
  const commands: WireCommand[] = [];
  return rawPeer((socket) => {
    const conn: FakeConnection = {
      socket,
      send: (line) => {
        if (!socket.destroyed) socket.write(line);
      },
      event: (name, data) => conn.send(encodeEvent(name, data)),
    };
    const decoder = new QmpDecoder({
      greeting: () => {},
      return: () => {},
      error: () => {},
      event: () => {},
      protocolError: () => socket.destroy(),
      command: (command) => {
        commands.push(command);
        const name = command.execute ?? command['exec-oob'] ?? '';
        const answer = handler(command, conn);
        if (answer === 'no-reply') return;
        if (answer !== undefined) {
          conn.send(
            'return' in answer
              ? encodeReturn(answer.return, command.id)
              : encodeError(answer.error[0], answer.error[1], command.id),
          );
          return;
        }
        if (name === 'qmp_capabilities') conn.send(encodeReturn({}, command.id));
        else if (name === 'query-status')
          conn.send(
            encodeReturn({ status: 'running', singlestep: false, running: true }, command.id),
          );
        else
          conn.send(
            encodeError('CommandNotFound', `The command ${name} has not been found`, command.id),
          );
      },
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    socket.write(greeting);
  }).then((peer) => ({ ...peer, commands }));
}

// ---------------------------------------------------------------------------------------
// Real QEMU

export const QEMU_BINARY = 'qemu-system-x86_64';

export function qemuInstalled(): boolean {
  const result = spawnSync(QEMU_BINARY, ['--version'], { stdio: 'ignore' });
  return result.status === 0;
}

/**
 * Real-QEMU suites skip only when QEMU is missing and we are not in CI; in CI a missing
 * QEMU makes them fail.
 */
export const skipQemu = !qemuInstalled() && process.env.CI !== 'true';
export const SKIP_REASON = skipQemu ? ' (skipped: qemu-system-x86_64 is not installed)' : '';

const started = new Set<ChildProcess>();

export interface SpawnedQemu {
  readonly child: ChildProcess;
  readonly qmp: QmpClient;
  stderr(): string;
  /** SIGKILL this child (only ever a pid this helper started). */
  kill(): Promise<void>;
}

/** A minimal, stopped-capable machine: `-machine none` unless `machine` says otherwise. */
export async function spawnQemu(
  options: {
    machine?: 'none' | 'pc';
    extraArgs?: readonly string[];
    connect?: ConnectOptions<Commands, Events>;
    fds?: InheritedFds;
    /** Relay QMP through this tap (records both directions, can hold QEMU's output). */
    tap?: WireTap;
  } = {},
): Promise<SpawnedQemu> {
  const fds = options.fds ?? new InheritedFds();
  const monitor = fds.socketpair();
  const machineArgs = options.extraArgs?.includes('-machine')
    ? []
    : options.machine === 'pc'
      ? ['-machine', 'pc', '-m', '16', '-accel', 'kvm', '-accel', 'tcg', '-S']
      : ['-machine', 'none'];
  const args = [
    '-nodefaults',
    '-display',
    'none',
    ...machineArgs,
    ...monitor.monitorArgs(),
    ...(options.extraArgs ?? []),
  ];
  const child = spawn(QEMU_BINARY, args, { stdio: fds.stdio });
  started.add(child);
  child.on('exit', () => started.delete(child));
  fds.closeParentCopies();
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    stderr = (stderr + s).slice(-8192);
  });
  child.stdout?.resume();
  const address = monitor.address(child);
  const qmp = (await connect(
    options.tap && address.kind === 'duplex'
      ? { ...address, stream: options.tap.wrap(address.stream) }
      : address,
    options.connect ?? {},
  )) as unknown as QmpClient;
  return {
    child,
    qmp,
    stderr: () => stderr,
    kill: () => killChild(child),
  };
}

/**
 * A relay between the client and QEMU that records every line on the wire, both ways, and
 * can hold QEMU's output back (`hold`/`release`) so a reply is late by construction, not by
 * timing.
 */
export class WireTap {
  /** Lines the client wrote, parsed. */
  readonly sent: Record<string, unknown>[] = [];
  /** Lines QEMU wrote (held ones included), parsed. */
  readonly received: Record<string, unknown>[] = [];
  private held: Buffer[] | undefined;
  private client: Duplex | undefined;
  private readonly partial = { sent: '', received: '' };
  private watchers: {
    from: number;
    test: (m: Record<string, unknown>) => boolean;
    resolve: (m: Record<string, unknown>) => void;
  }[] = [];

  wrap(qemu: Duplex): Duplex {
    const client = new Duplex({
      write: (chunk: Buffer, _encoding, callback) => {
        this.record('sent', chunk);
        qemu.write(chunk, callback);
      },
      read: () => {},
      final: (callback) => {
        qemu.end();
        callback();
      },
      destroy: (error, callback) => {
        qemu.destroy();
        callback(error);
      },
    });
    this.client = client;
    qemu.on('data', (chunk: Buffer) => {
      this.record('received', chunk);
      if (this.held) this.held.push(chunk);
      else client.push(chunk);
    });
    qemu.on('end', () => client.push(null));
    qemu.on('error', (error) => client.destroy(error));
    qemu.on('close', () => client.destroy());
    return client;
  }

  /** Keep QEMU's output in the relay until `release()`. */
  hold(): void {
    this.held ??= [];
  }

  /** Deliver what was held, in order, and stop holding. */
  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const chunk of held) this.client?.push(chunk);
  }

  /** Resolves with the first line QEMU wrote at or after index `from` that passes `test`. */
  receivedLine(
    test: (m: Record<string, unknown>) => boolean,
    from = 0,
  ): Promise<Record<string, unknown>> {
    const found = this.received.slice(from).find(test);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => this.watchers.push({ from, test, resolve }));
  }

  private record(direction: 'sent' | 'received', chunk: Buffer): void {
    const text = this.partial[direction] + chunk.toString('utf8');
    const lines = text.split('\n');
    this.partial[direction] = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      const message = JSON.parse(line) as Record<string, unknown>;
      this[direction].push(message);
      if (direction === 'received') {
        const index = this.received.length - 1;
        this.watchers = this.watchers.filter((w) => {
          if (index < w.from || !w.test(message)) return true;
          w.resolve(message);
          return false;
        });
      }
    }
  }
}

export async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** Kills every QEMU this helper started that is still running. */
export async function killAllStarted(): Promise<void> {
  await Promise.all([...started].map((c) => killChild(c)));
}
