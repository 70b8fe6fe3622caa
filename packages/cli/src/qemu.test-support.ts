/**
 * Real QEMU for the CLI's tests: `-machine pc -m 16 -accel tcg -S`, QMP on two UNIX sockets
 * (one for the program under test, one for the test to drive and observe) in a private
 * 0700 temp dir. Binary lookup, skip rules, temp dirs and killing every QEMU a test started
 * come from the shared `@qmpkit/testguest/test-support`; `stop()` kills only this pid.
 */

import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import {
  QEMU as BINARY,
  killQemu,
  privateTempDir,
  qemuSkipReason,
  skipNote,
  spawnQemu,
  TEST_ACCEL,
  waitForFiles,
} from '@qmpkit/testguest/test-support';
import { connect } from '@qmpkit/transport';
import type { StatusResult } from './vm/protocol.js';

export { qemuSuite } from '@qmpkit/testguest/test-support';
export const QEMU = BINARY.system;
/** The binary under test (`QMPKIT_TEST_QEMU`, see test-support): pass `--qemu QEMU_BINARY.system`. */
export const QEMU_BINARY = BINARY;
/** `query-status`'s `singlestep` member as the binary under test returns it (gone in 10.0). */
export const SINGLESTEP: { singlestep?: false } =
  (BINARY.version?.major ?? 0) < 10 ? { singlestep: false } : {};
/** `query-status` of a QEMU started with `-S`, as JSON text in the member order QEMU sends. */
export const PRELAUNCH_STATUS = JSON.stringify({
  status: 'prelaunch',
  ...SINGLESTEP,
  running: false,
});
/** Skip only when QEMU is missing outside CI; in CI a missing QEMU fails. */
export const skipQemu = qemuSkipReason() !== undefined;
/** Appended to the names of real-QEMU suites, so a skip says why (never skipped in CI). */
export const SKIP_REASON = skipNote();

export interface TestQemu {
  readonly dir: string;
  /** `unix:` address of the socket for the program under test. */
  readonly address: string;
  /** `unix:` address of the test's own socket. */
  readonly aux: string;
  stderr(): string;
  stop(): Promise<void>;
}

export async function startQemu(): Promise<TestQemu> {
  const tmp = privateTempDir('qmpkit-cli-');
  const dir = tmp.dir;
  const main = path.join(dir, 'qmp.sock');
  const aux = path.join(dir, 'aux.sock');
  const args = [
    '-machine',
    'pc',
    '-m',
    '16',
    ...TEST_ACCEL.flatMap((a) => ['-accel', a]),
    '-S',
    '-nodefaults',
    '-display',
    'none',
    '-qmp',
    `unix:${main},server=on,wait=off`,
    '-qmp',
    `unix:${aux},server=on,wait=off`,
  ];
  // Tracked: killed after the file (and on exit) even when a test fails or times out.
  const child = spawnQemu(args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    stderr = (stderr + s).slice(-4096);
  });
  await waitForFiles([main, aux], child, 20_000);
  // The files appear at bind(), a moment before QEMU listens: one connection each (closed
  // at once; QEMU then serves the next client) proves both monitors accept.
  for (const socket of [main, aux])
    await (await connect(`unix:${socket}`, { waitForListener: true })).close();
  return {
    dir,
    address: `unix:${main}`,
    aux: `unix:${aux}`,
    stderr: () => stderr,
    async stop() {
      await killQemu(child);
      tmp.remove();
    },
  };
}

/**
 * `qmpkit vm start ARGS --dir DIR --accel tcg --qemu <binary under test>` in-process: it must
 * succeed without a word on stderr; its supervisor and QEMU pids go to `suite`'s tracking so
 * nothing outlives the file. Returns the VM's status.
 */
export async function startVm(
  suite: { trackPid(pid: number): void },
  dir: string,
  ...args: string[]
): Promise<StatusResult> {
  const { expect } = await import('vitest');
  const { runCli } = await import('./cli.test-support.js');
  const started = await runCli(
    'vm',
    'start',
    ...args,
    '--dir',
    dir,
    '--accel',
    'tcg',
    '--qemu',
    BINARY.system,
  );
  expect(started.err).toBe('');
  expect(started.code).toBe(0);
  const status = JSON.parse(
    (await runCli('vm', 'status', '--dir', dir, '--json')).out,
  ) as StatusResult;
  suite.trackPid(status.pid);
  suite.trackPid(status.qemu.pid);
  return status;
}

export interface TestVmOptions {
  /**
   * The test guest's boot image, relative to the configuration file (or absolute), on
   * `ide.0`: raw when it ends in `.raw` (nodes `boot-file`, `boot`), else qcow2 (nodes
   * `disk0-file`, `disk0`); device `boot0`. `null`: no boot disk. Default `guest.qcow2`.
   */
  readonly boot?: string | null;
  /** COM1 on a null chardev `ser0` (to be a console). Default: with a boot image. */
  readonly serial?: boolean;
  /** qcow2 data disks `<id>.qcow2` (node `<id>` over `<id>-file`, device `<id>`) on the next IDE buses. */
  readonly disks?: readonly string[];
  /** Default 32. */
  readonly memoryMiB?: number;
}

/**
 * The VM configuration the CLI tests start (`vm.json`): `pc-i440fx-7.2` and the parts
 * `options` choose; `overrides` replace whole members (e.g. `machine`, `objects`, `blockdevs`).
 */
export function testVmConfig(
  options: TestVmOptions = {},
  overrides: Partial<VmConfig> = {},
): VmConfig {
  const boot = options.boot === undefined ? 'guest.qcow2' : options.boot;
  const serial = options.serial ?? boot !== null;
  const node = boot?.endsWith('.raw') ? 'boot' : 'disk0';
  const disks = options.disks ?? [];
  const first = boot === null ? 0 : 1;
  const devices: NonNullable<VmConfig['devices']>[number][] = [];
  if (boot !== null)
    devices.push({ driver: 'ide-hd', id: 'boot0', drive: node, bus: 'ide.0', bootindex: 0 });
  for (const [i, d] of disks.entries())
    devices.push({ driver: 'ide-hd', id: d, drive: d, bus: `ide.${first + i}` });
  if (serial) devices.push({ driver: 'isa-serial', id: 'com1', chardev: 'ser0' });
  return {
    machine: { type: 'pc-i440fx-7.2' },
    memory: { size: (options.memoryMiB ?? 32) * MiB },
    ...(serial ? { chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }] } : {}),
    blockdevs: [
      ...(boot === null
        ? []
        : [
            { driver: 'file' as const, 'node-name': `${node}-file`, filename: boot },
            boot.endsWith('.raw')
              ? { driver: 'raw' as const, 'node-name': node, file: `${node}-file` }
              : { driver: 'qcow2' as const, 'node-name': node, file: `${node}-file` },
          ]),
      ...disks.flatMap((d) => [
        { driver: 'file' as const, 'node-name': `${d}-file`, filename: `${d}.qcow2` },
        { driver: 'qcow2' as const, 'node-name': d, file: `${d}-file` },
      ]),
    ],
    devices,
    ...overrides,
  };
}
