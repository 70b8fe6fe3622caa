import { validateArgs } from '@qmpkit/qapi/runtime-v1';
import { isQmpCommandError, isQmpHmpError, isQmpJobError, type QmpClient } from '@qmpkit/transport';
import { Option } from 'commander';
import { buildArguments } from '../args/build.js';
import { connectCli } from '../connect.js';
import { CliUsageError, isCliError } from '../errors.js';
import { formatJson, formatProblems } from '../format.js';
import { painter, wantsColor } from '../io.js';
import { createProgress } from '../progress.js';
import type { ArgumentModel } from '../schema/model.js';
import { loadModel } from '../shell/repl.js';
import { didYouMean } from '../suggest.js';
import { type CliCommand, type CommandContext, positiveInt } from './command.js';

interface ExecFlags {
  pretty?: boolean;
  validate: boolean;
  hmp?: boolean;
  wait?: boolean;
  timeout?: number;
  connectTimeout?: number;
  jsonErrors?: boolean;
  trace?: boolean;
}

export const execCommand: CliCommand = {
  name: 'exec',
  register(program, context) {
    program
      .command('exec')
      .description(
        'run one QMP command and print its return as JSON (exit 1 on a QMP error, 2 if nothing was sent)',
      )
      .argument('<address>', 'unix:/path, tcp:host:port or ws://…')
      .argument('<command>', 'QMP command name (with --hmp: the HMP command line)')
      .argument('[args...]', 'key=value words (nested a.b=1, lists a,b) or one JSON object')
      .option('-p, --pretty', 'pretty-print the JSON (default when stdout is a terminal)')
      .option('--no-pretty', 'one line of JSON even on a terminal')
      .option('--no-validate', 'send without checking the arguments against the live schema')
      .option('-H, --hmp', 'run an HMP command line through human-monitor-command, print its text')
      .option(
        '--json-errors',
        'report a failure as one JSON line on stderr: {"error":{"class","desc","exitCode"}}',
      )
      .option('--trace', 'print the QMP wire on stderr (> sent, < received, one JSON per line)')
      .option(
        '-w, --wait',
        'for job commands: wait until the job concludes (progress bar on stderr)',
      )
      .addOption(
        new Option('--timeout <ms>', 'reply (and --wait) deadline').argParser(
          positiveInt('--timeout'),
        ),
      )
      .addOption(
        new Option('--connect-timeout <ms>', 'connect deadline').argParser(
          positiveInt('--connect-timeout'),
        ),
      )
      .action(async (address: string, command: string, words: string[], flags: ExecFlags) => {
        if (!flags.jsonErrors) {
          context.exit(await runExec(context, address, command, words, flags));
          return;
        }
        // Every failure, whether QEMU's or ours, as one JSON line a program can parse.
        const report = (error: { class: string; desc: string; exitCode: number }) => {
          context.io.stderr.write(`${JSON.stringify({ error: { command, ...error } })}\n`);
          return error.exitCode;
        };
        try {
          context.exit(await runExec(context, address, command, words, { ...flags, report }));
        } catch (error) {
          context.exit(report(describeFailure(error)));
        }
      });
  },
};

/** A failure as `--json-errors` prints it. */
export function describeFailure(error: unknown): { class: string; desc: string; exitCode: number } {
  if (isCliError(error))
    return { class: error.name, desc: error.message, exitCode: error.exitCode };
  if (isQmpCommandError(error)) return { class: error.errorClass, desc: error.desc, exitCode: 1 };
  if (isQmpHmpError(error)) return { class: 'HmpError', desc: error.desc, exitCode: 1 };
  if (isQmpJobError(error)) return { class: 'JobError', desc: error.desc, exitCode: 1 };
  if (error instanceof Error) return { class: error.name, desc: error.message, exitCode: 1 };
  return { class: 'Error', desc: String(error), exitCode: 1 };
}

