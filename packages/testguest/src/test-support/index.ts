/**
 * `@qmpkit/testguest/test-support`: what every real-QEMU test file needs, in one place.
 * Test-only: exported under the workspace's source condition and left out of the published
 * package (not in `publishConfig.exports`, not built).
 *
 * - Binary lookup: `QEMU` (the system's `qemu-system-x86_64` and `qemu-img`, with version),
 *   `QEMU_10` (QEMU 10.0 unpacked by `pnpm qemu:fetch 10.0` under the repository's `.cache`,
 *   run with its own `-L` data dir and `QEMU_MODULE_DIR`), `qemuBinaries()` lists them all.
 *   Spawn through `spawnQemu({ binary })` or with `binary.baseArgs` and `binary.env`.
 * - Skip rules: `qemuSuite()` / `requireQemu(ctx)` skip with the reason when QEMU is missing;
 *   with `CI=true` they never skip: the test fails and says what is missing.
 * - Temp dirs: `privateTempDir()` makes a 0700 dir (checked) and removes it afterwards.
 * - Cleanup: `spawnQemu()` / `trackQemu()` remember every QEMU a test started; `qemuSuite()`
 *   kills them after each test or file (also when the test failed or timed out), and a
 *   process `exit` hook kills any that are left, by their own pid only. QEMUs started by
 *   code under test or by child processes are found by their `-pidfile` argument: every
 *   QEMU whose pidfile lies under the suite's temp dir is killed too (`killQemusUnder`), and
 *   `suite.trackPid()` / `suite.adopt()` take pids and handles (e.g. a `Machine`) a test got.
 *   A child process finds its own QEMU children with `childQemuPids()` to report them.
 * - The tiny guest: `tinyGuestArgs()` boots the 512-byte guest of this package.
 */
import {
  type ChildProcess,
  type ChildProcessByStdio,
  type SpawnOptions,
  spawn,
  spawnSync,
} from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import {
  type GuestQemuArgsOptions,
  guestQemuArgs,
  readCounterFromImageFile,
  writeGuestImage,
} from '../node.js';

/** A test-support precondition failed (e.g. a temp dir is not private, QEMU exited early). */
export class TestSupportError extends Error {
  override readonly name = 'TestSupportError' as const;
}

// ---------------------------------------------------------------------------------------
// Binary lookup

export interface QemuVersion {
  readonly major: number;
  readonly minor: number;
  readonly micro: number;
}

/** One QEMU installation the tests can use. */
export interface QemuBinary {
  /** A short name: `system` for the one on PATH. */
  readonly id: string;
  /** The `qemu-system-x86_64` to spawn (a PATH name or a path). */
  readonly system: string;
  /** The matching `qemu-img`. */
  readonly img: string;
  /** The matching `qemu-io` (not probed: only a few tests use it, and fail if it is missing). */
  readonly io: string;
  /**
   * The matching `qemu-storage-daemon` as `@qmpkit/machine`'s `launchStorageDaemon({ qemu })`
   * takes it (with `cacheDir: REPO_CACHE_DIR`): a release name of the cache or a path/name.
   * Not probed: the files that use it fail when it is missing.
   */
  readonly storageDaemon: string;
  /** Arguments every spawn of `system` needs (e.g. `-L <datadir>` for an unpacked build). */
  readonly baseArgs: readonly string[];
  /** Environment every spawn of `system` needs on top of `process.env` (e.g. `QEMU_MODULE_DIR`). */
  readonly env: Readonly<Record<string, string>>;
  /**
   * What `@qmpkit/machine`'s `launch({ qemu })` takes for this binary: a release name of the
   * repository's cache (with `cacheDir: REPO_CACHE_DIR`) or the system binary's path.
   */
  readonly machineQemu: string;
  /** Parsed from `--version`; `undefined` when the binary is missing. */
  readonly version: QemuVersion | undefined;
  /** `--version`'s first line, or why the binary is not usable. */
  readonly description: string;
  /** Why this binary cannot be used, or `undefined` when it can. */
  readonly missing: string | undefined;
}

