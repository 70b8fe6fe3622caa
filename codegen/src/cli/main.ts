/**
 * `qmpkit-codegen`: the thin CLI over the generator. Only this layer writes files.
 *
 *   qmpkit-codegen generate (--from-source F | --from-introspection F | --from-qemu BIN) --out DIR
 *   qmpkit-codegen check <qapi-schema.json>
 *   qmpkit-codegen summary (--from-source F | --from-introspection F | --from-qemu BIN)
 */
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Schema } from '@qmpkit/schema';
import {
  captureFromBinary,
  diffSchemas,
  formatChange,
  formatSchemaList,
  loadQapiSource,
  type NameMap,
  readIntrospection,
  schemaFromReplies,
} from '@qmpkit/schema';
import { Command, CommanderError, Option } from 'commander';
import { emitTypeScript, FILE_SUFFIX } from '../emit/typescript.js';
import { isCodegenError, isSchemaError } from '../errors.js';
import { GENERATOR_VERSION } from '../version.js';

interface InputOptions {
  fromSource?: string;
  fromIntrospection?: string;
  fromQemu?: string;
  names?: string;
  qemuVersion?: string;
}

interface LoadedInput {
  schema: Schema;
  description: string;
  qemuVersion: string;
}

class UsageError extends Error {
  override readonly name = 'UsageError';
}

async function loadInput(options: InputOptions): Promise<LoadedInput> {
  const given = [options.fromSource, options.fromIntrospection, options.fromQemu].filter(
    (x) => x !== undefined,
  );
  if (given.length !== 1) {
    throw new UsageError('give exactly one of --from-source, --from-introspection, --from-qemu');
  }
  const names = options.names
    ? (JSON.parse(await readFile(options.names, 'utf8')) as NameMap)
    : undefined;
  if (options.fromSource) {
    // The QAPI rules of the version given (QEMU's generator accepted different schemas).
    const schema = loadQapiSource(
      options.fromSource,
      options.qemuVersion ? { qemuVersion: options.qemuVersion } : {},
    );
    return {
      schema,
      description: path.basename(options.fromSource),
      qemuVersion: options.qemuVersion ?? 'unknown',
    };
  }
  if (options.fromIntrospection) {
    const file = options.fromIntrospection;
    const text = await readFile(file, 'utf8');
    const qemuVersion = options.qemuVersion ?? 'unknown';
    const schema = readIntrospection({ file, text, qemuVersion, ...(names ? { names } : {}) });
    return { schema, description: path.basename(file), qemuVersion };
  }
  const binary = options.fromQemu!;
  const capture = await captureFromBinary(binary);
  const { major, minor, micro } = capture.version;
  const qemuVersion = options.qemuVersion ?? `${major}.${minor}.${micro}`;
  const schema = readIntrospection({
    file: `${path.basename(binary)} (query-qmp-schema)`,
    text: formatSchemaList(capture.schema),
    qemuVersion,
    ...(names ? { names } : {}),
  });
  return {
    schema,
    description: `${path.basename(binary)} ${qemuVersion} (${capture.version.package})`,
    qemuVersion,
  };
}

/**
 * One side of a diff: a `schemas/qemu-X.Y` directory (capture + names.json), a
 * `query-qmp-schema` JSON file (list or QMP reply), a libvirt `.replies` recording, or a QAPI
 * source main file (anything else that is not JSON).
 */
async function loadDiffInput(input: string): Promise<Schema> {
  const info = await stat(input).catch(() => undefined);
  if (!info) throw new UsageError(`${input}: no such file or directory`);
  if (info.isDirectory()) {
    const file = path.join(input, 'query-qmp-schema.json');
    const namesFile = path.join(input, 'names.json');
    const names = await readFile(namesFile, 'utf8').then(
      (t) => JSON.parse(t) as NameMap,
      () => undefined,
    );
    return readIntrospection({
      file,
      text: await readFile(file, 'utf8'),
      ...(names ? { names } : {}),
    });
  }
  const text = await readFile(input, 'utf8');
  if (input.endsWith('.replies')) {
    return readIntrospection({
      file: input,
      text: formatSchemaList(schemaFromReplies(input, text).schema),
    });
  }
  try {
    JSON.parse(text);
  } catch {
    return loadQapiSource(input); // QAPI source is not strict JSON
  }
  return readIntrospection({ file: input, text });
}

function addInputOptions(command: Command): Command {
  return command
    .option('--from-source <qapi-schema.json>', 'QAPI source: the main schema file of a QEMU tree')
    .option(
      '--from-introspection <file.json>',
      'the output of query-qmp-schema (a SchemaInfo list or a QMP reply)',
    )
    .option('--from-qemu <binary>', 'run a QEMU binary and read its query-qmp-schema')
    .option('--names <names.json>', 'real names for masked introspection types (see schemas/)')
    .option('--qemu-version <version>', 'QEMU version to record in the output');
}

