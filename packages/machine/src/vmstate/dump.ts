/**
 * `dumpVmstate(binary, machine)`: runs `qemu -machine TYPE -dump-vmstate FILE` into a private
 * temporary directory and returns the parsed dump (and its text, for saving). The only I/O of
 * the vmstate module; argument arrays, no shell.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type QemuBinary,
  qemuBinaryArgs,
  qemuBinaryEnv,
  type ResolveQemuOptions,
  resolveQemuBinary,
} from '../binary.js';
import { VmstateRunError } from './errors.js';
import { parseVmstateDump, type VmstateDump } from './model.js';

export interface DumpVmstateOptions extends ResolveQemuOptions {
  /** Milliseconds QEMU may take to write the dump (default 60 000). */
  readonly dumpTimeoutMs?: number;
}

export interface VmstateDumpResult {
  readonly binary: QemuBinary;
  readonly dump: VmstateDump;
  /** The dump as QEMU wrote it. */
  readonly text: string;
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  stdout: string;
  error?: Error;
}

function run(binary: QemuBinary, args: readonly string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(binary.path, [...qemuBinaryArgs(binary), ...args], {
      env: qemuBinaryEnv(binary),
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    let failed: Error | undefined;
    child.once('error', (e) => {
      failed = e;
    });
    child.once('close', (code, signal) =>
      resolve({ code, signal, stdout, stderr, ...(failed ? { error: failed } : {}) }),
    );
  });
}

/** Machine type names `qemu -machine help` lists (first column, aliases included). */
export function parseMachineHelp(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+\S/.exec(line);
    if (m?.[1] !== undefined && !line.startsWith('Supported machines')) names.add(m[1]);
  }
  return names;
}

/**
 * Dumps the vmstate of `binary` (a `QemuBinary`, or a spec `resolveQemuBinary` takes: a
 * release such as `10.0`, a path, a name on `PATH`) for `machine`. Throws `QemuBinaryError`
 * when the binary is not QEMU, `VmstateRunError` (`unknown-machine-type` when the binary
 * lacks the type, else `failed`/`timeout`/`no-dump` with QEMU's stderr) and
 * `VmstateDumpError` when what it wrote is not a dump.
 */
export async function dumpVmstate(
  binary: QemuBinary | string,
  machine: string,
  options: DumpVmstateOptions = {},
): Promise<VmstateDumpResult> {
  const qemu = typeof binary === 'string' ? await resolveQemuBinary(binary, options) : binary;
  const timeoutMs = options.dumpTimeoutMs ?? 60_000;
  const dir = await mkdtemp(path.join(tmpdir(), 'qmpkit-vmstate-'));
  try {
    const file = path.join(dir, 'vmstate.json');
    // -dump-vmstate exits right after machine creation; nothing else runs, nothing is shown.
    const args = [
      '-machine',
      machine,
      '-nodefaults',
      '-display',
      'none',
      '-accel',
      'tcg',
      '-dump-vmstate',
      file,
    ];
    const argv = [qemu.path, ...qemuBinaryArgs(qemu), ...args];
    const result = await run(qemu, args, timeoutMs);
    const fields = {
      binary: qemu.path,
      machine,
      argv,
      exitCode: result.code,
      stderr: result.stderr,
      ...(result.error ? { cause: result.error } : {}),
    };
    if (result.signal !== null)
      throw new VmstateRunError(
        'timeout',
        `killed by ${result.signal} (timeout ${timeoutMs} ms)`,
        fields,
      );
    if (result.code !== 0) {
      const help = await run(qemu, ['-machine', 'help'], timeoutMs);
      if (help.code === 0 && !parseMachineHelp(help.stdout).has(machine))
        throw new VmstateRunError(
          'unknown-machine-type',
          `QEMU ${qemu.version} has no machine type ${JSON.stringify(machine)} (see \`-machine help\`)`,
          fields,
        );
      throw new VmstateRunError(
        'failed',
        `exited with ${String(result.code)}: ${result.stderr.trim().slice(-500)}`,
        fields,
      );
    }
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new VmstateRunError('no-dump', 'QEMU exited 0 without writing the dump', {
        ...fields,
        cause: error,
      });
    }
    return {
      binary: qemu,
      dump: parseVmstateDump(text, `${qemu.path} (QEMU ${qemu.version}, ${machine})`),
      text,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
