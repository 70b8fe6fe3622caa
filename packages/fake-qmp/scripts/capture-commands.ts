/**
 * `query-commands` lists commands in QEMU's registration order (reversed), which the
 * introspection data does not give. This captures it from a QEMU binary into
 * `schemas/qemu-<ver>/query-commands.json` (command names only), which generate-data.ts reads.
 * With `--daemon` it runs a `qemu-storage-daemon` instead (QMP through `--chardev` + `--monitor`)
 * and writes `schemas/qsd-<ver>/query-commands.json`.
 *
 *   node --conditions=@qmpkit/source --import tsx packages/fake-qmp/scripts/capture-commands.ts [--qemu BIN] [--version 7.2] [--data-dir DIR] [--daemon]
 *
 * A QEMU unpacked beside the system's (10.0, `pnpm qemu:fetch 10.0`) needs its own data dir
 * (`--data-dir <root>/usr/share/qemu`, passed as -L) and `QEMU_MODULE_DIR` in the environment.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connect } from '@qmpkit/transport';
import { InheritedFds } from '@qmpkit/transport/fd';

const { values } = parseArgs({
  options: {
    qemu: { type: 'string', default: 'qemu-system-x86_64' },
    version: { type: 'string', default: '7.2' },
    'data-dir': { type: 'string' },
    daemon: { type: 'boolean', default: false },
  },
});
const fds = new InheritedFds(['ignore', 'ignore', 'inherit']);
const monitor = fds.socketpair();
const qmpFd = monitor.fd;
const child = spawn(
  values.qemu,
  values.daemon
    ? ['--chardev', `socket,id=qmp,fd=${qmpFd}`, '--monitor', 'chardev=qmp']
    : [
        ...(values['data-dir'] ? ['-L', values['data-dir']] : []),
        ...['-machine', 'none', '-nodefaults', '-display', 'none', ...monitor.monitorArgs()],
      ],
  { stdio: fds.stdio },
);
try {
  const qmp = await connect(monitor.address(child));
  const version = (await qmp.execute('query-version')).qemu;
  if (`${version.major}.${version.minor}` !== values.version)
    throw new Error(
      `${values.qemu} is QEMU ${version.major}.${version.minor}, not ${values.version}`,
    );
  const names = (await qmp.execute('query-commands')).map((c) => c.name);
  await qmp.execute('quit');
  const file = path.join(
    import.meta.dirname,
    '../../..',
    `schemas/${values.daemon ? 'qsd' : 'qemu'}-${values.version}/query-commands.json`,
  );
  // schemas/qemu-* are outside biome's files (one-space captures); schemas/qsd-* are inside it.
  writeFileSync(file, `${JSON.stringify(names, null, values.daemon ? 2 : 1)}\n`);
  console.log(`${file}: ${names.length} commands`);
} finally {
  if (child.exitCode === null) child.kill('SIGKILL');
}