interface Candidate {
  readonly id: string;
  readonly system: string;
  readonly img: string;
  readonly io: string;
  readonly storageDaemon: string;
  readonly baseArgs?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly machineQemu?: string;
  /** Checked before `--version`: why the binary is not there (e.g. not fetched). */
  readonly absent?: string | undefined;
}

/** The repository's download cache (`pnpm qemu:fetch`, `pnpm testguest:linux` fill it). */
export const REPO_CACHE_DIR: string = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../../.cache',
);

/** QEMU 10.0 as `pnpm qemu:fetch 10.0` unpacks it (see `@qmpkit/machine`'s `binary.ts`). */
function qemu10Candidate(): Candidate {
  const base = path.join(REPO_CACHE_DIR, 'qemu', '10.0');
  const root = path.join(base, 'root');
  const fetched = existsSync(path.join(base, 'manifest.json'));
  return {
    id: '10.0',
    system: path.join(root, 'usr/bin/qemu-system-x86_64'),
    // The backport ships no qemu-utils: images are made with the system's qemu-img (qcow2 is
    // the same format on both).
    img: process.env.QMPKIT_QEMU_IMG ?? 'qemu-img',
    io: process.env.QMPKIT_QEMU_IO ?? 'qemu-io',
    // Unpacked from qemu-utils into `.cache/qemu-utils/10.0` by the same fetch.
    storageDaemon: '10.0',
    baseArgs: ['-L', path.join(root, 'usr/share/qemu')],
    env: { QEMU_MODULE_DIR: path.join(root, 'usr/lib/x86_64-linux-gnu/qemu') },
    machineQemu: '10.0',
    absent: fetched ? undefined : 'QEMU 10.0 is not fetched (run `pnpm qemu:fetch 10.0`; CI does)',
  };
}

/**
 * The binaries the tests know, in order. `QMPKIT_QEMU` / `QMPKIT_QEMU_IMG` override the
 * system pair. A second installation (QEMU 10.0 unpacked under `.cache/qemu-10.0`, see
 * `docs`) would be added here with its `-L` data dir in `baseArgs`.
 */
function candidates(): Candidate[] {
  return [
    {
      id: 'system',
      system: process.env.QMPKIT_QEMU ?? 'qemu-system-x86_64',
      img: process.env.QMPKIT_QEMU_IMG ?? 'qemu-img',
      io: process.env.QMPKIT_QEMU_IO ?? 'qemu-io',
      storageDaemon: process.env.QMPKIT_QEMU_STORAGE_DAEMON ?? 'qemu-storage-daemon',
    },
    qemu10Candidate(),
  ];
}

/** Parses `QEMU emulator version 7.2.22 (…)` (or `qemu-img version 7.2.22`). */
export function parseQemuVersion(text: string): QemuVersion | undefined {
  const m = /version (\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3] ?? 0) };
}

function probe(candidate: Candidate): QemuBinary {
  const env = { ...process.env, ...candidate.env };
  const run = (command: string) =>
    spawnSync(command, ['--version'], { encoding: 'utf8', timeout: 20_000, env });
  const firstLine = (s: string | null) => (s ?? '').split('\n')[0]?.trim() ?? '';
  let missing = candidate.absent;
  let versionText = '';
  if (missing === undefined) {
    const system = run(candidate.system);
    const img = run(candidate.img);
    if (system.error || system.status !== 0)
      missing = `${candidate.system} is not runnable (${system.error?.message ?? `exit ${system.status}`})`;
    else if (img.error || img.status !== 0)
      missing = `${candidate.img} is not runnable (${img.error?.message ?? `exit ${img.status}`})`;
    versionText = system.stdout ?? '';
  }
  return {
    id: candidate.id,
    system: candidate.system,
    img: candidate.img,
    io: candidate.io,
    storageDaemon: candidate.storageDaemon,
    baseArgs: candidate.baseArgs ?? [],
    env: candidate.env ?? {},
    machineQemu: candidate.machineQemu ?? candidate.system,
    version: missing ? undefined : parseQemuVersion(versionText),
    description: missing ?? firstLine(versionText),
    missing,
  };
}

