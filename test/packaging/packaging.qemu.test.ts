/**
 * Slow (runs in the `qemu` vitest project, though it needs no QEMU): builds every published
 * package (`tsc -p tsconfig.build.json`), packs it with `pnpm pack`, lints the tarball with
 * publint and @arethetypeswrong/cli, installs all tarballs into a scratch consumer project
 * with npm (no workspace links), type-checks an example under `moduleResolution: nodenext`
 * and `bundler`, runs it, and runs every bin with `--version`. Packages are found from
 * pnpm-workspace.yaml, so new ones are covered without editing this file.
 */
import { spawnSync } from 'node:child_process';
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
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { nodeTypeUses } from './node-types.js';
import { publishedPackages, ROOT, type WorkspacePackage } from './workspace.js';

const require = createRequire(import.meta.url);
const packages = publishedPackages();
const BIN = path.join(ROOT, 'node_modules/.bin');
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

function run(command: string, args: readonly string[], cwd: string, timeout = 300_000): string {
  const result = spawnSync(command, [...args], {
    cwd,
    encoding: 'utf8',
    timeout,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.status !== 0)
    throw new Error(
      `${command} ${args.join(' ')} (in ${cwd}) exited ${result.status ?? result.signal}:\n${output}`,
    );
  return output;
}

/** Test-runner helpers (`…/vitest`) only load inside a vitest run: type-check them only. */
const runnable = (s: string) => !s.endsWith('/vitest');

let scratch: string;
const tarballs = new Map<string, string>();

beforeAll(() => {
  scratch = mkdtempSync(path.join(tmpdir(), 'qmpkit-packaging-'));
  const out = path.join(scratch, 'tarballs');
  mkdirSync(out);
  for (const pkg of packages) {
    // No build step here: `pnpm pack` runs each package's `prepack` (its build), which is
    // what keeps a tarball from shipping without dist/ (issue #12 §4).
    rmSync(path.join(pkg.dir, 'dist'), { recursive: true, force: true });
    run('npx', ['-y', 'pnpm@10.34.9', 'pack', '--pack-destination', out], pkg.dir);
    const file = `${pkg.manifest.name.replace(/^@/, '').replace('/', '-')}-${pkg.manifest.version}.tgz`;
    tarballs.set(pkg.manifest.name, path.join(out, file));
  }
}, 1_500_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function unpack(pkg: WorkspacePackage): { dir: string; files: string[] } {
  const dir = path.join(scratch, 'unpacked', pkg.rel);
  mkdirSync(dir, { recursive: true });
  const tgz = tarballs.get(pkg.manifest.name)!;
  run('tar', ['-xzf', tgz, '-C', dir], scratch);
  const files = run('tar', ['-tzf', tgz], scratch).trim().split('\n');
  return { dir: path.join(dir, 'package'), files };
}

describe.each(packages.map((p) => [p.manifest.name, p] as const))('%s tarball', (name, pkg) => {
  it('has no source condition, no workspace:/catalog: specifiers, no src/', () => {
    const { dir, files } = unpack(pkg);
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

  it('was built by prepack, carries its MIT LICENSE, and ships no source maps without sources', () => {
    const { dir, files } = unpack(pkg);
    expect(files.some((f) => f.startsWith('package/dist/') && f.endsWith('.js'))).toBe(true);
    expect(files).toContain('package/LICENSE');
    expect(readFileSync(path.join(dir, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n/);
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.includes('test-support'))).toEqual([]);
  });

  it('passes publint --strict', () => {
    const output = run(
      path.join(BIN, 'publint'),
      ['run', '--strict', tarballs.get(name)!],
      scratch,
    );
    console.log(`publint ${name}: ${output.trim().split('\n').at(-1)}`);
    expect(output).toContain('All good!');
  });

  it('passes attw (profile esm-only: the packages are ESM-only by design)', () => {
    const output = run(
      path.join(BIN, 'attw'),
      [tarballs.get(name)!, '--profile', 'esm-only', '--format', 'ascii', '--no-emoji'],
      scratch,
    );
    console.log(`attw ${name}:\n${output.trim()}`);
    // attw exits non-zero on any problem the profile does not ignore (run() throws then).
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

  it('ships dist/LICENSE-NOTES.md saying whether QEMU docs are included', () => {
    const { dir, files } = qapi();
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

  it("carries QEMU's doc comments in the built 7.2 .d.ts (the repository's generated code does not)", (ctx) => {
    needSource(ctx);
    const { dir } = qapi();
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

describe('a consumer project with the tarballs installed by npm', () => {
  let consumer: string;
  // What a consumer can import: the published exports (source-only subpaths such as
  // `@qmpkit/testguest/test-support` are not published).
  const subpaths = packages.flatMap((pkg) =>
    Object.keys(pkg.manifest.publishConfig?.exports ?? pkg.manifest.exports ?? { '.': null })
      .filter((s) => s !== './package.json' && !s.includes('*'))
      .map((s) => (s === '.' ? pkg.manifest.name : `${pkg.manifest.name}/${s.slice(2)}`)),
  );

  beforeAll(() => {
    consumer = path.join(scratch, 'consumer');
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
    run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], consumer, 600_000);
    const imports = subpaths
      .map((s, i) =>
        runnable(s) ? `import * as m${i} from '${s}';` : `import type * as m${i} from '${s}';`,
      )
      .join('\n');
    const table = subpaths
      .map((s, i) =>
        runnable(s) ? `  ['${s}', m${i}],` : `  // ${s} is type-checked only (m${i})`,
      )
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
        compilerOptions: {
          ...base,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          outDir: 'out',
        },
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
  }, 600_000);

  it('installs without workspace links (real folders in node_modules)', () => {
    for (const pkg of packages) {
      const resolved = require.resolve(`${pkg.manifest.name}/package.json`, { paths: [consumer] });
      expect(resolved.startsWith(path.join(consumer, 'node_modules'))).toBe(true);
    }
  });

  it('type-checks under moduleResolution nodenext (with skipLibCheck off) and runs', () => {
    run(
      process.execPath,
      [path.join(consumer, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.nodenext.json'],
      consumer,
    );
    const output = run(process.execPath, ['out/example.js'], consumer);
    console.log(output.trim());
    for (const s of subpaths.filter(runnable))
      expect(output).toMatch(new RegExp(`^${s}: \\d+ exports$`, 'm'));
    if (tarballs.has('@qmpkit/cli'))
      expect(output).toMatch(/^qmpkit --version -> 0 \d+\.\d+\.\d+$/m);
  });

  it('type-checks under moduleResolution bundler', () => {
    run(
      process.execPath,
      [path.join(consumer, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.bundler.json'],
      consumer,
    );
  });

  /**
   * The browser entries, as a web project without `@types/node` sees them: the declaration
   * files reachable from each (under the `browser` condition) name no Node type, and a page's
   * code type-checks against them with `types: []`, the DOM lib and skipLibCheck off.
   */
  // @qmpkit/fake-qmp's model is Node-free since the fakemig/fakeblock merge (storage and
  // migration on Uint8Array). Its FakeQmp is `AsyncDisposable` (`await using`), so a page that
  // uses it needs lib `ESNext.Disposable` (TypeScript ≥ 5.2): its page below names it, and the
  // package README says so.
  const BROWSER_ENTRIES: readonly [pkg: string, dts: string][] = [
    ['@qmpkit/transport', 'dist/index.d.ts'],
    ['@qmpkit/qapi', 'dist/index.d.ts'],
    ['@qmpkit/qapi', 'dist/gen/qemu-7.2/index.generated.d.ts'],
    ['@qmpkit/fake-qmp', 'dist/index.browser.d.ts'],
    ['@qmpkit/fake-qmp', 'dist/msw.d.ts'],
  ];

  it.for(BROWSER_ENTRIES)(
    'browser entry %s (%s): its declarations name no Node type (Buffer, NodeJS.*, node: imports)',
    ([pkg, dts], ctx) => {
      if (!tarballs.has(pkg)) return ctx.skip(`${pkg} is not among the packed packages`);
      const root = path.join(consumer, 'node_modules', pkg);
      expect(existsSync(path.join(root, dts))).toBe(true);
      expect(nodeTypeUses(root, [dts])).toEqual([]);
    },
  );

  /** Pages using the browser entries, one per package group, type-checked without Node types. */
  const PAGES: Record<string, { needs: readonly string[]; code: string; lib?: readonly string[] }> =
    {
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

  it.for(Object.keys(PAGES))(
    'a page using %s type-checks without @types/node (types: [], lib DOM, skipLibCheck off)',
    (name, ctx) => {
      const page = PAGES[name]!;
      const missing = page.needs.filter((pkg) => !tarballs.has(pkg));
      if (missing.length > 0) return ctx.skip(`${missing.join(', ')} not packed`);
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
      run(
        process.execPath,
        [
          path.join(consumer, 'node_modules/typescript/bin/tsc'),
          '-p',
          `tsconfig.page-${name}.json`,
        ],
        consumer,
      );
    },
  );

  it('every bin runs (--version)', () => {
    for (const pkg of packages) {
      for (const bin of Object.keys(pkg.manifest.bin ?? {})) {
        const output = run(path.join(consumer, 'node_modules/.bin', bin), ['--version'], consumer);
        // The fake QEMU and storage daemon answer --version as the programs they imitate do.
        if (bin === 'qmpkit-fake-qemu') expect(output, bin).toMatch(/^QEMU emulator version \d+/);
        else if (bin === 'qmpkit-fake-qemu-storage-daemon')
          expect(output, bin).toMatch(/^qemu-storage-daemon version \d+/);
        else expect(output.trim(), bin).toBe(pkg.manifest.version);
      }
    }
  });
});

/**
 * Each runtime package alone, as a newcomer installs it: `npm install` of its tarball (and the
 * tarballs of the @qmpkit packages it depends on, which are not on a registry yet) into an
 * empty project. Only codegen's emitters need the TypeScript compiler, so neither package may
 * bring `typescript` along; the CLI must work from what it ships (the schema captures).
 */
describe.each(
  ['@qmpkit/cli', '@qmpkit/fake-qmp'].filter((n) => packages.some((p) => p.manifest.name === n)),
)('%s installed alone by npm', (name) => {
  let project: string;
  /** The @qmpkit packages `name` needs, itself included (its dependency closure). */
  const closure = (): string[] => {
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
  };

  beforeAll(() => {
    project = path.join(scratch, `alone-${name.replace(/^@qmpkit\//, '')}`);
    mkdirSync(project);
    writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({
        name: 'qmpkit-alone',
        private: true,
        type: 'module',
        dependencies: Object.fromEntries(closure().map((n) => [n, `file:${tarballs.get(n)}`])),
      }),
    );
    run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], project, 600_000);
  }, 600_000);

  it('does not pull @qmpkit/codegen or the TypeScript compiler', () => {
    expect(closure()).not.toContain('@qmpkit/codegen');
    expect(existsSync(path.join(project, 'node_modules/@qmpkit/codegen'))).toBe(false);
    expect(existsSync(path.join(project, 'node_modules/typescript'))).toBe(false);
    const tree = run('npm', ['ls', '--all', '--parseable'], project);
    expect(tree.split('\n').filter((line) => /[\\/]typescript$/.test(line))).toEqual([]);
  });

  it('its bin runs from what the package ships (cli: --version and schema diff 6.2 7.2)', () => {
    const version = packages.find((p) => p.manifest.name === name)!.manifest.version;
    if (name === '@qmpkit/fake-qmp') {
      const fake = path.join(project, 'node_modules/.bin/qmpkit-fake-qmp');
      expect(run(fake, ['--version'], project).trim()).toBe(version);
      return;
    }
    const bin = path.join(project, 'node_modules/.bin/qmpkit');
    expect(run(bin, ['--version'], project).trim()).toBe(
      packages.find((p) => p.manifest.name === name)!.manifest.version,
    );
    const diff = run(bin, ['schema', 'diff', '6.2', '7.2'], project);
    expect(diff).toContain('--- 6.2 (directory, QEMU 6.2.0)');
    expect(diff).toContain('+ command cancel-vcpu-dirty-limit');
    expect(diff).toMatch(/^\d+ changes: /m);
  });
});
