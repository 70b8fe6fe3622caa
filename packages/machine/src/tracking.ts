/**
 * Knowing every QEMU of a run directory, also after this process was killed.
 *
 * - Before a spawn, a line is appended to `<runDir>/qemu.journal` (and fsynced): what is
 *   about to start (`vm`, or an `incoming` QEMU of a restore) and by which manager. After the
 *   spawn its pid and start time follow, after its exit an `exit` line.
 * - Every QEMU gets `-pidfile <runDir>/qemu.pid`: QEMU writes it itself early in start-up,
 *   and the argument makes the run directory part of the process's command line. That is
 *   what identifies a QEMU of this run directory in `/proc/<pid>/cmdline`, including one
 *   killed so early that neither the pidfile nor the journal's pid line was written. A pid
 *   whose command line does not name this run directory's pidfile is never touched (a reused
 *   pid is some other program).
 * - `endRunDirQemus` (run under the run directory's lock, by launch and relaunch, before any
 *   image is touched) ends every such process and waits until all its threads are gone: first
 *   with SIGTERM, so QEMU closes its images as at a clean quit (persistent dirty bitmaps are
 *   written to qcow2 only then; a SIGKILLed QEMU loses them and the next incremental backup
 *   needs a full one), and with SIGKILL when it has not gone after `graceMs`.
 */
import { open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '@qmpkit/transport';
import { LeftoverQemuError } from './errors.js';
import { processStat, waitForProcessGone } from './proc.js';

export const PIDFILE = 'qemu.pid';
export const JOURNAL = 'qemu.journal';

/** `vm`: the machine's QEMU; `incoming`: a QEMU started to restore a saved state into. */
export type QemuRole = 'vm' | 'incoming';

export function pidfilePath(runDir: string): string {
  return path.join(runDir, PIDFILE);
}

/** The arguments that tie a QEMU to its run directory (see the module comment). */
export function pidfileArgs(runDir: string): string[] {
  return ['-pidfile', pidfilePath(runDir)];
}

type JournalEntry =
  | { readonly op: 'spawn'; readonly role: QemuRole; readonly manager: number; readonly at: string }
  | { readonly op: 'pid'; readonly pid: number; readonly startTime: number | null }
  | { readonly op: 'exit'; readonly pid: number };

/** Appends one entry and fsyncs it: the record exists before what it announces happens. */
export async function journal(runDir: string, entry: JournalEntry): Promise<void> {
  const handle = await open(path.join(runDir, JOURNAL), 'a', 0o600);
  try {
    await handle.appendFile(`${JSON.stringify(entry)}\n`, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function readJournal(runDir: string): Promise<JournalEntry[]> {
  let text: string;
  try {
    text = await readFile(path.join(runDir, JOURNAL), 'utf8');
  } catch {
    return [];
  }
  const out: JournalEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line) as JournalEntry);
    } catch {
      // A line cut short by a crash in the middle of an append: nothing after it was written.
    }
  }
  return out;
}

async function commandLine(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0');
  } catch {
    return undefined;
  }
}

/** The `-pidfile` argument of a command line, if it has one. */
function pidfileArg(argv: readonly string[]): string | undefined {
  const i = argv.indexOf('-pidfile');
  return i >= 0 ? argv[i + 1] : undefined;
}

export interface RunDirProcess {
  readonly pid: number;
  /** The run directory the process's `-pidfile` lies in. */
  readonly runDir: string;
  readonly startTime: number | undefined;
}

/**
 * Running processes (zombies excluded) whose command line has `-pidfile <dir>/qemu.pid`, or
 * with `nested`, a pidfile anywhere below `dir` (test clean-up: every QEMU under a temp dir).
 */
export async function runDirProcesses(
  dir: string,
  options: { readonly nested?: boolean } = {},
): Promise<RunDirProcess[]> {
  const root = path.resolve(dir);
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return [];
  }
  const out: RunDirProcess[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const argv = await commandLine(pid);
    const pidfile = argv === undefined ? undefined : pidfileArg(argv);
    if (pidfile === undefined || path.basename(pidfile) !== PIDFILE) continue;
    const runDir = path.dirname(pidfile);
    const match = options.nested
      ? runDir === root || runDir.startsWith(`${root}${path.sep}`)
      : runDir === root;
    if (!match) continue;
    const stat = await processStat(pid);
    if (stat === undefined || stat.state === 'Z') continue;
    out.push({ pid, runDir, startTime: stat.startTime });
  }
  return out;
}

