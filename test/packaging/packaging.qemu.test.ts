/**
 * Slow (runs in the `qemu` vitest project, though it needs no QEMU): builds every published
 * package (`tsc -p tsconfig.build.json`), packs it with `pnpm pack`, lints the tarball with
 * publint and @arethetypeswrong/cli, installs all tarballs into a scratch consumer project
 * with npm (no workspace links), type-checks an example under `moduleResolution: nodenext`
 * and `bundler`, runs it, and runs every bin with `--version`. Packages are found from
 * pnpm-workspace.yaml, so new ones are covered without editing this file.
 *
 * Speed: the file sets CI's critical path, so nothing waits that need not. The top-level
 * `beforeAll` starts every step at once as a background job on a small pool of child
 * processes (as many as there are cores, at least two): the packs, then per tarball its lints,
 * and once all are packed the three npm installs and after them the four type-checks and the
 * bins. Each test awaits the job it checks and asserts on its result, so every check still
 * fails on its own test. The jobs the critical path waits for (packs, installs, type-checks)
 * go ahead of the queued lints.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { nodeTypeUses } from './node-types.js';
import { publishedPackages, ROOT, type WorkspacePackage } from './workspace.js';

const require = createRequire(import.meta.url);
const packages = publishedPackages();
const BIN = path.join(ROOT, 'node_modules/.bin');
/** Tests that await a background job: the job may sit in the queue behind others. */
const WAIT = 1_200_000;
/** The version the workspace pins for a dependency (its catalog entry). */
const versionOf = (name: string): string => {
  const catalog = readFileSync(path.join(ROOT, 'pnpm-workspace.yaml'), 'utf8');
  const line = new RegExp(
    `^\\s+["']?${name.replace(/[/.@-]/g, (c) => `\\${c}`)}["']?:\\s*(\\S+)\\s*$`,
    'm',
  ).exec(catalog);
  if (!line?.[1]) throw new Error(`${name} has no catalog entry in pnpm-workspace.yaml`);
  return line[1];
};

const ENV = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
const failure = (
  command: string,
  args: readonly string[],
  cwd: string,
  how: unknown,
  output: string,
) => `${command} ${args.join(' ')} (in ${cwd}) exited ${String(how)}:\n${output}`;

function run(command: string, args: readonly string[], cwd: string, timeout = 300_000): string {
  const result = spawnSync(command, [...args], { cwd, encoding: 'utf8', timeout, env: ENV });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.status !== 0)
    throw new Error(failure(command, args, cwd, result.status ?? result.signal, output));
  return output;
}

/**
 * `run` without blocking the event loop, so several children run side by side. The child
 * leads its own process group, so a timeout ends its whole tree (npx → pnpm → tsc), not
 * only the process we started.
 */
function runAsync(
  command: string,
  args: readonly string[],
  cwd: string,
  timeout = 600_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], {
      cwd,
      env: ENV,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // The group is already gone (the child ended as the timer fired).
      }
    }, timeout);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(failure(command, args, cwd, error.message, ''), { cause: error }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const output = `${stdout}${stderr}`;
      if (code === 0) resolve(output);
      else {
        const how = timedOut ? `${signal} (timed out after ${timeout} ms)` : (code ?? signal);
        reject(new Error(failure(command, args, cwd, how, output)));
      }
    });
  });
}

/**
 * The pool of child processes: at most SLOTS jobs run at once (a few lines instead of a
 * dependency such as p-limit, because of the urgent lane: a job the critical path waits for,
 * a pack, an install or a type-check, goes ahead of the queued lints).
 */
const SLOTS = Math.max(2, availableParallelism());
let running = 0;
const waiting = { urgent: [] as (() => void)[], other: [] as (() => void)[] };
async function inSlot<T>(job: () => Promise<T>, urgent: boolean): Promise<T> {
  if (running < SLOTS) running++;
  else await new Promise<void>((go) => waiting[urgent ? 'urgent' : 'other'].push(go));
  try {
    return await job();
  } finally {
    const next = waiting.urgent.shift() ?? waiting.other.shift();
    if (next)
      next(); // hands this slot over (running stays the same)
    else running--;
  }
}

