import { isQmpDisconnectedError } from '@qmpkit/transport';
import { Option } from 'commander';
import { connectCli } from '../connect.js';
import { CliUsageError } from '../errors.js';
import { formatEvent } from '../format.js';
import { loadModel } from '../shell/repl.js';
import { didYouMean } from '../suggest.js';
import { type CliCommand, collect, positiveInt } from './command.js';

interface EventsFlags {
  name?: string[];
  count?: number;
  pretty?: boolean;
  timeout?: number;
  trace?: boolean;
}

export const eventsCommand: CliCommand = {
  name: 'events',
  register(program, context) {
    program
      .command('events')
      .description('print QMP events as JSON lines until Ctrl-C (or --count events)')
      .argument('<address>', 'unix:/path, tcp:host:port or ws://…')
      .option('-n, --name <event>', 'only this event (repeatable)', collect)
      .addOption(
        new Option('-c, --count <n>', 'exit after n events').argParser(positiveInt('--count')),
      )
      .option('-p, --pretty', 'pretty-print (one event per block instead of per line)')
      .option('--trace', 'print the QMP wire on stderr (> sent, < received, one JSON per line)')
      .addOption(
        new Option('--timeout <ms>', 'connect timeout').argParser(positiveInt('--timeout')),
      )
      .action(async (address: string, flags: EventsFlags) => {
        const { io } = context;
        const client = await connectCli(address, io, {
          ...(flags.timeout !== undefined ? { timeout: flags.timeout } : {}),
          ...(flags.trace ? { trace: true } : {}),
        });
        const stop = new AbortController();
        const unsubscribe = io.onInterrupt(() => stop.abort());
        try {
          const names = flags.name ?? [];
          if (names.length > 0) {
            const model = await loadModel(client, address, (t) =>
              io.stderr.write(`qmpkit: ${t}\n`),
            );
            for (const name of names) {
              if (model && !model.eventNames().includes(name)) {
                const hint = didYouMean(name, model.eventNames());
                throw new CliUsageError(
                  `QEMU ${model.qemuVersion} has no event '${name}'${hint ? `; ${hint}` : ''}`,
                );
              }
            }
          }
          // Ready: scripts can wait for this line on stderr before causing events.
          io.stderr.write(
            `qmpkit: listening on ${address}${names.length ? ` for ${names.join(', ')}` : ''}\n`,
          );
          const wanted = new Set(names);
          const stream = client.events({
            signal: stop.signal,
            ...(names.length > 0 ? { filter: (e: { event: string }) => wanted.has(e.event) } : {}),
          });
          let seen = 0;
          try {
            for await (const event of stream) {
              io.stdout.write(`${formatEvent(event, flags.pretty === true)}\n`);
              if (flags.count !== undefined && ++seen >= flags.count) break;
            }
            if (flags.count === undefined || seen < flags.count)
              io.stderr.write('qmpkit: QEMU closed the connection\n');
          } catch (error) {
            if (!stop.signal.aborted) {
              if (!isQmpDisconnectedError(error)) throw error;
              io.stderr.write('qmpkit: QEMU closed the connection\n');
            }
          }
          context.exit(0);
        } finally {
          unsubscribe();
          await client.close();
        }
      });
  },
};