function summarize(schema: Schema): string {
  const counts = { enum: 0, struct: 0, union: 0, alternate: 0 };
  for (const def of schema.types.values()) counts[def.kind]++;
  const deprecated = [...schema.commands.values()].filter((c) =>
    c.features.some((f) => f.name === 'deprecated'),
  ).length;
  const oob = [...schema.commands.values()].filter((c) => c.allowOob).length;
  return [
    `commands: ${schema.commands.size} (${oob} allow-oob, ${deprecated} deprecated)`,
    `events:   ${schema.events.size}`,
    `types:    ${schema.types.size} (${counts.struct} structs, ${counts.union} unions, ${counts.enum} enums, ${counts.alternate} alternates)`,
    `modules:  ${schema.modules.length > 0 ? schema.modules.length : 'unknown (introspection)'}`,
  ].join('\n');
}

function buildProgram(out: (text: string) => void): Command {
  const program = new Command('qmpkit-codegen')
    .description("Generate typed TypeScript bindings from QEMU's QAPI schema")
    .version(GENERATOR_VERSION)
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: (text) => process.stderr.write(text) });

  addInputOptions(
    program
      .command('generate')
      .description(
        'write TypeScript bindings (one file per QAPI module plus an index) into a directory',
      ),
  )
    .requiredOption(
      '--out <dir>',
      'output directory (stale *.generated.ts files in it are removed)',
    )
    .addOption(
      new Option(
        '--runtime-import <specifier>',
        'module the generated code imports its runtime from',
      ).default('@qmpkit/qapi/runtime-v1'),
    )
    .option('--no-docs', 'leave QAPI doc comments out of the JSDoc')
    .action(
      async (options: InputOptions & { out: string; runtimeImport: string; docs: boolean }) => {
        const started = performance.now();
        const input = await loadInput(options);
        const files = emitTypeScript(input.schema, {
          runtimeImport: options.runtimeImport,
          generatorVersion: GENERATOR_VERSION,
          inputDescription: input.description,
          qemuVersion: input.qemuVersion,
          docs: options.docs,
        });
        await mkdir(options.out, { recursive: true });
        for (const name of await readdir(options.out)) {
          if (name.endsWith(FILE_SUFFIX) && !files.has(name))
            await rm(path.join(options.out, name));
        }
        let bytes = 0;
        for (const [name, text] of files) {
          bytes += Buffer.byteLength(text);
          await writeFile(path.join(options.out, name), text);
        }
        const ms = (performance.now() - started).toFixed(0);
        out(
          `wrote ${files.size} files (${(bytes / 1024).toFixed(0)} KiB) to ${options.out} in ${ms} ms\n`,
        );
      },
    );

  program
    .command('check')
    .description('parse and check a QAPI source schema; exit 0 when it is valid')
    .argument('<qapi-schema.json>')
    .option(
      '--qemu-version <version>',
      "check with this QEMU version's QAPI rules (default: newest)",
    )
    .action((file: string, opts: { qemuVersion?: string }) => {
      const schema = loadQapiSource(
        file,
        opts.qemuVersion ? { qemuVersion: opts.qemuVersion } : {},
      );
      out(`${file}: ok\n${summarize(schema)}\n`);
    });

  program
    .command('diff')
    .description(
      'commands, arguments, return members, events, enum values and branches added / removed / made optional / deprecated between two schemas',
    )
    .argument(
      '<a>',
      'before: a schemas/qemu-X.Y directory, a query-qmp-schema JSON file, a libvirt .replies file, or a QAPI source main file',
    )
    .argument('<b>', 'after: the same kinds')
    .option('--json', 'print the changes as JSON')
    .action(async (a: string, b: string, options: { json?: boolean }) => {
      const before = await loadDiffInput(a);
      const after = await loadDiffInput(b);
      const changes = diffSchemas(before, after);
      if (options.json) {
        out(`${JSON.stringify({ a, b, changes }, null, 2)}\n`);
        return;
      }
      out(`${a} → ${b}: ${changes.length} change${changes.length === 1 ? '' : 's'}\n`);
      for (const change of changes) out(`${formatChange(change)}\n`);
    });

  addInputOptions(program.command('summary').description('print what a schema defines')).action(
    async (options: InputOptions) => {
      const input = await loadInput(options);
      out(`${input.description}\n${summarize(input.schema)}\n`);
    },
  );
  return program;
}

/** Runs the CLI; resolves to the process exit code. Errors are printed, never thrown. */
export async function main(
  argv: readonly string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
): Promise<number> {
  const program = buildProgram(out);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (isSchemaError(error) || isCodegenError(error)) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    if (error instanceof UsageError) {
      process.stderr.write(`qmpkit-codegen: ${error.message}\n`);
      return 2;
    }
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`qmpkit-codegen: ${message}\n`);
    return 1;
  }
}