let known: QemuBinary[] | undefined;

/** Every binary the tests know (probed once per process). */
export function qemuBinaries(): readonly QemuBinary[] {
  known ??= candidates().map(probe);
  return known;
}

/** The binary with this id (default: the system's). */
export function qemuBinary(id = 'system'): QemuBinary {
  const found = qemuBinaries().find((b) => b.id === id);
  if (!found)
    throw new TestSupportError(
      `no QEMU binary with id ${JSON.stringify(id)} is known to the tests`,
    );
  return found;
}

/** The system's QEMU (7.2 on Debian 12), whichever binary `QEMU` names. */
export const QEMU_SYSTEM: QemuBinary = qemuBinary();

/** QEMU 10.0 from the repository's cache (`missing` says why when it was not fetched). */
export const QEMU_10: QemuBinary = qemuBinary('10.0');

/**
 * The variable that picks the binary a run of the real-QEMU suites is about: `system`
 * (default) or `10.0`. The vitest workspace runs the `qemu-*` projects once per binary with
 * it set, so every suite that follows `QEMU` runs on both and the log names the binary.
 */
export const TEST_QEMU_ENV = 'QMPKIT_TEST_QEMU';

/**
 * The binary this run is about (see `TEST_QEMU_ENV`): the default of `spawnQemu`,
 * `qemuSuite` and `launchQemu`. A file that compares binaries names them (`QEMU_SYSTEM`,
 * `QEMU_10`) and runs once.
 */
export const QEMU: QemuBinary = qemuBinary(process.env[TEST_QEMU_ENV] || 'system');

/**
 * What `@qmpkit/machine`'s `launch` needs to run `binary` (default `QEMU`): spread it into the
 * options, `launch(config, { ...launchQemu(), runDirParent })`.
 */
export function launchQemu(binary: QemuBinary = QEMU): { qemu: string; cacheDir: string } {
  return { qemu: binary.machineQemu, cacheDir: REPO_CACHE_DIR };
}

/** Accelerators the tests pass: TCG on every host, so results do not depend on /dev/kvm. */
export const TEST_ACCEL: readonly ['tcg'] = ['tcg'];

// ---------------------------------------------------------------------------------------
// Skip rules

const inCi = () => process.env.CI === 'true';

/**
 * Why real-QEMU tests on `binary` must skip, or `undefined` to run them. Never a reason
 * with `CI=true`: there a missing QEMU fails the test (see `requireQemu`).
 */
export function qemuSkipReason(binary: QemuBinary = QEMU): string | undefined {
  if (binary.missing === undefined || inCi()) return undefined;
  return `${binary.missing}; outside CI real-QEMU tests are skipped`;
}

/** Appended to a suite name so a skip says why (empty when the suite runs). */
export function skipNote(binary: QemuBinary = QEMU): string {
  const reason = qemuSkipReason(binary);
  return reason === undefined ? '' : ` (skipped: ${reason})`;
}

/** A QEMU the tests need is missing while `CI=true`. */
export class QemuRequiredError extends Error {
  override readonly name = 'QemuRequiredError' as const;
  constructor(readonly binary: QemuBinary) {
    super(`${binary.missing}; with CI=true real-QEMU tests must run, not skip`);
  }
}

/** In a test: skips it (with the reason) when QEMU is missing, or throws in CI. */
export function requireQemu(
  ctx: { skip: (condition: boolean, note?: string) => void },
  binary: QemuBinary = QEMU,
): void {
  if (binary.missing === undefined) return;
  if (inCi()) throw new QemuRequiredError(binary);
  ctx.skip(true, qemuSkipReason(binary));
}

// ---------------------------------------------------------------------------------------
// Temp dirs

export interface TempDir {
  readonly dir: string;
  remove(): void;
}

