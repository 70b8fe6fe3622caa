/**
 * Cross-check against NASM's disassembler. Nothing in the package needs it; tests that use it
 * skip (saying why) when `ndisasm` is not installed, except in CI, which installs it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface DisassembledLine {
  readonly address: number;
  /** Upper-case hex of the instruction bytes. */
  readonly hex: string;
  readonly text: string;
}

/** True when `ndisasm` can be run. */
export function hasNdisasm(): boolean {
  try {
    execFileSync('ndisasm', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Why the ndisasm cross-checks cannot run here, or undefined when they can. In CI
 * (`CI=true`, where `.ci/run` installs Debian's nasm) a missing ndisasm is an error.
 */
export function ndisasmSkipReason(): string | undefined {
  if (hasNdisasm()) return undefined;
  const why = 'ndisasm is not installed (Debian package nasm)';
  if (process.env.CI === 'true') throw new Error(`${why}; CI must run the ndisasm cross-checks`);
  return why;
}

/** Splits ndisasm output into lines, joining its `-XXXX` continuation lines. */
export function parseNdisasm(out: string): DisassembledLine[] {
  const rows: { address: number; hex: string; text: string }[] = [];
  for (const line of out.split('\n')) {
    const main = /^([0-9A-F]{8})\s+([0-9A-F]+)\s+(.*)$/.exec(line);
    if (main) {
      rows.push({
        address: Number.parseInt(main[1] ?? '', 16),
        hex: main[2] ?? '',
        text: main[3] ?? '',
      });
      continue;
    }
    const more = /^\s+-([0-9A-F]+)$/.exec(line);
    const last = rows[rows.length - 1];
    if (more && last) last.hex += more[1] ?? '';
  }
  return rows;
}

/** Disassembles 16-bit code loaded at `origin` (spawned with an argument array). */
export function disassemble(code: Uint8Array, origin: number): DisassembledLine[] {
  const dir = mkdtempSync(join(tmpdir(), 'qmpkit-ndisasm-'));
  try {
    const file = join(dir, 'code.bin');
    writeFileSync(file, code);
    const out = execFileSync('ndisasm', ['-b', '16', '-o', `0x${origin.toString(16)}`, file], {
      encoding: 'utf8',
    });
    return parseNdisasm(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
