/**
 * The Node side of the browser tests against real QEMU (project `browser`, group c): a QEMU
 * (the system's, `-S`, 16 MiB) behind `qmpkit bridge`, and a VM (blank 16 MiB qcow2, 32 MiB
 * RAM, TCG) run by a `qmpkit vm` supervisor behind `qmpkit serve`. Everything but the two
 * QEMUs runs in this process, through the functions the CLI's `bridge`, `serve` and
 * `vm supervise` call (`startBridge`, `startServe`, `supervise`, stopped through the control
 * client as `vm stop` does), and both sides start at once: starting the CLI through tsx five
 * times (bridge, vm start, its supervisor, serve, vm stop) cost most of the setup, up to a
 * minute on a busy machine. The commands' own parsing is tested in `packages/cli`. The URLs
 * reach the tests through `provide`; the servers' logs go to `test/output/browser/*.log`
 * (gitignored, CI artifacts). Teardown closes the servers, stops the VM, then kills, by pid,
 * every process whose command line names this run's private temp dir (the QEMUs), so nothing
 * is left even when a test or the setup failed halfway.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';
import { ControlClient } from '../../packages/cli/src/vm/client.js';
import { supervise } from '../../packages/cli/src/vm/supervisor.js';
import { startBridge } from '../../packages/cli/src/web/bridge.js';
import { parseListen } from '../../packages/cli/src/web/gate.js';
import { startServe } from '../../packages/cli/src/web/serve.js';

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
const QEMU = 'qemu-system-x86_64';
export const SCREENSHOTS = path.join(REPO, 'test/output/browser');

const run = promisify(execFile);

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

/** A log that `qmpkit bridge`/`serve` would print on stderr, kept for the artifact file. */
function logTo(lines: string[]): (line: string) => void {
  return (line) => lines.push(`${new Date().toISOString()} ${line}`);
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
  const children: ChildProcess[] = [];
  const closers: (() => Promise<void>)[] = [];
  const logs = { bridge: [] as string[], serve: [] as string[], supervisor: [] as string[] };
  let supervised: Promise<unknown> | undefined;

  const teardown = async () => {
    for (const close of closers.splice(0))
      await close().catch((error: unknown) =>
        console.warn(`[browser setup] closing a server failed: ${String(error)}`),
      );
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    if (existsSync(path.join(vmDir, 'control.sock')))
      await ControlClient.connect(vmDir)
        .then(async (client) => {
          try {
            await client.call('stop', {});
          } finally {
            client.close();
          }
        })
        .catch((error: unknown) =>
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
    // The supervisor returns once its QEMU is gone (stopped, or killed just above); its
    // errors are in its log, which is written below.
    await supervised?.catch((error: unknown) =>
      logs.supervisor.push(`supervisor failed: ${String(error)}`),
    );
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(SCREENSHOTS, { recursive: true });
    for (const [name, lines] of Object.entries(logs))
      writeFileSync(path.join(SCREENSHOTS, `${name}.log`), lines.map((l) => `${l}\n`).join(''));
  };

  /** A QEMU that only answers QMP (no guest), behind the bridge. */
  const bridgeSide = async () => {
    const socket = path.join(dir, 'qmp.sock');
    const pidfile = path.join(dir, 'qemu.pid');
    const qemu = spawn(
      QEMU,
      [
        ...['-machine', 'pc', '-m', '16', '-accel', 'tcg', '-S', '-nodefaults'],
        ...['-display', 'none', '-pidfile', pidfile],
        ...['-qmp', `unix:${socket},server=on,wait=off`],
      ],
      { stdio: 'ignore' },
    );
    children.push(qemu);
    // QEMU writes its pidfile once the monitor socket listens; polled (no fixed wait).
    const deadline = Date.now() + 30_000;
    while (!existsSync(pidfile)) {
      if (qemu.exitCode !== null || Date.now() > deadline)
        throw new Error(`QEMU did not start (exit ${qemu.exitCode})`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const bridge = await startBridge({
      qmp: `unix:${socket}`,
      listen: parseListen(undefined),
      log: logTo(logs.bridge),
    });
    closers.push(() => bridge.close());
    project.provide('qemuBridge', { url: bridge.url });
  };

  /** The dashboard's VM (what `qmpkit vm start` does), behind `qmpkit serve`. */
  const dashboardSide = async () => {
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
    // `vm supervise` in this process (no signal handlers: vitest owns them); ended by `stop`.
    const ready = new Promise<void>((resolve, reject) => {
      const supervisor = supervise({
        dir: vmDir,
        config,
        accel: ['tcg'],
        signals: false,
        log: logTo(logs.supervisor),
        notify: (message) => {
          if ('ready' in message) resolve();
          else if ('error' in message)
            reject(new Error(`the VM did not start: ${message.error.message}`));
        },
      });
      supervised = supervisor;
      supervisor.then(
        () => reject(new Error('the supervisor ended before it was ready')),
        (error: unknown) => reject(error),
      );
    });
    await ready;
    const serve = await startServe({
      dir: vmDir,
      listen: parseListen(undefined),
      log: logTo(logs.serve),
    });
    closers.push(() => serve.close());
    project.provide('qemuDashboard', { url: serve.url });
  };

  try {
    // Both sides at once; a failure of either ends both (allSettled: nothing left starting).
    const results = await Promise.allSettled([bridgeSide(), dashboardSide()]);
    for (const result of results) if (result.status === 'rejected') throw result.reason;
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}
