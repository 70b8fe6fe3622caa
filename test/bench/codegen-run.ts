/**
 * One generator's timings, for `pnpm bench:codegen` (which runs this once per generator in a
 * child process, so each gets a fresh heap and JIT):
 *   node --conditions=@qmpkit/source --import tsx test/bench/codegen-run.ts <codegen entry> <runs>
 * `<codegen entry>` is `@qmpkit/codegen` (this tree) or the path of another tree's
 * `codegen/src/index.ts` (the baseline). Only API both have is used: `readIntrospection`,
 * `emitTypeScript`, `emitMerged`, `loadQapiSource`. Inputs are this tree's `schemas/` captures
 * and the QAPI source cache, so both generators read the same bytes. Prints one JSON line.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** Median wall and CPU (user + system, all threads) time of a step, in ms. */
export interface StepTime {
  readonly wall: number;
  readonly cpu: number;
}

export interface CodegenTimings {
  /** `undefined` when the step's input is missing (no QAPI source cache). */
  readonly captureToIr: StepTime;
  readonly captureToTs: StepTime;
  readonly allCapturesToTs: StepTime;
  readonly sourceToIr: StepTime | undefined;
  readonly sourceToTs: StepTime | undefined;
  /** Files and bytes of the full generation (every capture + the merged view). */
  readonly files: number;
  readonly bytes: number;
}

/** What both generators export (structurally; the baseline's types are not imported). */
interface Generator {
  readIntrospection(input: {
    file: string;
    text: string;
    qemuVersion?: string;
    names?: unknown;
  }): unknown;
  emitTypeScript(schema: unknown, options: Record<string, unknown>): Map<string, string>;
  emitMerged(
    versions: { version: string; schema: unknown }[],
    options: Record<string, unknown>,
  ): Map<string, string>;
  /** `qemuVersion` picks that QEMU's QAPI rules (generators before the option ignore it). */
  loadQapiSource(main: string, options?: { qemuVersion?: string }): unknown;
}

const repoRoot = path.resolve(import.meta.dirname, '../..');
const schemasDir = path.join(repoRoot, 'schemas');
const sourceMain = path.join(repoRoot, '.cache/qapi-source/qemu-7.2/qapi/qapi-schema.json');

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function time(fn: () => void, runs: number): StepTime {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    fn();
    const c = process.cpuUsage(c0);
    wall.push(performance.now() - t0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { wall: median(wall), cpu: median(cpu) };
}

interface CaptureInput {
  readonly version: string;
  readonly input: Parameters<Generator['readIntrospection']>[0];
}

function captures(): CaptureInput[] {
  const numeric = (d: string) => d.slice('qemu-'.length).split('.').map(Number);
  return readdirSync(schemasDir)
    .filter((d) => /^qemu-\d+\.\d+$/.test(d))
    .sort((a, b) => numeric(a)[0]! - numeric(b)[0]! || numeric(a)[1]! - numeric(b)[1]!)
    .map((dirName) => {
      const dir = path.join(schemasDir, dirName);
      const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
        qemu: { version: string };
      };
      const namesFile = path.join(dir, 'names.json');
      const file = `schemas/${dirName}/query-qmp-schema.json`;
      return {
        version: dirName.slice('qemu-'.length),
        input: {
          file,
          text: readFileSync(path.join(repoRoot, file), 'utf8'),
          qemuVersion: manifest.qemu.version,
          ...(existsSync(namesFile) ? { names: JSON.parse(readFileSync(namesFile, 'utf8')) } : {}),
        },
      };
    });
}

export async function measure(entry: string, runs: number): Promise<CodegenTimings> {
  const specifier = entry.startsWith('@') ? entry : pathToFileURL(entry).href;
  const gen = (await import(specifier)) as Generator;
  const inputs = captures();
  const newest = inputs.find((c) => c.version === '7.2') ?? inputs.at(-1)!;
  const emitOptions = (qemuVersion: string) => ({
    runtimeImport: '../../runtime/index.js',
    generatorVersion: 'bench',
    inputDescription: 'capture',
    qemuVersion,
    docs: false,
  });
  const generateAll = () => {
    const out: Map<string, string>[] = [];
    const merged: { version: string; schema: unknown }[] = [];
    for (const { version, input } of inputs) {
      const schema = gen.readIntrospection(input);
      out.push(gen.emitTypeScript(schema, emitOptions(input.qemuVersion ?? version)));
      merged.push({ version, schema });
    }
    out.push(
      gen.emitMerged(merged, {
        runtimeImport: '../../runtime/index.js',
        generatorVersion: 'bench',
      }),
    );
    return out;
  };
  // One untimed round first: module loading and the first JIT tiers are not the generator.
  const warm = generateAll();
  const haveSource = existsSync(sourceMain);
  return {
    captureToIr: time(() => gen.readIntrospection(newest.input), runs),
    captureToTs: time(
      () => gen.emitTypeScript(gen.readIntrospection(newest.input), emitOptions('7.2')),
      runs,
    ),
    allCapturesToTs: time(generateAll, Math.max(1, Math.ceil(runs / 2))),
    sourceToIr: haveSource
      ? time(() => gen.loadQapiSource(sourceMain, { qemuVersion: '7.2' }), runs)
      : undefined,
    sourceToTs: haveSource
      ? time(
          () =>
            gen.emitTypeScript(gen.loadQapiSource(sourceMain, { qemuVersion: '7.2' }), {
              ...emitOptions('7.2'),
              docs: true,
            }),
          runs,
        )
      : undefined,
    files: warm.reduce((n, files) => n + files.size, 0),
    bytes: warm.reduce(
      (n, files) => n + [...files.values()].reduce((m, text) => m + Buffer.byteLength(text), 0),
      0,
    ),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [entry = '@qmpkit/codegen', runs = '5'] = process.argv.slice(2);
  console.log(JSON.stringify(await measure(entry, Number(runs))));
}
