/**
 * `qmpkit serve --dir VMDIR [--listen 127.0.0.1:PORT]`: the dashboard of a VM started with
 * `qmpkit vm start` (see `web/serve.ts`). Prints the page's URL with its token on stdout,
 * logs on stderr, runs until Ctrl-C or SIGTERM.
 */
import { Option } from 'commander';
import { startServe } from '../web/serve.js';
import { listenAddress, runUntilStopped, withListenOptions } from './bridge.js';
import type { CliCommand } from './command.js';

interface ServeFlags {
  dir: string;
  listen?: string;
  allowRemote?: boolean;
}

export const serveCommand: CliCommand = {
  name: 'serve',
  register(program, context) {
    const command = program
      .command('serve')
      .description(
        "serve a VM's dashboard (run state, block graph, events, snapshots) on a loopback address",
      )
      .addOption(
        new Option('-d, --dir <vm-dir>', 'the VM directory of `qmpkit vm start`')
          .env('QMPKIT_VM_DIR')
          .makeOptionMandatory(),
      );
    withListenOptions(command).action(async (flags: ServeFlags) => {
      await runUntilStopped(context, async (log) => {
        const dashboard = await startServe({
          dir: flags.dir,
          listen: listenAddress(flags, log),
          log,
        });
        context.io.stdout.write(`${dashboard.url}\n`);
        return () => dashboard.close();
      });
    });
  },
};
