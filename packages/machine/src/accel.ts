/**
 * Which accelerators a QEMU binary can actually use on this host, so a launch passes only
 * what works instead of `-accel kvm -accel tcg` and letting QEMU print "Could not access KVM
 * kernel module … falling back to tcg" (containers and CI runners without KVM are common).
 *
 * Two facts decide: what the binary was built with (`-accel help`), and whether the KVM
 * device is present and opens read-write for this user (what QEMU itself does first).
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

export interface AcceleratorProbe {
  /** The binary that was asked. */
  readonly binary: string;
  /** Accelerators compiled into the binary, as `-accel help` lists them. */
  readonly compiled: readonly string[];
  /** Whether KVM can be used here, and why not when it cannot. */
  readonly kvm: { readonly usable: boolean; readonly reason?: string };
  /** What to pass, best first: `kvm` when usable, then `tcg` when compiled in. */
  readonly usable: readonly ('kvm' | 'tcg')[];
}

export interface ProbeOptions {
  /** The KVM device (default `/dev/kvm`). */
  readonly kvmDevice?: string;
  /** How long `-accel help` may take (default 10 s). */
  readonly timeoutMs?: number;
  /** The binary's environment (e.g. `QEMU_MODULE_DIR` of an unpacked build; default `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
}

/** The binary could not be asked for its accelerators (missing, not QEMU, timed out). */
export class AcceleratorProbeError extends Error {
  override readonly name = 'AcceleratorProbeError' as const;
  constructor(
    readonly binary: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot list the accelerators of ${binary}: ${detail}`, options);
  }
}

export function isAcceleratorProbeError(error: unknown): error is AcceleratorProbeError {
  return error instanceof Error && error.name === 'AcceleratorProbeError';
}

/** Parses `-accel help` output: a heading line, then one accelerator name per line. */
export function parseAccelHelp(output: string): string[] {
  return output
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => /^[a-z][a-z0-9_-]*$/.test(line));
}

async function accelHelp(
  binary: string,
  timeoutMs: number,
  env: NodeJS.ProcessEnv | undefined,
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      binary,
      ['-accel', 'help'],
      { timeout: timeoutMs, encoding: 'utf8', ...(env !== undefined ? { env } : {}) },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new AcceleratorProbeError(binary, stderr.trim() || error.message, { cause: error }),
          );
          return;
        }
        resolve(stdout);
      },
    );
  });
}

/** Opens the KVM device read-write (as QEMU does) and closes it again. */
async function kvmUsable(device: string): Promise<{ usable: boolean; reason?: string }> {
  try {
    const handle = await open(device, constants.O_RDWR);
    await handle.close();
    return { usable: true };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    return { usable: false, reason: `${device}: ${code}` };
  }
}

/** Asks `binary` and the host which accelerators work. */
export async function probeAccelerators(
  binary = 'qemu-system-x86_64',
  options: ProbeOptions = {},
): Promise<AcceleratorProbe> {
  const compiled = parseAccelHelp(
    await accelHelp(binary, options.timeoutMs ?? 10_000, options.env),
  );
  const device = options.kvmDevice ?? '/dev/kvm';
  const kvm = compiled.includes('kvm')
    ? await kvmUsable(device)
    : { usable: false, reason: `${binary} was built without kvm` };
  const usable: ('kvm' | 'tcg')[] = [];
  if (kvm.usable) usable.push('kvm');
  if (compiled.includes('tcg')) usable.push('tcg');
  return { binary, compiled, kvm, usable };
}

const cache = new Map<string, Promise<readonly ('kvm' | 'tcg')[]>>();

/**
 * The accelerators to pass to `binary` on this host, best first (probed once per binary and
 * process). Falls back to `['tcg']` only when the probe itself fails, so a launch still
 * reports the binary's own error rather than the probe's.
 */
export function usableAccelerators(
  binary = 'qemu-system-x86_64',
  env?: NodeJS.ProcessEnv,
): Promise<readonly ('kvm' | 'tcg')[]> {
  // Per binary and module dir: the same executable with other modules may list others.
  const key = `${binary}\0${env?.QEMU_MODULE_DIR ?? ''}`;
  let found = cache.get(key);
  if (!found) {
    found = probeAccelerators(binary, env !== undefined ? { env } : {}).then(
      (probe) => probe.usable,
      // The binary is missing or broken: launching it fails next with a QemuLaunchError that
      // carries QEMU's own exit status and stderr, which says more than the probe could.
      () => {
        cache.delete(key);
        return ['tcg'] as const;
      },
    );
    cache.set(key, found);
  }
  return found;
}
