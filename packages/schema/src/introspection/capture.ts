/**
 * Capture the introspection schema of a QEMU binary. Starts the binary with `-machine none -nodefaults -display none` and QMP on stdio
 * (spawned with an argument array, no shell), runs query-version, query-target and
 * query-qmp-schema, and writes `<out>/qemu-<major>.<minor>/query-qmp-schema.json` plus
 * `manifest.json` (version, package string, target, sha256 of the schema file).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { SchemaCaptureError, type SchemaCaptureStage } from '../errors.js';

interface QmpReply {
  return?: unknown;
  error?: { class: string; desc: string };
  QMP?: unknown;
  event?: string;
  id?: unknown;
}

export interface CaptureResult {
  dir: string;
  version: string;
  entries: number;
}

/** Formats a SchemaInfo list as one entry per line: small diffs, still valid JSON. */
export function formatSchemaList(list: readonly unknown[]): string {
  return `[\n${list.map((entry) => JSON.stringify(entry)).join(',\n')}\n]\n`;
}

export interface Capture {
  /** `query-qmp-schema`'s return value. */
  readonly schema: readonly unknown[];
  readonly version: { major: number; minor: number; micro: number; package: string };
  readonly target: string;
}

/**
 * How to start a binary that does not run on its own defaults, e.g. a QEMU unpacked beside
 * the system's (machine's `QemuBinary`: `-L <data dir>` and `QEMU_MODULE_DIR`).
 */
export interface CaptureLaunch {
  /** Arguments put before the capture's own (e.g. `['-L', dataDir]`). */
  readonly args?: readonly string[];
  /** The environment to spawn with (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** Recorded in the manifest as `source.fetchedWith` (how the binary was obtained). */
  readonly fetchedWith?: string;
}

/**
 * The binary's kind: `system` (a `qemu-system-*`, the default) or `storage-daemon`
 * (`qemu-storage-daemon`: its own, smaller schema; no machine, so no `query-target`, and QMP
 * is set up with `--chardev stdio` + `--monitor` instead of `-qmp stdio`).
 */
export type CaptureKind = 'system' | 'storage-daemon';

const MONITOR_ID = 'qmpkit-capture';

/** The arguments a capture runs `kind` with (after `launch.args`). */
export function captureArgs(kind: CaptureKind): string[] {
  return kind === 'storage-daemon'
    ? ['--chardev', `stdio,id=${MONITOR_ID}`, '--monitor', `chardev=${MONITOR_ID}`]
    : ['-machine', 'none', '-nodefaults', '-display', 'none', '-S', '-qmp', 'stdio'];
}

/**
 * Runs a QEMU binary briefly and returns its introspection schema, version and target.
 * Rejects with `SchemaCaptureError` (its `stage`, `command` and QEMU's `stderr` say why).
 */