const jobs: Promise<unknown>[] = [];
const timings: string[] = [];
/** Starts `job` in the pool once `after` has settled well; its promise is awaited by a test. */
function background<T>(
  label: string,
  job: () => Promise<T>,
  { after, urgent = false }: { after?: Promise<unknown>; urgent?: boolean } = {},
): Promise<T> {
  const timed = async () => {
    const t0 = performance.now();
    try {
      return await job();
    } finally {
      timings.push(`${label}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  };
  const promise = (after ?? Promise.resolve()).then(() => inSlot(timed, urgent));
  // The test that awaits `promise` reports its failure; this handler only keeps a rejection
  // that comes before that test runs from counting as unhandled.
  promise.catch(() => {});
  jobs.push(promise);
  return promise;
}

/** Test-runner helpers (`…/vitest`) only load inside a vitest run: type-check them only. */
const runnable = (s: string) => !s.endsWith('/vitest');

let scratch: string;
/** Where each package's tarball goes; `packed` says when it is there. */
const tarballs = new Map<string, string>();
const packed = new Map<string, Promise<void>>();
/** Settles when the given packages (default: all) are packed. */
const packedAll = (names: readonly string[] = [...packed.keys()]) =>
  Promise.all(names.map((n) => packed.get(n)!));
/** Started in the top-level beforeAll (startJobs), awaited by the tests. */
let lint: Map<string, { publint: Promise<string>; attw: Promise<string> }>;
let consumerJobs: {
  install: Promise<void>;
  nodenext: Promise<string>;
  bundler: Promise<string>;
  pages: Map<string, Promise<string>>;
};
let aloneJobs: Map<string, Promise<void>>;

beforeAll(() => {
  scratch = mkdtempSync(path.join(tmpdir(), 'qmpkit-packaging-'));
  const out = path.join(scratch, 'tarballs');
  mkdirSync(out);
  // No build step here: `pnpm pack` runs each package's `prepack` (its build), which is
  // what keeps a tarball from shipping without dist/ (issue #12 §4). The packs run SLOTS at
  // a time (`pnpm -r pack` packs one after the other): the builds read each other's sources
  // (condition @qmpkit/source), never each other's dist/, so their order does not matter.
  for (const pkg of packages) {
    rmSync(path.join(pkg.dir, 'dist'), { recursive: true, force: true });
    const file = `${pkg.manifest.name.replace(/^@/, '').replace('/', '-')}-${pkg.manifest.version}.tgz`;
    tarballs.set(pkg.manifest.name, path.join(out, file));
    packed.set(
      pkg.manifest.name,
      background(
        `pnpm pack ${pkg.manifest.name}`,
        async () => {
          await runAsync('npx', ['-y', 'pnpm@10.34.9', 'pack', '--pack-destination', out], pkg.dir);
        },
        { urgent: true },
      ),
    );
  }
  startJobs();
});

afterAll(async () => {
  // A failed test may leave jobs running: let them end before their folders go.
  await Promise.allSettled(jobs);
  console.log(`packaging timings (${SLOTS} slots):\n  ${timings.join('\n  ')}`);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}, WAIT);

const unpacked = new Map<string, { dir: string; files: string[] }>();
/** The tarball unpacked once (tests only read it). */
async function unpack(pkg: WorkspacePackage): Promise<{ dir: string; files: string[] }> {
  await packed.get(pkg.manifest.name)!;
  const known = unpacked.get(pkg.manifest.name);
  if (known) return known;
  const dir = path.join(scratch, 'unpacked', pkg.rel);
  mkdirSync(dir, { recursive: true });
  const tgz = tarballs.get(pkg.manifest.name)!;
  run('tar', ['-xzf', tgz, '-C', dir], scratch);
  const files = run('tar', ['-tzf', tgz], scratch).trim().split('\n');
  const result = { dir: path.join(dir, 'package'), files };
  unpacked.set(pkg.manifest.name, result);
  return result;
}

describe.each(packages.map((p) => [p.manifest.name, p] as const))('%s tarball', (name, pkg) => {
  it('has no source condition, no workspace:/catalog: specifiers, no src/', {
    timeout: WAIT,
  }, async () => {
    const { dir, files } = await unpack(pkg);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(JSON.stringify(manifest.exports)).not.toContain('@qmpkit/source');
    expect(manifest.publishConfig).toBeUndefined();
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies'])
      expect(JSON.stringify(manifest[field] ?? {}), field).not.toMatch(/"(workspace|catalog):/);
    expect(files.filter((f) => f.startsWith('package/src/'))).toEqual([]);
    expect(files).toContain('package/package.json');
  });

  it('was built by prepack, carries its MIT LICENSE, and ships no source maps without sources', {
    timeout: WAIT,
  }, async () => {
    const { dir, files } = await unpack(pkg);
    expect(files.some((f) => f.startsWith('package/dist/') && f.endsWith('.js'))).toBe(true);
    expect(files).toContain('package/LICENSE');
    expect(readFileSync(path.join(dir, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n/);
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.includes('test-support'))).toEqual([]);
  });

  it('passes publint --strict', { timeout: WAIT }, async () => {
    const output = await lint.get(name)!.publint;
    console.log(`publint ${name}: ${output.trim().split('\n').at(-1)}`);
    expect(output).toContain('All good!');
  });

  it('passes attw (profile esm-only: the packages are ESM-only by design)', {
    timeout: WAIT,
  }, async () => {
    // attw exits non-zero on any problem the profile does not ignore (the job fails then).
    const output = await lint.get(name)!.attw;
    console.log(`attw ${name}:\n${output.trim()}`);
    expect(output).toContain('node16 (from ESM)');
  });
});

/** QEMU 7.2's QAPI source, fetched by `pnpm schemas:source` (gitignored; present in CI). */
const QAPI_SOURCE = path.join(ROOT, '.cache/qapi-source/qemu-7.2/qapi/qapi-schema.json');
/** A sentence of QEMU's own doc comment for query-status (qapi/run-state.json). */
const QEMU_DOC = 'Query the run status of all VCPUs';

describe('@qmpkit/qapi tarball: QEMU docs from the QAPI source cache, and the license note', () => {
  const qapiPackage = packages.find((p) => p.manifest.name === '@qmpkit/qapi');
  const qapi = () => {
    if (qapiPackage === undefined) throw new Error('no @qmpkit/qapi among the packed packages');
    return unpack(qapiPackage);
  };
  const haveSource = existsSync(QAPI_SOURCE);
  const needSource = (ctx: TestContext) => {
    if (haveSource) return;
    if (process.env.CI === 'true')
      throw new Error(`${QAPI_SOURCE} is missing in CI: run \`pnpm schemas:source\` first`);
    ctx.skip(
      `.cache/qapi-source/qemu-7.2 absent (run \`pnpm schemas:source\`): the build had no QEMU docs to add`,
    );
  };

  it('ships dist/LICENSE-NOTES.md saying whether QEMU docs are included', {
    timeout: WAIT,
  }, async () => {
    const { dir, files } = await qapi();
    expect(files).toContain('package/dist/LICENSE-NOTES.md');
    const notes = readFileSync(path.join(dir, 'dist/LICENSE-NOTES.md'), 'utf8');
    expect(notes).toContain('The code of @qmpkit/qapi is MIT-licensed.');
    if (haveSource) {
      expect(notes).toMatch(
        /QAPI documentation in the JSDoc comments of the bindings for\s+QEMU 7\.2/,
      );
      expect(notes).toContain('GPL-2.0-or-later');
    } else {
      expect(notes).toContain('This build carries no QEMU documentation');
    }
  });

  it("carries QEMU's doc comments in the built 7.2 .d.ts (the repository's generated code does not)", {
    timeout: WAIT,
  }, async (ctx) => {
    needSource(ctx);
    const { dir } = await qapi();
    const concat = (folder: string, suffix: string) =>
      readdirSync(folder)
        .filter((f) => f.endsWith(suffix))
        .map((f) => readFileSync(path.join(folder, f), 'utf8'))
        .join('\n');
    const built = concat(path.join(dir, 'dist/gen/qemu-7.2'), '.d.ts');
    expect(built).toContain(QEMU_DOC);
    // The committed, doc-free output (generated from the capture alone) lacks the prose.
    const committed = concat(path.join(ROOT, 'packages/qapi/src/gen/qemu-7.2'), '.ts');
    expect(committed).not.toContain(QEMU_DOC);
  });
});

