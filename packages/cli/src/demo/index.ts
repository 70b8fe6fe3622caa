/**
 * `qmpkit demo`: the tour a new user runs first. With QEMU installed it boots the project's
 * tiny guest and shows typed queries, a hot-plug and every snapshot strategy with timings;
 * without QEMU it says so and runs the same tour against the embedded fake QMP server.
 */
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CliIo } from '../io.js';
import { fakeTour } from './fake.js';
import { realTour } from './real.js';
import { createReport } from './report.js';

export interface DemoOptions {
  /** Use the fake server even when QEMU is installed. */
  readonly fake?: boolean;
  /** Accelerators to try, in order (default `kvm`, then `tcg`). */
  readonly accel?: readonly string[];
  /** Keep the work directory (images, state files) instead of deleting it. */
  readonly keep?: boolean;
}

/** The first executable `name` on PATH, or undefined. */
export function findOnPath(name: string, envPath: string | undefined): string | undefined {
  for (const dir of (envPath ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export async function runDemo(io: CliIo, options: DemoOptions): Promise<number> {
  const report = createReport(io);
  const started = performance.now();
  const qemu = findOnPath('qemu-system-x86_64', io.env.PATH);
  const qemuImg = findOnPath('qemu-img', io.env.PATH);
  const workDir = mkdtempSync(path.join(tmpdir(), 'qmpkit-demo-')); // 0700
  try {
    if (options.fake || !qemu || !qemuImg) {
      if (!options.fake) {
        report.warn(
          `${!qemu ? 'qemu-system-x86_64' : 'qemu-img'} is not on PATH (Debian: apt-get install -y qemu-system-x86 qemu-utils): running the tour against the embedded fake QMP server instead`,
        );
      }
      await fakeTour(report, workDir);
    } else {
      await realTour(report, workDir, { qemu, accel: options.accel ?? ['kvm', 'tcg'] });
    }
    report.section(`Done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    if (options.keep) report.detail(`work directory kept: ${workDir}`);
    return 0;
  } finally {
    if (!options.keep) rmSync(workDir, { recursive: true, force: true });
  }
}