async function runExec(
  context: CommandContext,
  address: string,
  command: string,
  words: string[],
  flags: ExecFlags & {
    report?: (error: { class: string; desc: string; exitCode: number }) => number;
  },
): Promise<number> {
  const { io } = context;
  const pretty = flags.pretty ?? io.stdout.isTTY === true;
  const paint = painter(wantsColor(io.stderr, io.env));
  const client = await connectCli(address, io, {
    ...(flags.connectTimeout !== undefined ? { timeout: flags.connectTimeout } : {}),
    ...(flags.trace ? { trace: true } : {}),
  });
  const stop = new AbortController();
  const unsubscribe = io.onInterrupt(() => stop.abort(new Error('interrupted')));
  const options = {
    signal: stop.signal,
    ...(flags.timeout !== undefined ? { timeout: flags.timeout } : {}),
  };
  try {
    if (flags.hmp) {
      // HMP reports failure as text ("Error: …") inside a successful QMP reply: read it as
      // an error, so a failing command line exits 1 like a failing QMP command.
      try {
        const output = await client.hmp([command, ...words].join(' '), {
          ...options,
          errors: 'throw',
        });
        io.stdout.write(output.replace(/\r\n/g, '\n'));
        return 0;
      } catch (error) {
        if (!isQmpHmpError(error)) throw error;
        if (flags.report) return flags.report(describeFailure(error));
        io.stderr.write(`qmpkit: ${error.message}\n`);
        return 1;
      }
    }
    const model = await loadModel(client, address, (text) => io.stderr.write(`qmpkit: ${text}\n`));
    if (model && flags.validate && !model.hasCommand(command)) {
      const hint = didYouMean(command, model.commandNames());
      throw new CliUsageError(
        `QEMU ${model.qemuVersion} has no command '${command}'${hint ? `; ${hint}` : ''}`,
      );
    }
    const argType = model?.argType(command);
    const args = buildArguments(words, model, argType);
    if (model && flags.validate) {
      const problems = validateArgs(model.tables, command, args);
      if (problems.length > 0) {
        throw new CliUsageError(
          `${command}: invalid arguments, nothing sent\n${formatProblems(problems, { model, argType, args }, paint)}`,
        );
      }
    }
    try {
      const result = flags.wait
        ? await runWaiting(client, model, command, args, options, io)
        : await client.executeUnchecked(command, args, options);
      io.stdout.write(`${formatJson(result, pretty)}\n`);
      return 0;
    } catch (error) {
      if (flags.report && (isQmpCommandError(error) || isQmpJobError(error)))
        return flags.report(describeFailure(error));
      if (isQmpCommandError(error)) {
        const hint =
          error.errorClass === 'CommandNotFound' && model
            ? didYouMean(command, model.commandNames())
            : '';
        io.stderr.write(`qmpkit: ${error.errorClass}: ${error.desc}${hint ? ` (${hint})` : ''}\n`);
        return 1;
      }
      if (isQmpJobError(error)) {
        io.stderr.write(`qmpkit: job ${error.jobId} (${error.command}) failed: ${error.desc}\n`);
        return 1;
      }
      throw error;
    }
  } finally {
    unsubscribe();
    await client.close();
  }
}

/**
 * `exec --wait`: runs a job command (`snapshot-save`, `blockdev-create`, …) to its end
 * through the transport's `runJob` (events armed before sending, error read from
 * `query-jobs`, job dismissed), with a progress bar fed by `query-jobs` while it runs.
 */
async function runWaiting(
  client: QmpClient,
  model: ArgumentModel | undefined,
  command: string,
  args: Record<string, unknown> | undefined,
  options: { signal: AbortSignal; timeout?: number },
  io: CommandContext['io'],
): Promise<unknown> {
  const argType = model?.argType(command);
  if (model && !model.members(argType, args).members.some((m) => m.name === 'job-id')) {
    throw new CliUsageError(
      `--wait: '${command}' does not start a job (it has no job-id argument)`,
    );
  }
  const progress = createProgress(io, { label: command });
  const jobId = typeof args?.['job-id'] === 'string' ? args['job-id'] : undefined;
  let polling = true;
  const poll = async () => {
    while (polling) {
      try {
        const jobs = (await client.executeUnchecked('query-jobs')) as {
          id: string;
          'current-progress': number;
          'total-progress': number;
        }[];
        const job = jobs.find((j) => jobId === undefined || j.id === jobId);
        if (job) progress.update(job['current-progress'], job['total-progress']);
      } catch {
        // A closing connection ends the job wait anyway.
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };
  const polled = poll();
  try {
    // The command name is checked against the live schema, not the bindings' types.
    const result = await client.runJob(
      command as Parameters<QmpClient['runJob']>[0],
      (args ?? {}) as Parameters<QmpClient['runJob']>[1],
      { ...options, onStatus: (status) => progress.status(status) },
    );
    polling = false;
    await polled;
    progress.finish();
    return { 'job-id': result.jobId, statuses: result.statuses, return: result.returned };
  } finally {
    polling = false;
    await polled;
    progress.stop();
  }
}