// What a consumer can import: the published exports (source-only subpaths such as
// `@qmpkit/testguest/test-support` are not published).
const subpaths = packages.flatMap((pkg) =>
  Object.keys(pkg.manifest.publishConfig?.exports ?? pkg.manifest.exports ?? { '.': null })
    .filter((s) => s !== './package.json' && !s.includes('*'))
    .map((s) => (s === '.' ? pkg.manifest.name : `${pkg.manifest.name}/${s.slice(2)}`)),
);

/** Pages using the browser entries, one per package group, type-checked without Node types. */
const PAGES: Record<string, { needs: readonly string[]; code: string; lib?: readonly string[] }> = {
  transport: {
    needs: ['@qmpkit/transport', '@qmpkit/qapi'],
    code: [
      "import { connect, type QmpClient } from '@qmpkit/transport';",
      "import type { StatusInfo } from '@qmpkit/qapi/qemu-7.2';",
      'export async function status(url: string): Promise<StatusInfo> {',
      '  const qmp: QmpClient = await connect(url);',
      "  const info = await qmp.execute('query-status');",
      '  await qmp.close();',
      '  return info;',
      '}',
    ].join('\n'),
  },
  // @qmpkit/fake-qmp's model is Node-free since the fakemig/fakeblock merge (storage and
  // migration on Uint8Array). Its FakeQmp is `AsyncDisposable` (`await using`), so a page that
  // uses it needs lib `ESNext.Disposable` (TypeScript ≥ 5.2): its page names it, and the
  // package README says so.
  fake: {
    needs: ['@qmpkit/fake-qmp', '@qmpkit/transport', '@qmpkit/qapi'],
    lib: ['ESNext.Disposable'],
    code: [
      "import { FakeQmp, type FakeQmpOptions, MemoryStorage } from '@qmpkit/fake-qmp';",
      'export async function withFake(options: FakeQmpOptions): Promise<void> {',
      '  await using fake = new FakeQmp({ ...options, storage: new MemoryStorage() });',
      '  void fake;',
      '}',
    ].join('\n'),
  },
};

