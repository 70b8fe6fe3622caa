/** Runs a tool with an argument array (never a shell) and collects its output. */
import { spawn } from 'node:child_process';
import { DebianToolError } from './errors.js';

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

const OUTPUT_TAIL = 4000;

/** Spawns `command args` in `cwd` with a C locale; rejects with `DebianToolError` on failure. */
export function runTool(
  command: string,
  args: readonly string[],
  options: { cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], {
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', LANG: 'C', DEBIAN_FRONTEND: 'noninteractive' },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.once('error', (cause) =>
      reject(
        new DebianToolError({ command, args, exitCode: null, output: cause.message }, { cause }),
      ),
    );
    child.once('close', (code) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) resolve({ stdout, stderr });
      else
        reject(
          new DebianToolError({
            command,
            args,
            exitCode: code,
            output: (stderr.trim() || stdout.trim()).slice(-OUTPUT_TAIL),
          }),
        );
    });
  });
}
