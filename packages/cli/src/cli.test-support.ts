/**
 * Test helpers (not part of the build): the QEMU 7.2 capture as an `ArgumentModel`, and an
 * in-memory `CliIo` that records what a command writes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { CliIo } from './io.js';
import { tablesFromSchemaList } from './schema/live.js';
import { ArgumentModel } from './schema/model.js';

export const REPO = path.join(import.meta.dirname, '../../..');
export const CAPTURE_DIR = path.join(REPO, 'schemas/qemu-7.2');
export const CAPTURE_FILE = path.join(CAPTURE_DIR, 'query-qmp-schema.json');

let cached: Promise<ArgumentModel> | undefined;

/** The committed QEMU 7.2 capture, read like a live `query-qmp-schema` (no names.json). */
export function model72(): Promise<ArgumentModel> {
  cached ??= tablesFromSchemaList(
    JSON.parse(readFileSync(CAPTURE_FILE, 'utf8')),
    '7.2.22',
    'qemu-7.2 capture',
  ).then((tables) => new ArgumentModel(tables));
  return cached;
}

export interface RecordingIo extends CliIo {
  out(): string;
  err(): string;
  interrupt(): void;
}

export function recordingIo(env: Record<string, string | undefined> = {}): RecordingIo {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
  });
  const listeners = new Set<() => void>();
  return {
    stdin: new PassThrough(),
    stdout,
    stderr,
    env: { NO_COLOR: '1', ...env },
    onInterrupt(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    out: () => out,
    err: () => err,
    interrupt: () => {
      for (const fn of listeners) fn();
    },
  };
}

/**
 * A runner of the CLI in-process with only `PATH` and `env` in its environment: each call
 * returns the exit code, stdout and stderr.
 */
export function cliRunner(
  env: Record<string, string | undefined> = {},
): (...argv: string[]) => Promise<{ code: number; out: string; err: string }> {
  return async (...argv) => {
    const { main } = await import('./main.js');
    const io = recordingIo({ PATH: process.env.PATH, ...env });
    const code = await main(argv, io);
    return { code, out: io.out(), err: io.err() };
  };
}

/** Runs the CLI in-process with only `PATH` in its environment: exit code, stdout, stderr. */
export const runCli = cliRunner();