/** The runtime packages installed alone (see their describe below). */
const ALONE = ['@qmpkit/cli', '@qmpkit/fake-qmp'].filter((n) =>
  packages.some((p) => p.manifest.name === n),
);
/** The @qmpkit packages `name` needs, itself included (its dependency closure). */
function closure(name: string): string[] {
  const byName = new Map(packages.map((p) => [p.manifest.name, p]));
  const found = new Set<string>();
  const visit = (n: string) => {
    if (found.has(n)) return;
    found.add(n);
    for (const dep of Object.keys(byName.get(n)?.manifest.dependencies ?? {}))
      if (byName.has(dep)) visit(dep);
  };
  visit(name);
  return [...found].sort();
}
const consumerDir = () => path.join(scratch, 'consumer');
const aloneDir = (name: string) => path.join(scratch, `alone-${name.replace(/^@qmpkit\//, '')}`);
const npmInstall = (dir: string) =>
  // --prefer-offline: the registry packages (typescript, @types/node, the peers) come from
  // npm's cache without a metadata round trip when they are there; the tarballs are local.
  runAsync(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'],
    dir,
    900_000,
  );

/** The consumer project's files: package.json, an example importing every subpath, tsconfigs. */
function writeConsumer(consumer: string): void {
  mkdirSync(consumer);
  writeFileSync(
    path.join(consumer, 'package.json'),
    JSON.stringify(
      {
        name: 'qmpkit-consumer',
        private: true,
        type: 'module',
        dependencies: Object.fromEntries(
          packages.map((p) => [p.manifest.name, `file:${tarballs.get(p.manifest.name)}`]),
        ),
        devDependencies: {
          typescript: versionOf('typescript'),
          '@types/node': versionOf('@types/node'),
          // Optional peers (msw, vitest, ws for the fake server's helpers): a consumer that
          // imports those subpaths has them.
          ...Object.fromEntries(
            packages
              .flatMap((p) => Object.keys(p.manifest.peerDependencies ?? {}))
              .map((name) => [name, versionOf(name)]),
          ),
        },
      },
      null,
      2,
    ),
  );
  const imports = subpaths
    .map((s, i) =>
      runnable(s) ? `import * as m${i} from '${s}';` : `import type * as m${i} from '${s}';`,
    )
    .join('\n');
  const table = subpaths
    .map((s, i) => (runnable(s) ? `  ['${s}', m${i}],` : `  // ${s} is type-checked only (m${i})`))
    .join('\n');
  const extra = packages.some((p) => p.manifest.name === '@qmpkit/cli')
    ? [
        "import { main, type CliIo } from '@qmpkit/cli';",
        "import { PassThrough } from 'node:stream';",
        'const out = new PassThrough();',
        "let printed = '';",
        "out.on('data', (c: Buffer) => { printed += c.toString(); });",
        'const io: CliIo = { stdin: new PassThrough(), stdout: out, stderr: out, env: {}, onInterrupt: () => () => {} };',
        "const code: number = await main(['--version'], io);",
        "console.log('qmpkit --version ->', code, printed.trim());",
      ].join('\n')
    : '';
  writeFileSync(
    path.join(consumer, 'example.ts'),
    `${imports}\n${extra}\nconst modules: [string, object][] = [\n${table}\n];\nfor (const [name, m] of modules) console.log(\`\${name}: \${Object.keys(m).length} exports\`);\n`,
  );
  const base = {
    strict: true,
    target: 'ES2022',
    types: ['node'],
    skipLibCheck: false,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
  };
  writeFileSync(
    path.join(consumer, 'tsconfig.nodenext.json'),
    JSON.stringify({
      compilerOptions: { ...base, module: 'nodenext', moduleResolution: 'nodenext', outDir: 'out' },
      files: ['example.ts'],
    }),
  );
  writeFileSync(
    path.join(consumer, 'tsconfig.bundler.json'),
    JSON.stringify({
      compilerOptions: { ...base, module: 'esnext', moduleResolution: 'bundler', noEmit: true },
      files: ['example.ts'],
    }),
  );
  for (const [name, page] of Object.entries(PAGES)) {
    writeFileSync(path.join(consumer, `page-${name}.ts`), `${page.code}\n`);
    writeFileSync(
      path.join(consumer, `tsconfig.page-${name}.json`),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          target: 'ES2022',
          lib: ['ES2022', 'DOM', 'DOM.Iterable', ...(page.lib ?? [])],
          types: [],
          skipLibCheck: false,
          exactOptionalPropertyTypes: true,
          module: 'esnext',
          moduleResolution: 'bundler',
          customConditions: ['browser'],
          noEmit: true,
        },
        files: [`page-${name}.ts`],
      }),
    );
  }
}

