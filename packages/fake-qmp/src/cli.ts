/**
 * `qmpkit-fake-qmp`: serve the fake QMP server until SIGTERM/SIGINT.
 *
 *   qmpkit-fake-qmp (--unix PATH | --tcp HOST:PORT | --ws HOST:PORT) [--qemu-version 7.2|10.0]
 *                   [--replay FILE] [--machine pc|none] [--paused] [--incoming defer|URI]
 *                   [--storage host|memory]
 *
 * `runCli` is the whole program minus process wiring (tests call it in-process); the bin
 * maps signals to its AbortSignal and its result to the exit code.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { DEFAULT_QEMU_VERSION } from '@qmpkit/qapi';
import { Command, CommanderError, Option } from 'commander';
import { isConversationFileError } from './errors.js';
import { type Conversation, importReplies, parseConversation } from './replay/conversation.js';
import {
  createFakeQmp,
  FAKE_QEMU_VERSIONS,
  type FakeQemuVersion,
  type FakeQmpOptions,
  type ListenOption,
} from './server/fake.js';

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

interface CliOptions {
  unix?: string;
  tcp?: string;
  ws?: string;
  qemuVersion: FakeQemuVersion;
  replay?: string;
  machine: 'pc' | 'none';
  paused?: boolean;
  incoming?: string;
  storage: 'host' | 'memory';
}

/** Reads a conversation file or a libvirt `.replies` recording (told apart by content). */
export async function loadReplay(file: string): Promise<Conversation> {
  const text = await readFile(file, 'utf8');
  const first = text.split('\n').find((l) => l.trim() !== '') ?? '';
  if (first.includes('"qmpkit-conversation"')) return parseConversation(text, file);
  return importReplies(text, file);
}

/** Runs the CLI until `signal` aborts; resolves with the exit code. */
export async function runCli(
  argv: readonly string[],
  signal: AbortSignal,
  io: CliIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) },
): Promise<number> {
  const program = new Command('qmpkit-fake-qmp')
    .description(`A fake QMP server that answers like QEMU (${FAKE_QEMU_VERSIONS.join(', ')})`)
    .version(packageVersion())
    .option('--unix <path>', 'listen on a UNIX socket (its directory is created 0700)')
    .option('--tcp <host:port>', 'listen on TCP (use 127.0.0.1 unless you mean it)')
    .option(
      '--ws <host:port>',
      'listen for QMP over WebSocket (one QMP message per WebSocket message)',
    )
    .addOption(
      new Option('--qemu-version <version>', 'QEMU to imitate')
        .choices(FAKE_QEMU_VERSIONS)
        .default(DEFAULT_QEMU_VERSION),
    )
    .option('--replay <file>', 'serve a recorded conversation or a libvirt .replies file')
    .addOption(
      new Option('--machine <kind>', 'machine to simulate').choices(['pc', 'none']).default('pc'),
    )
    .option('--paused', 'start like QEMU with -S (run state prelaunch)')
    .option('--incoming <uri>', "start like QEMU with -incoming (e.g. 'defer')")
    .addOption(
      new Option('--storage <where>', 'image files on the host or in memory')
        .choices(['host', 'memory'])
        .default('host'),
    )
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });
  let options: CliOptions;
  try {
    program.parse(argv, { from: 'user' });
    options = program.opts<CliOptions>();
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    throw error;
  }
  const listen: ListenOption[] = [];
  if (options.unix !== undefined) listen.push({ unix: options.unix });
  if (options.tcp !== undefined) listen.push({ tcp: options.tcp });
  if (options.ws !== undefined) listen.push({ ws: options.ws });
  if (listen.length === 0) {
    io.err('qmpkit-fake-qmp: give at least one of --unix, --tcp, --ws\n');
    return 2;
  }
  let replay: Conversation | undefined;
  if (options.replay !== undefined) {
    try {
      replay = await loadReplay(options.replay);
    } catch (error) {
      if (isConversationFileError(error)) {
        io.err(`qmpkit-fake-qmp: ${error.message}\n`);
        return 1;
      }
      throw error;
    }
  }
  const fakeOptions: FakeQmpOptions = {
    qemuVersion: options.qemuVersion,
    listen,
    machine: options.machine,
    storage: options.storage,
    ...(options.paused ? { paused: true } : {}),
    ...(options.incoming !== undefined ? { incoming: options.incoming } : {}),
    ...(replay ? { replay } : {}),
  };
  let fake: Awaited<ReturnType<typeof createFakeQmp>>;
  try {
    fake = await createFakeQmp(fakeOptions);
  } catch (error) {
    io.err(
      `qmpkit-fake-qmp: cannot listen: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 1;
  }
  const { major, minor } = fake.version.qemu;
  for (const a of fake.addresses)
    io.out(`fake QMP (QEMU ${major}.${minor}) listening on ${a.address}\n`);
  const code = await new Promise<number>((resolve) => {
    if (signal.aborted) resolve(0);
    signal.addEventListener('abort', () => resolve(0), { once: true });
    void fake.exited.then((exitCode) => resolve(Math.max(0, exitCode)));
  });
  await fake.close();
  return code;
}

/** The package's version (src/ and dist/ both sit next to package.json). */
function packageVersion(): string {
  const manifest = createRequire(import.meta.url)('../package.json') as { version: string };
  return manifest.version;
}
