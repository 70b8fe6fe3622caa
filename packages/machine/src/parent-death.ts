/**
 * Processes that must die with this one. Node cannot set a parent-death signal on a child,
 * but util-linux's `setpriv --pdeathsig SIGKILL <program> <args…>` can: it sets it on itself
 * and execs the program (same pid), and the kernel kills the program when this process dies,
 * however it dies. The setting survives the exec and cannot be cleared from outside, so it
 * is only for processes whose life never outlasts the operation that started them.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '@qmpkit/transport';

let probe: Promise<boolean> | undefined;

/** Whether `setpriv` runs here and knows `--pdeathsig` (probed once per process). */
export function setprivAvailable(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  probe ??= new Promise<boolean>((resolve) => {
    const child = spawn('setpriv', ['--help'], { stdio: ['ignore', 'pipe', 'ignore'], env });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.once('error', () => resolve(false));
    child.once('close', (code) => resolve(code === 0 && out.includes('--pdeathsig')));
  });
  return probe;
}

let warned = false;

/**
 * The command and arguments that run `command args…` so that it is SIGKILLed when this
 * process dies. Without a usable `setpriv` the command runs as is, and `logger` is told once.
 */
export async function diesWithUs(
  command: string,
  args: readonly string[],
  logger?: Logger,
): Promise<{ command: string; args: string[]; guarded: boolean }> {
  if (await setprivAvailable()) {
    return {
      command: 'setpriv',
      args: ['--pdeathsig', 'SIGKILL', '--', command, ...args],
      guarded: true,
    };
  }
  if (!warned && logger !== undefined) {
    warned = true;
    logger.warn(
      'setpriv (util-linux) with --pdeathsig is not available: helper processes such as qemu-img may outlive a crash of this process',
    );
  }
  return { command, args: [...args], guarded: false };
}