/**
 * Starts every check's work after the packs it needs. The lints of a tarball need nothing
 * else; the consumer's four type-checks wait for its install (and run side by side, two
 * compilers instead of one project-references build: the programs share no checking work).
 */
function startJobs(): void {
  const consumer = consumerDir();
  writeConsumer(consumer);
  const install = background('npm install (consumer)', () => npmInstall(consumer).then(() => {}), {
    after: packedAll(),
    urgent: true,
  });
  const tsc = (config: string) =>
    runAsync(
      process.execPath,
      [path.join(consumer, 'node_modules/typescript/bin/tsc'), '-p', config],
      consumer,
    );
  consumerJobs = {
    install,
    nodenext: background(
      'tsc nodenext + run',
      async () => {
        await tsc('tsconfig.nodenext.json');
        return runAsync(process.execPath, ['out/example.js'], consumer);
      },
      { after: install, urgent: true },
    ),
    bundler: background('tsc bundler', () => tsc('tsconfig.bundler.json'), {
      after: install,
      urgent: true,
    }),
    pages: new Map(
      Object.entries(PAGES)
        .filter(([, page]) => page.needs.every((pkg) => tarballs.has(pkg)))
        .map(([name]) => [
          name,
          background(`tsc page ${name}`, () => tsc(`tsconfig.page-${name}.json`), {
            after: install,
            urgent: true,
          }),
        ]),
    ),
  };
  aloneJobs = new Map(
    ALONE.map((name) => {
      const project = aloneDir(name);
      mkdirSync(project);
      writeFileSync(
        path.join(project, 'package.json'),
        JSON.stringify({
          name: 'qmpkit-alone',
          private: true,
          type: 'module',
          dependencies: Object.fromEntries(
            closure(name).map((n) => [n, `file:${tarballs.get(n)}`]),
          ),
        }),
      );
      const job = background(`npm install (${name} alone)`, () => npmInstall(project), {
        after: packedAll(closure(name)),
        urgent: true,
      });
      return [name, job.then(() => {})];
    }),
  );
  lint = new Map(
    packages.map((pkg) => {
      const tgz = tarballs.get(pkg.manifest.name)!;
      const after = packed.get(pkg.manifest.name)!;
      const publint = background(
        `publint ${pkg.manifest.name}`,
        () => runAsync(path.join(BIN, 'publint'), ['run', '--strict', tgz], scratch),
        { after },
      );
      const attw = background(
        `attw ${pkg.manifest.name}`,
        () =>
          runAsync(
            path.join(BIN, 'attw'),
            [tgz, '--profile', 'esm-only', '--format', 'ascii', '--no-emoji'],
            scratch,
          ),
        { after },
      );
      return [pkg.manifest.name, { publint, attw }];
    }),
  );
}