/** A fresh private (0700, checked) temp dir. */
export function privateTempDir(prefix = 'qmpkit-test-'): TempDir {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const mode = statSync(dir).mode & 0o777;
  if (mode !== 0o700) {
    rmSync(dir, { recursive: true, force: true });
    throw new TestSupportError(`${dir} has mode ${mode.toString(8)}, not 0700`);
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------------------------------
// Processes and cleanup

const started = new Set<ChildProcess>();
/** Temp dirs of live suites: on exit, every QEMU whose pidfile lies under one is killed. */
const sweptDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // The worker is going away (suite ended, or a timeout tore it down): no QEMU outlives it.
  process.once('exit', () => {
    for (const child of started) child.kill('SIGKILL');
    for (const dir of sweptDirs) for (const pid of pidfileQemus(dir)) sigkill(pid);
  });
}

function sigkill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone (ESRCH): nothing left to kill.
  }
}

/** `/proc/<pid>/stat`'s state letter, or `undefined` when the process is gone. */
function procState(pid: number | string, task?: string): string | undefined {
  const file = task === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${task}/stat`;
  try {
    const stat = readFileSync(file, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** True while `pid` runs (a zombie, which only waits to be reaped, does not). */
export function pidRunning(pid: number): boolean {
  const state = procState(pid);
  return state !== undefined && state !== 'Z';
}

/**
 * True once every thread of `pid` has exited. The main thread alone is not enough: it can be
 * a zombie while QEMU's I/O or migration thread still holds the image files (and their locks).
 */
function allThreadsGone(pid: number): boolean {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return true;
  }
  return tasks.every((tid) => {
    const state = procState(pid, tid);
    return state === undefined || state === 'Z';
  });
}

function commandLine(pid: number | string): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}

const isUnder = (file: string, root: string) => file.startsWith(`${root}${path.sep}`);

/**
 * Running processes (zombies excluded) whose command line has `-pidfile <file>` with the file
 * anywhere below `dir`: the QEMUs that code under test (e.g. `@qmpkit/machine`'s `launch`,
 * which gives every QEMU a pidfile in its run dir) or a child process started for a test
 * whose run dirs lie in the test's temp dir. A pid reused by some other program has no such
 * argument and is never matched.
 */
export function pidfileQemus(dir: string): number[] {
  const root = path.resolve(dir);
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = commandLine(entry);
    // `--pidfile`: qemu-storage-daemon's spelling (getopt_long), same meaning.
    let i = argv?.indexOf('-pidfile') ?? -1;
    if (i < 0) i = argv?.indexOf('--pidfile') ?? -1;
    const pidfile = i >= 0 ? argv?.[i + 1] : undefined;
    if (pidfile === undefined || !isUnder(path.resolve(pidfile), root)) continue;
    if (pidRunning(Number(entry))) out.push(Number(entry));
  }
  return out;
}

/** Waits until every thread of `pid` has exited, up to `timeoutMs`; false when it did not. */
export async function waitForPidGone(pid: number, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!allThreadsGone(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/**
 * SIGKILLs every QEMU whose pidfile lies under `dir` (see `pidfileQemus`) and every running
 * pid of `pids` (QEMUs a test or its child processes reported), then waits until all their
 * threads are gone. By pid only, never by name. Returns the pids it killed.
 */
export async function killQemusUnder(dir: string, pids: Iterable<number> = []): Promise<number[]> {
  const targets = new Set(pidfileQemus(dir));
  for (const pid of pids) if (pidRunning(pid)) targets.add(pid);
  for (const pid of targets) sigkill(pid);
  for (const pid of targets)
    if (!(await waitForPidGone(pid)))
      throw new TestSupportError(`QEMU ${pid} still has threads 10 s after SIGKILL`);
  return [...targets];
}

/**
 * For a child process a test starts (e.g. one that launches a machine and is then killed):
 * the pids of this process's QEMU children, read from `/proc/<pid>/task/<pid>/children` (the
 * main thread, where libuv spawns). The child prints them so the test can check and kill them.
 */
export function childQemuPids(parent: number = process.pid): number[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8');
  } catch {
    return [];
  }
  return text
    .split(' ')
    .filter((s) => s.trim() !== '')
    .map(Number)
    .filter((pid) => commandLine(pid)?.[0]?.includes('qemu-system') === true);
}

/** Remembers `child` so the suite's cleanup (and the exit hook) kills it. Returns it. */
export function trackQemu<T extends ChildProcess>(child: T): T {
  installExitHook();
  if (child.exitCode !== null || child.signalCode !== null) return child;
  started.add(child);
  child.once('exit', () => started.delete(child));
  return child;
}

/** QEMU processes started through this module that are still running. */
export function runningQemus(): readonly ChildProcess[] {
  return [...started];
}

/** SIGKILLs `child` (a pid this module or the test started) and waits for its exit. */
export async function killQemu(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** Kills every QEMU started through this module that still runs. */
export async function killStartedQemus(): Promise<void> {
  await Promise.all([...started].map(killQemu));
}

export interface SpawnQemuOptions extends SpawnOptions {
  readonly binary?: QemuBinary;
}

/** Spawns `binary.system` with `args` (an argument array, never a shell) and tracks it. */
export function spawnQemu(args: readonly string[], options: SpawnQemuOptions = {}): ChildProcess {
  const { binary = QEMU, ...spawnOptions } = options;
  const env = { ...(spawnOptions.env ?? process.env), ...binary.env };
  return trackQemu(spawn(binary.system, [...binary.baseArgs, ...args], { ...spawnOptions, env }));
}

/**
 * Runs `script` (a TypeScript file, e.g. a `*.test-support.ts` that launches a machine and
 * is then killed by the test) in a separate Node process on the workspace's sources. The
 * process is tracked like a QEMU: killed in the suite's cleanup and on exit if it still runs.
 */
export function spawnNodeChild(
  script: string,
  args: readonly string[],
): ChildProcessByStdio<null, Readable, Readable> {
  return trackQemu(
    spawn(process.execPath, ['--conditions=@qmpkit/source', '--import', 'tsx', script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/** Waits until every path exists, failing early when `child` exits or after `timeoutMs`. */
export async function waitForFiles(
  paths: readonly string[],
  child: ChildProcess,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!paths.every((p) => existsSync(p))) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new TestSupportError(
        `QEMU exited (${child.exitCode ?? child.signalCode}) before creating ${paths.join(', ')}`,
      );
    if (Date.now() > deadline)
      throw new TestSupportError(`QEMU did not create ${paths.join(', ')} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface QemuSuiteOptions {
  /** When to kill the QEMUs the tests started: after each test, or after the file (default). */
  readonly kill?: 'each' | 'all';
  readonly binary?: QemuBinary;
  /** Prefix of the suite's private temp dir. */
  readonly prefix?: string;
}

/** Something a test started that stops with `kill()` (e.g. a `Machine` of `@qmpkit/machine`). */
export interface Killable {
  /** When present, `kill()` is called only while it is `'running'`. */
  readonly status?: string;
  kill(): Promise<unknown>;
}

export interface QemuSuite {
  /** The suite's private (0700) temp dir, removed after the file. */
  readonly dir: string;
  readonly binary: QemuBinary;
  /** Kills `handle` in the suite's cleanup (before the pid sweep) unless it ended. Returns it. */
  adopt<T extends Killable>(handle: T): T;
  /** A QEMU pid a test (or its child process) reported: killed in the cleanup if it runs. */
  trackPid(pid: number): void;
}

/**
 * Registers the hooks of a real-QEMU file (call at the top of the file or a `describe`):
 * each test skips with the reason when QEMU is missing (fails in CI); after each test or
 * after the file, adopted handles are killed, then every QEMU started through this module,
 * every QEMU whose pidfile lies under the suite's temp dir and every tracked pid; the temp
 * dir is removed after the file — also when a test failed or timed out.
 */
export function qemuSuite(options: QemuSuiteOptions = {}): QemuSuite {
  const binary = options.binary ?? QEMU;
  const tmp = privateTempDir(options.prefix);
  const handles: Killable[] = [];
  const pids = new Set<number>();
  installExitHook();
  sweptDirs.add(tmp.dir);
  const cleanup = async () => {
    const errors: unknown[] = [];
    for (const handle of handles.splice(0)) {
      if (handle.status !== undefined && handle.status !== 'running') continue;
      await handle.kill().catch((error: unknown) => errors.push(error));
    }
    await killStartedQemus();
    await killQemusUnder(tmp.dir, pids);
    pids.clear();
    if (errors.length > 0)
      throw new TestSupportError('killing a handle a test adopted failed', { cause: errors[0] });
  };
  beforeAll(() => {
    if (binary.missing !== undefined && inCi()) throw new QemuRequiredError(binary);
  });
  beforeEach((ctx) => {
    const reason = qemuSkipReason(binary);
    ctx.skip(reason !== undefined, reason);
  });
  if (options.kill === 'each') afterEach(cleanup);
  afterAll(async () => {
    try {
      await cleanup();
    } finally {
      sweptDirs.delete(tmp.dir);
      tmp.remove();
    }
  });
  return {
    dir: tmp.dir,
    binary,
    adopt: (handle) => {
      handles.push(handle);
      return handle;
    },
    trackPid: (pid) => {
      pids.add(pid);
    },
  };
}

// ---------------------------------------------------------------------------------------
// The tiny guest

/**
 * Writes this package's 512-byte guest to `<dir>/<name>.raw` and returns the QEMU
 * arguments that boot it (TCG, no display, COM1 per `serial`); append `-qmp` etc.
 */
export async function tinyGuestArgs(
  dir: string,
  options: Omit<GuestQemuArgsOptions, 'image' | 'format'> & {
    readonly name?: string;
    readonly intervalMs?: number;
  } = {},
): Promise<string[]> {
  const { name = 'guest', intervalMs = 20, ...rest } = options;
  const image = path.join(dir, `${name}.raw`);
  await writeGuestImage(image, { intervalMs });
  return guestQemuArgs({ accel: TEST_ACCEL, ...rest, image });
}

/** A VM configuration as far as the helpers below read it (a `VmConfig` of `@qmpkit/devices`). */
export interface BlockConfigView {
  readonly blockdevs?: readonly object[];
  readonly devices?: readonly object[];
}

const field = (o: object | undefined, key: string): unknown =>
  o === undefined ? undefined : Object.getOwnPropertyDescriptor(o, key)?.value;

/**
 * The file under the format node that device `deviceId` reads now, i.e. the top of its active
 * chain (it changes with every overlay a snapshot puts above it); '' when there is none.
 */
export function deviceTopFile(config: BlockConfigView, deviceId = 'boot0'): string {
  const blockdevs = config.blockdevs ?? [];
  const node = (name: unknown) => blockdevs.find((n) => field(n, 'node-name') === name);
  const drive = field(
    (config.devices ?? []).find((d) => field(d, 'id') === deviceId),
    'drive',
  );
  const file = field(node(field(node(drive), 'file')), 'filename');
  return typeof file === 'string' ? file : '';
}

/**
 * The counter the test guest last wrote to the qcow2 disk behind `deviceId` (the top of its
 * active chain), read with force-share so a running QEMU's lock does not stand in the way.
 */
export function diskCounterOf(
  config: BlockConfigView,
  deviceId = 'boot0',
): Promise<number | undefined> {
  return readCounterFromImageFile(deviceTopFile(config, deviceId), {
    format: 'qcow2',
    forceShare: true,
  });
}

/**
 * A loopback TCP port nothing listens on right now (the kernel's pick, released again), for
 * servers whose port must be named up front (QEMU reports none it picked itself for NBD).
 */
export async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string')
    throw new TestSupportError(`no TCP port from a loopback listener: ${String(address)}`);
  return address.port;
}