export async function captureFromBinary(
  binary: string,
  launch: CaptureLaunch = {},
  kind: CaptureKind = 'system',
): Promise<Capture> {
  const child = spawn(binary, [...(launch.args ?? []), ...captureArgs(kind)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(launch.env ? { env: launch.env } : {}),
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4096);
  });
  const fail = (
    stage: SchemaCaptureStage,
    message: string,
    more: { command?: string; errorClass?: string; cause?: unknown } = {},
  ): SchemaCaptureError => {
    const { cause, ...fields } = more;
    return new SchemaCaptureError(
      {
        binary,
        stage,
        message,
        ...fields,
        exitCode: child.exitCode,
        signal: child.signalCode,
        stderr: stderr.trim(),
      },
      cause === undefined ? undefined : { cause },
    );
  };
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) =>
      reject(fail('spawn', `cannot start ${binary}: ${err.message}`, { cause: err })),
    );
  });
  await spawned;

  const lines = createInterface({ input: child.stdout, crlfDelay: Number.POSITIVE_INFINITY });
  const iterator = lines[Symbol.asyncIterator]();
  let running: string | undefined;
  const exited = new Promise<never>((_, reject) => {
    // 'close', not 'exit': it comes after stdout and stderr ended, so `stderr` is complete.
    child.once('close', (code, signal) =>
      reject(
        fail(
          'exited',
          `${binary} exited (code ${code}, signal ${signal}) before the capture finished: ${stderr.trim()}`,
          running === undefined ? {} : { command: running },
        ),
      ),
    );
  });
  exited.catch(() => {}); // observed through next(); QEMU exiting after `quit` is expected
  const deadline = setTimeout(() => child.kill('SIGKILL'), 30_000);

  async function next(): Promise<QmpReply> {
    for (;;) {
      const result = await Promise.race([iterator.next(), exited]);
      // QMP's stdout ends when QEMU exits: report that exit (code, signal, all of stderr).
      // One that closed it and lived on is killed by the deadline and reported the same way.
      if (result.done) return await exited;
      let message: QmpReply;
      try {
        message = JSON.parse(result.value) as QmpReply;
      } catch (error) {
        throw fail('protocol', `${binary} sent a line that is not JSON: ${result.value}`, {
          cause: error,
        });
      }
      if (message.event === undefined) return message;
    }
  }
  let nextId = 0;
  async function execute(command: string): Promise<unknown> {
    const id = `capture-${nextId++}`;
    running = command;
    child.stdin.write(`${JSON.stringify({ execute: command, id })}\n`);
    const reply = await next();
    if (reply.id !== id)
      throw fail('protocol', `unexpected reply to ${command}: ${JSON.stringify(reply)}`, {
        command,
      });
    if (reply.error)
      throw fail('command', `${command} failed: ${reply.error.class}: ${reply.error.desc}`, {
        command,
        errorClass: reply.error.class,
      });
    running = undefined;
    return reply.return;
  }

  try {
    const greeting = await next();
    if (greeting.QMP === undefined)
      throw fail('protocol', `expected a QMP greeting, got ${JSON.stringify(greeting)}`);
    await execute('qmp_capabilities');
    const version = (await execute('query-version')) as {
      qemu: { major: number; minor: number; micro: number };
      package: string;
    };
    // The storage daemon has no target (it emulates no machine): the host's, as QEMU names it.
    const target =
      kind === 'storage-daemon'
        ? { arch: hostArch() }
        : ((await execute('query-target')) as { arch: string });
    const schema = await execute('query-qmp-schema');
    if (!Array.isArray(schema))
      throw fail('protocol', 'query-qmp-schema did not return a list', {
        command: 'query-qmp-schema',
      });
    child.stdin.write(`${JSON.stringify({ execute: 'quit' })}\n`);
    return {
      schema,
      version: { ...version.qemu, package: version.package.trim() },
      target: target.arch,
    };
  } finally {
    clearTimeout(deadline);
    lines.close();
    if (child.exitCode === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      setTimeout(() => child.kill('SIGKILL'), 2000).unref();
      await gone;
    }
  }
}

/** The host architecture under QEMU's name (`x86_64`, `aarch64`, …). */
function hostArch(): string {
  const names: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i386' };
  return names[process.arch] ?? process.arch;
}

/**
 * Captures a `qemu-storage-daemon`'s schema into `<outRoot>/qsd-<major>.<minor>/` (schema +
 * manifest.json, `source.binary: "qemu-storage-daemon"`).
 */
export async function captureStorageDaemonSchema(
  binary: string,
  outRoot: string,
  launch: CaptureLaunch = {},
): Promise<CaptureResult> {
  return writeCapture(
    await captureFromBinary(binary, launch, 'storage-daemon'),
    'storage-daemon',
    binary,
    outRoot,
    launch,
  );
}

/** Captures a binary's schema into `<outRoot>/qemu-<major>.<minor>/` (schema + manifest.json). */
export async function captureSchema(
  binary: string,
  outRoot: string,
  launch: CaptureLaunch = {},
): Promise<CaptureResult> {
  return writeCapture(await captureFromBinary(binary, launch), 'system', binary, outRoot, launch);
}

async function writeCapture(
  { schema, version, target }: Capture,
  kind: CaptureKind,
  binary: string,
  outRoot: string,
  launch: CaptureLaunch,
): Promise<CaptureResult> {
  const { major, minor, micro } = version;
  const prefix = kind === 'storage-daemon' ? 'qsd' : 'qemu';
  const dir = path.join(outRoot, `${prefix}-${major}.${minor}`);
  await mkdir(dir, { recursive: true });
  const schemaText = formatSchemaList(schema);
  await writeFile(path.join(dir, 'query-qmp-schema.json'), schemaText);
  const manifest = {
    qemu: { major, minor, micro, version: `${major}.${minor}.${micro}`, package: version.package },
    target,
    source: {
      kind: 'capture',
      binary: path.basename(binary),
      command: 'query-qmp-schema',
      options:
        kind === 'storage-daemon'
          ? captureArgs(kind)
          : ['-machine', 'none', '-nodefaults', '-display', 'none'],
      ...(launch.fetchedWith ? { fetchedWith: launch.fetchedWith } : {}),
    },
    files: {
      'query-qmp-schema.json': {
        sha256: createHash('sha256').update(schemaText).digest('hex'),
        entries: schema.length,
      },
    },
  };
  await writeFile(path.join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir, version: manifest.qemu.version, entries: schema.length };
}