describe('a consumer project with the tarballs installed by npm', () => {
  const consumer = () => consumerDir();

  it('installs without workspace links (real folders in node_modules)', {
    timeout: WAIT,
  }, async () => {
    await consumerJobs.install;
    for (const pkg of packages) {
      const resolved = require.resolve(`${pkg.manifest.name}/package.json`, {
        paths: [consumer()],
      });
      expect(resolved.startsWith(path.join(consumer(), 'node_modules'))).toBe(true);
    }
  });

  it('type-checks under moduleResolution nodenext (with skipLibCheck off) and runs', {
    timeout: WAIT,
  }, async () => {
    const output = await consumerJobs.nodenext;
    console.log(output.trim());
    for (const s of subpaths.filter(runnable))
      expect(output).toMatch(new RegExp(`^${s}: \\d+ exports$`, 'm'));
    if (tarballs.has('@qmpkit/cli'))
      expect(output).toMatch(/^qmpkit --version -> 0 \d+\.\d+\.\d+$/m);
  });

  it('type-checks under moduleResolution bundler', { timeout: WAIT }, async () => {
    // tsc exits non-zero on any error (the job fails then); a clean run prints nothing.
    expect((await consumerJobs.bundler).trim()).toBe('');
  });

  /**
   * The browser entries, as a web project without `@types/node` sees them: the declaration
   * files reachable from each (under the `browser` condition) name no Node type, and a page's
   * code type-checks against them with `types: []`, the DOM lib and skipLibCheck off.
   */
  const BROWSER_ENTRIES: readonly [pkg: string, dts: string][] = [
    ['@qmpkit/transport', 'dist/index.d.ts'],
    ['@qmpkit/qapi', 'dist/index.d.ts'],
    ['@qmpkit/qapi', 'dist/gen/qemu-7.2/index.generated.d.ts'],
    ['@qmpkit/fake-qmp', 'dist/index.browser.d.ts'],
    ['@qmpkit/fake-qmp', 'dist/msw.d.ts'],
  ];

  it.for(BROWSER_ENTRIES)(
    'browser entry %s (%s): its declarations name no Node type (Buffer, NodeJS.*, node: imports)',
    { timeout: WAIT },
    async ([pkg, dts], ctx) => {
      if (!tarballs.has(pkg)) return ctx.skip(`${pkg} is not among the packed packages`);
      await consumerJobs.install;
      const root = path.join(consumer(), 'node_modules', pkg);
      expect(existsSync(path.join(root, dts))).toBe(true);
      expect(nodeTypeUses(root, [dts])).toEqual([]);
    },
  );

  it.for(Object.keys(PAGES))(
    'a page using %s type-checks without @types/node (types: [], lib DOM, skipLibCheck off)',
    { timeout: WAIT },
    async (name, ctx) => {
      const missing = PAGES[name]!.needs.filter((pkg) => !tarballs.has(pkg));
      if (missing.length > 0) return ctx.skip(`${missing.join(', ')} not packed`);
      expect((await consumerJobs.pages.get(name)!).trim()).toBe('');
    },
  );

  it('every bin runs (--version)', { timeout: WAIT }, async () => {
    await consumerJobs.install;
    const bins = packages.flatMap((pkg) =>
      Object.keys(pkg.manifest.bin ?? {}).map((bin) => ({ bin, version: pkg.manifest.version })),
    );
    const outputs = await Promise.all(
      bins.map(({ bin }) =>
        inSlot(
          () =>
            runAsync(path.join(consumer(), 'node_modules/.bin', bin), ['--version'], consumer()),
          true,
        ),
      ),
    );
    bins.forEach(({ bin, version }, i) => {
      const output = outputs[i]!;
      // The fake QEMU and storage daemon answer --version as the programs they imitate do.
      if (bin === 'qmpkit-fake-qemu') expect(output, bin).toMatch(/^QEMU emulator version \d+/);
      else if (bin === 'qmpkit-fake-qemu-storage-daemon')
        expect(output, bin).toMatch(/^qemu-storage-daemon version \d+/);
      else expect(output.trim(), bin).toBe(version);
    });
  });
});

