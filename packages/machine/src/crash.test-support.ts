/**
 * The parent side of the crash tests: `crash-child.test-support.ts` launches a machine in a
 * separate Node process, runs a scenario, prints one JSON line `{ stateFile, qemuPid }` at the
 * moment the scenario says it is where the test wants it, and then waits to be SIGKILLed
 * (QEMU survives the process that held it). Used by machine's lifecycle and leftovers tests
 * and by backup's push-crash and pull-crash tests (their scenarios live in backup's
 * `qemu.test-support.ts`: machine cannot import backup). Not part of the published package.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { VmConfig } from '@qmpkit/devices';
import { type QemuSuite, spawnNodeChild } from '@qmpkit/testguest/test-support';
import type { ConsoleSpec } from './console.js';
import type { Machine } from './machine.js';

/**
 * What the crash child does between its launch and its death. A module that offers scenarios
 * exports them as `crashScenarios`, a record by name.
 */
export interface CrashScenario {
  /** The machine to launch; files go under `dir` (the run dir is `<dir>/run`). */
  config(dir: string): Promise<VmConfig>;
  /** The consoles to open (default none). */
  readonly consoles?: readonly ConsoleSpec[];
  /**
   * Brings the machine to where the test kills the child and calls `ready()` there (the child
   * then prints its line and is held until killed). Returning without `ready()` fails the child.
   */
  run(machine: Machine, dir: string, ready: () => void): Promise<void>;
}

/** The line the crash child prints. */
export interface CrashChildLine {
  readonly stateFile: string;
  readonly qemuPid: number;
}

/** The first line a child prints, parsed as JSON, and its exit (signal name or code). */
export async function firstLine<T>(
  child: ChildProcess & {
    readonly stdout: NodeJS.ReadableStream;
    readonly stderr: NodeJS.ReadableStream;
  },
): Promise<{ line: T; exit: Promise<unknown> }> {
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exit = new Promise((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code)),
  );
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code, signal) =>
      reject(new Error(`child ended (${signal ?? code}) before it said anything:\n${stderr}`)),
    );
  });
  return { line: JSON.parse(line) as T, exit };
}

/**
 * Starts the crash child on `dir` with scenario `name` (from `module`, a path to a module
 * exporting `crashScenarios`; absent: the child's own `nic` and `bitmap`) and waits for its
 * line. The QEMU pid is tracked by `suite`, so it is killed in the cleanup even if the test
 * fails before it ends it.
 */
export async function startCrashChild(
  suite: Pick<QemuSuite, 'trackPid'>,
  dir: string,
  name: string,
  module?: string,
): Promise<CrashChildLine & { child: ChildProcess; exit: Promise<unknown> }> {
  const child = spawnNodeChild(path.join(import.meta.dirname, 'crash-child.test-support.ts'), [
    dir,
    name,
    ...(module === undefined ? [] : [module]),
  ]);
  const { line, exit } = await firstLine<CrashChildLine>(child);
  suite.trackPid(line.qemuPid);
  return { ...line, child, exit };
}
