/**
 * The one `qemu-img` runner: an argument array (never a shell), stdout and stderr kept, a
 * typed `QemuImgError`, and a parent-death signal (`setpriv --pdeathsig`) so an image
 * operation never runs on after the process that started it was killed.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '@qmpkit/transport';
import { QemuImgError } from './errors.js';
import { diesWithUs } from './parent-death.js';

export interface QemuImgOptions {
  /** The binary (default `qemu-img` on `PATH`). */
  readonly qemuImg?: string;
  /** Exit codes that count as success (default `[0]`). */
  readonly okExitCodes?: readonly number[];
  /** Told once when `setpriv` is missing. */
  readonly logger?: Logger;
}

export interface QemuImgResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `qemu-img args…`; rejects with `QemuImgError` unless it exits with an ok code. */
export async function runQemuImg(
  args: readonly string[],
  options: QemuImgOptions = {},
): Promise<QemuImgResult> {
  const binary = options.qemuImg ?? 'qemu-img';
  const ok = options.okExitCodes ?? [0];
  const run = await diesWithUs(binary, args, options.logger);
  return new Promise((resolve, reject) => {
    const child = spawn(run.command, run.args, { stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.once('error', (cause) =>
      reject(
        new QemuImgError(
          { command: binary, args, exitCode: null, signal: null, stderr: String(cause.message) },
          { cause },
        ),
      ),
    );
    child.once('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString();
      const stderr = Buffer.concat(err).toString();
      if (code !== null && ok.includes(code)) resolve({ exitCode: code, stdout, stderr });
      else reject(new QemuImgError({ command: binary, args, exitCode: code, signal, stderr }));
    });
  });
}

export interface LeakRepair {
  readonly file: string;
  /** Leaked clusters found. */
  readonly leaks: number;
  /** Leaked clusters reclaimed (`qemu-img check -r leaks`). */
  readonly leaksFixed: number;
}

/**
 * `qemu-img check -r leaks` of a qcow2 image: reclaims clusters that are allocated but used
 * by nothing (what a save killed in the middle leaves behind). Only while no QEMU has the
 * image open: qemu-img takes the image's write lock and fails otherwise.
 */
export async function repairLeaks(
  file: string,
  options: Omit<QemuImgOptions, 'okExitCodes'> = {},
): Promise<LeakRepair> {
  // Exit 0: consistent (now); 3: leaks left (they are reported, not a failure here).
  const result = await runQemuImg(['check', '-r', 'leaks', '-f', 'qcow2', '--output=json', file], {
    ...options,
    okExitCodes: [0, 3],
  });
  let report: { leaks?: unknown; 'leaks-fixed'?: unknown } = {};
  try {
    report = JSON.parse(result.stdout) as typeof report;
  } catch {
    // No report: nothing to count.
  }
  const leaks = typeof report.leaks === 'number' ? report.leaks : 0;
  const fixed = typeof report['leaks-fixed'] === 'number' ? report['leaks-fixed'] : 0;
  return { file, leaks: leaks + fixed, leaksFixed: fixed };
}