export interface EndedQemu {
  readonly pid: number;
  /** What the journal says it was (`undefined`: not in the journal, e.g. an older manager's). */
  readonly role: QemuRole | undefined;
}

/**
 * Ends every QEMU of `runDir` (see the module comment) and, for state files written before
 * QEMUs carried a pidfile, `legacy` (a pid that must still have the recorded start time).
 * Then starts a fresh journal. Call it with the run directory's lock held.
 */
export async function endRunDirQemus(
  runDir: string,
  options: {
    readonly legacy?: { readonly pid: number; readonly startTime: number } | undefined;
    readonly logger: Logger;
    readonly timeoutMs?: number;
    /** How long a QEMU has after SIGTERM before it gets SIGKILL (default 5000 ms). */
    readonly graceMs?: number;
    /** A running machine's own QEMU: left alone, and the journal and pidfile stay. */
    readonly keep?: number;
  },
): Promise<EndedQemu[]> {
  const entries = await readJournal(runDir);
  const roles = new Map<number, QemuRole>();
  let role: QemuRole | undefined;
  for (const e of entries) {
    if (e.op === 'spawn') role = e.role;
    else if (e.op === 'pid' && role !== undefined) roles.set(e.pid, role);
  }
  const targets = new Map<number, RunDirProcess>();
  for (const p of await runDirProcesses(runDir)) if (p.pid !== options.keep) targets.set(p.pid, p);
  const legacy = options.legacy;
  if (legacy !== undefined && !targets.has(legacy.pid)) {
    const stat = await processStat(legacy.pid);
    if (stat !== undefined && stat.state !== 'Z' && stat.startTime === legacy.startTime)
      targets.set(legacy.pid, { pid: legacy.pid, runDir, startTime: stat.startTime });
  }
  const ended: EndedQemu[] = [];
  const timeout = options.timeoutMs ?? 10_000;
  const grace = options.graceMs ?? 5000;
  const signal = (pid: number, name: NodeJS.Signals) => {
    try {
      process.kill(pid, name);
    } catch {
      // Gone meanwhile.
    }
  };
  // All get SIGTERM at once, so their clean shutdowns overlap; then each is waited for.
  for (const t of targets.values()) signal(t.pid, 'SIGTERM');
  for (const t of targets.values()) {
    let how = 'SIGTERM';
    if (!(await waitForProcessGone(t.pid, grace))) {
      how = `SIGKILL after ${grace} ms without ending on SIGTERM`;
      signal(t.pid, 'SIGKILL');
      if (!(await waitForProcessGone(t.pid, timeout)))
        throw new LeftoverQemuError(runDir, t.pid, timeout);
    }
    const r = roles.get(t.pid);
    ended.push({ pid: t.pid, role: r });
    options.logger.warn(
      `ended a leftover QEMU of ${runDir} (pid ${t.pid}${r ? `, ${r}` : ''}, ${how}): its manager had gone`,
    );
  }
  if (options.keep === undefined) {
    await writeFile(path.join(runDir, JOURNAL), '', { mode: 0o600 });
    await rm(pidfilePath(runDir), { force: true });
  }
  return ended;
}

/**
 * Removes the temp files `writeFileAtomic` leaves when its process is killed mid-write
 * (`.<name>.<pid>.<rand>.tmp`, `.<name>.<pid>.<rand>.bak.tmp`) beside `file`. Only with the
 * run directory's lock held: then no other process writes this file.
 */
export async function removeWriteTemps(file: string): Promise<string[]> {
  const dir = path.dirname(file);
  const prefix = `.${path.basename(file)}.`;
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return removed;
  }
  for (const entry of entries) {
    if (
      !entry.startsWith(prefix) ||
      !/^\d+\.[0-9a-f]+(?:\.bak)?\.tmp$/.test(entry.slice(prefix.length))
    )
      continue;
    await rm(path.join(dir, entry), { force: true });
    removed.push(path.join(dir, entry));
  }
  return removed;
}
