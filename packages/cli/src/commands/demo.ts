import { runDemo } from '../demo/index.js';
import { type CliCommand, collect } from './command.js';

interface DemoFlags {
  fake?: boolean;
  accel?: string[];
  keep?: boolean;
}

export const demoCommand: CliCommand = {
  name: 'demo',
  register(program, context) {
    program
      .command('demo')
      .description(
        'boot a tiny guest: typed queries, a hot-plug, and every snapshot strategy with timings (the fake QMP server when QEMU is absent)',
      )
      .option('--fake', 'run against the embedded fake QMP server even when QEMU is installed')
      .option(
        '--accel <name>',
        'accelerator to try, repeatable, in order (default: kvm, then tcg)',
        collect,
      )
      .option('--keep', 'keep the work directory (images, state files)')
      .action(async (flags: DemoFlags) => {
        context.exit(
          await runDemo(context.io, {
            ...(flags.fake ? { fake: true } : {}),
            ...(flags.accel ? { accel: flags.accel } : {}),
            ...(flags.keep ? { keep: true } : {}),
          }),
        );
      });
  },
};
