/**
 * The Node side of the browser tests against real QEMU (project `browser`, group c): a QEMU
 * (the system's, `-S`, 16 MiB) behind `qmpkit bridge`, and a VM started with `qmpkit vm start`
 * (blank 16 MiB qcow2, 32 MiB RAM, TCG) behind `qmpkit serve`. Everything runs as the real
 * CLI in child processes (argument arrays, no shell); the URLs reach the tests through
 * `provide`. Teardown stops the servers and the VM, then kills, by pid, every process whose
 * command line names this run's private temp dir (QEMUs, the supervisor, the servers), so
 * nothing is left even when a test or the setup failed halfway.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `ws://127.0.0.1:PORT/?token=…` of `qmpkit bridge`, or why there is none. */
    qemuBridge: { url: string } | { skip: string };
    /** `http://127.0.0.1:PORT/?token=…` of `qmpkit serve`, or why there is none. */
    qemuDashboard: { url: string } | { skip: string };
    /** Where screenshots go (gitignored). */
    screenshotDir: string;
  }
}

const REPO = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(REPO, 'packages/cli/src/bin.ts');
const QEMU = 'qemu-system-x86_64';
export const SCREENSHOTS = path.join(REPO, 'test/output/browser');

const run = promisify(execFile);

/** `qmpkit ARGS` on the workspace's sources. */
function cliArgs(args: readonly string[]): string[] {
  return ['--conditions=@qmpkit/source', '--import', 'tsx', BIN, ...args];
}

/** Starts a long-running `qmpkit` command; resolves to the child and its first stdout line. */
function startServer(args: readonly string[]): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, cliArgs(args), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      err = (err + s).slice(-4096);
    });
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, line: out.slice(0, nl) });
    });
    child.once('exit', (code) =>
      reject(new Error(`qmpkit ${args[0]} exited (${code}) before printing its URL: ${err}`)),
    );
  });
}

function qemuMissing(): string | undefined {
  const probe = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? undefined : `${QEMU} is not installed`;
}

/** Pids of processes whose command line names `dir` (ours: sockets, pidfiles, --dir). */
function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir)) pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read: not a process of this run
    }
  }
  return pids;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  project.provide('screenshotDir', SCREENSHOTS);
  const missing = qemuMissing();
  if (missing !== undefined) {
    if (process.env.CI === 'true') throw new Error(`CI=true but ${missing}`);
    project.provide('qemuBridge', { skip: missing });
    project.provide('qemuDashboard', { skip: missing });
    return async () => {};
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-browser-'));
  const vmDir = path.join(dir, 'vm');
  const servers: ChildProcess[] = [];
  const teardown = async () => {
    for (const child of servers)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    if (existsSync(path.join(vmDir, 'control.sock')))
      await run(process.execPath, cliArgs(['vm', 'stop', '--dir', vmDir])).catch((error: unknown) =>
        console.warn(`[browser setup] vm stop failed: ${String(error)}`),
      );
    // Whatever is left (a failed stop, a QEMU restarted by a load): by pid, named by the dir.
    for (const pid of processesUnder(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // it ended between the scan and the kill
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // The bridge's QEMU: no guest needed, it only answers QMP.
    const socket = path.join(dir, 'qmp.sock');
    const qemu = spawn(
      QEMU,
      [
        ...['-machine', 'pc', '-m', '16', '-accel', 'tcg', '-S', '-nodefaults'],
        ...['-display', 'none', '-pidfile', path.join(dir, 'qemu.pid')],
        ...['-qmp', `unix:${socket},server=on,wait=off`],
      ],
      { stdio: 'ignore' },
    );
    servers.push(qemu);
    const deadline = Date.now() + 30_000;
    while (!existsSync(path.join(dir, 'qemu.pid'))) {
      if (qemu.exitCode !== null || Date.now() > deadline)
        throw new Error(`QEMU did not start (exit ${qemu.exitCode})`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const bridge = await startServer(['bridge', '--qmp', `unix:${socket}`]);
    servers.push(bridge.child);
    project.provide('qemuBridge', { url: bridge.line });

    // The dashboard's VM.
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(dir, 'disk.qcow2'), '16M']);
    const config = path.join(dir, 'vm.json');
    writeFileSync(
      config,
      JSON.stringify({
        format: 'qmpkit-devices/vm-config',
        version: 1,
        config: {
          machine: { type: 'pc-i440fx-7.2' },
          memory: { size: 32 * 1024 * 1024 },
          blockdevs: [
            { driver: 'file', 'node-name': 'disk0-file', filename: 'disk.qcow2' },
            { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' },
          ],
          devices: [{ driver: 'ide-hd', id: 'boot0', drive: 'disk0', bus: 'ide.0', bootindex: 0 }],
        },
      }),
    );
    await run(process.execPath, cliArgs(['vm', 'start', config, '--dir', vmDir, '--accel', 'tcg']));
    const serve = await startServer(['serve', '--dir', vmDir]);
    servers.push(serve.child);
    project.provide('qemuDashboard', { url: serve.line });
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}