/**
 * Each runtime package alone, as a newcomer installs it: `npm install` of its tarball (and the
 * tarballs of the @qmpkit packages it depends on, which are not on a registry yet) into an
 * empty project. Only codegen's emitters need the TypeScript compiler, so neither package may
 * bring `typescript` along; the CLI must work from what it ships (the schema captures).
 */
describe.each(ALONE)('%s installed alone by npm', (name) => {
  const project = () => aloneDir(name);

  it('does not pull @qmpkit/codegen or the TypeScript compiler', { timeout: WAIT }, async () => {
    await aloneJobs.get(name)!;
    expect(closure(name)).not.toContain('@qmpkit/codegen');
    expect(existsSync(path.join(project(), 'node_modules/@qmpkit/codegen'))).toBe(false);
    expect(existsSync(path.join(project(), 'node_modules/typescript'))).toBe(false);
    const tree = await runAsync('npm', ['ls', '--all', '--parseable'], project());
    expect(tree.split('\n').filter((line) => /[\\/]typescript$/.test(line))).toEqual([]);
  });

  it('its bin runs from what the package ships (cli: --version and schema diff 6.2 7.2)', {
    timeout: WAIT,
  }, async () => {
    await aloneJobs.get(name)!;
    const version = packages.find((p) => p.manifest.name === name)!.manifest.version;
    if (name === '@qmpkit/fake-qmp') {
      const fake = path.join(project(), 'node_modules/.bin/qmpkit-fake-qmp');
      expect((await runAsync(fake, ['--version'], project())).trim()).toBe(version);
      return;
    }
    const bin = path.join(project(), 'node_modules/.bin/qmpkit');
    const [printed, diff] = await Promise.all([
      runAsync(bin, ['--version'], project()),
      runAsync(bin, ['schema', 'diff', '6.2', '7.2'], project()),
    ]);
    expect(printed.trim()).toBe(version);
    expect(diff).toContain('--- 6.2 (directory, QEMU 6.2.0)');
    expect(diff).toContain('+ command cancel-vcpu-dirty-limit');
    expect(diff).toMatch(/^\d+ changes: /m);
  });
});
