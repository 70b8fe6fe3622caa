/**
 * The browser bundle check: a page's client, typed for one QEMU version, bundled by esbuild
 * for the browser platform. Fails on any import of a Node built-in (`node:*` or a bare
 * built-in name) anywhere in the graph, and prints the size a page downloads (minified,
 * gzip) so a regression in weight shows in CI's log.
 */
import { builtinModules } from 'node:module';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';
import { describe, expect, it } from 'vitest';

const builtins = new Set(builtinModules);

interface BundleReport {
  /** Node built-ins the graph imports, with the module that imports each. */
  readonly nodeImports: string[];
  /** Bytes loaded before the first `await import()`: the entry chunk and its static imports. */
  readonly initial: { readonly minified: number; readonly gzip: number };
  /** Every chunk, lazily loaded ones too. */
  readonly total: { readonly minified: number; readonly gzip: number };
  readonly text: string;
}

async function bundle(contents: string, extra: Partial<esbuild.BuildOptions> = {}) {
  const nodeImports: string[] = [];
  const result = await esbuild.build({
    stdin: { contents, loader: 'ts', resolveDir: import.meta.dirname, sourcefile: 'page.ts' },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    minify: true,
    splitting: true,
    // Never written (write: false); esbuild needs a directory to name the chunks.
    outdir: path.join(import.meta.dirname, 'out'),
    write: false,
    metafile: true,
    logLevel: 'silent',
    // The workspace's sources (no build step); esbuild adds `browser` for this platform.
    conditions: ['@qmpkit/source'],
    plugins: [
      {
        name: 'refuse-node-builtins',
        setup(build) {
          build.onResolve({ filter: /.*/ }, (args) => {
            const bare = args.path.startsWith('node:') ? args.path.slice(5) : args.path;
            if (!args.path.startsWith('node:') && !builtins.has(bare)) return undefined;
            nodeImports.push(`${args.path} (imported by ${args.importer})`);
            return { path: args.path, external: true };
          });
        },
      },
    ],
    ...extra,
  });
  const { metafile, outputFiles } = result;
  if (metafile === undefined || outputFiles === undefined)
    throw new TypeError('esbuild returned no metafile or output files');
  return { metafile, outputFiles, nodeImports };
}

async function report(contents: string): Promise<BundleReport> {
  const { metafile, outputFiles, nodeImports } = await bundle(contents);
  const outputs = metafile.outputs;
  const sizes = new Map<string, { minified: number; gzip: number }>();
  for (const file of outputFiles) {
    const key = path.relative(process.cwd(), file.path);
    sizes.set(key, { minified: file.contents.length, gzip: gzipSync(file.contents).length });
  }
  const entry = Object.keys(outputs).find(
    (k) => outputs[k]?.entryPoint?.endsWith('page.ts') === true,
  );
  if (entry === undefined) throw new TypeError('esbuild reported no entry chunk');
  const initial = new Set<string>();
  const visit = (file: string): void => {
    if (initial.has(file)) return;
    initial.add(file);
    for (const imp of outputs[file]?.imports ?? [])
      if (imp.kind === 'import-statement') visit(imp.path);
  };
  visit(entry);
  const sum = (files: Iterable<string>) => {
    let minified = 0;
    let gzip = 0;
    for (const f of files) {
      const s = sizes.get(f);
      if (s === undefined) throw new TypeError(`no output for chunk ${f}`);
      minified += s.minified;
      gzip += s.gzip;
    }
    return { minified, gzip };
  };
  const text = outputFiles.map((f) => f.text).join('\n');
  return { nodeImports, initial: sum(initial), total: sum(sizes.keys()), text };
}

const kB = (n: number) => `${(n / 1024).toFixed(1)} kB`;
function print(label: string, r: BundleReport): void {
  console.log(
    `${label}: initial ${kB(r.initial.minified)} minified, ${kB(r.initial.gzip)} gzip; ` +
      `all chunks ${kB(r.total.minified)} minified, ${kB(r.total.gzip)} gzip`,
  );
}

describe('@qmpkit/transport bundled for the browser (esbuild, platform browser)', () => {
  it('a client typed for QEMU 7.2 with its validation tables imports no Node built-in', async () => {
    const r = await report(`
      import { connect, defineBindings, isQmpCommandError } from '@qmpkit/transport';
      import { type Commands, type Events, tables } from '@qmpkit/qapi/qemu-7.2';
      export async function open(url: string) {
        const qmp = await connect(url, {
          bindings: defineBindings<Commands, Events>(tables),
          validate: 'strict',
        });
        try {
          await qmp.execute('stop');
        } catch (error) {
          if (!isQmpCommandError(error)) throw error;
        }
        for await (const event of qmp.events({ names: ['STOP'] })) return event.timestamp;
        return qmp;
      }
    `);
    print('client + QEMU 7.2 tables', r);
    expect(r.nodeImports).toEqual([]);
    expect(r.text).not.toMatch(/["'`]node:/);
    // The page loads the client and the 7.2 tables up front; merged availability data
    // (capability questions) stays in a lazily loaded chunk.
    expect(r.initial.gzip).toBeLessThan(r.total.gzip);
    expect(r.initial.gzip).toBeLessThan(80 * 1024);
  });

  it('a client typed at compile time only (no runtime tables) is small', async () => {
    const r = await report(`
      import { connect } from '@qmpkit/transport';
      export async function status(url: string) {
        const qmp = await connect(url);
        const info = await qmp.execute('query-status');
        await qmp.close();
        return info.status;
      }
    `);
    print('client, types only', r);
    expect(r.nodeImports).toEqual([]);
    expect(r.initial.gzip).toBeLessThan(24 * 1024);
  });

  it('the fake and its msw adapter bundle for a page with no Node built-in', async () => {
    const r = await report(`
      import { createFakeQmp } from '@qmpkit/fake-qmp';
      import { createQmpWebSocketHandler } from '@qmpkit/fake-qmp/msw';
      export async function mock(url: string) {
        const fake = await createFakeQmp({ storage: 'memory' });
        return createQmpWebSocketHandler(fake, url);
      }
    `);
    print('fake-qmp + msw adapter', r);
    expect(r.nodeImports).toEqual([]);
    expect(r.text).not.toMatch(/["'`]node:/);
  });

  it('the check itself catches a Node built-in (the same import without `browser`)', async () => {
    // Without the `browser` condition, `#dial` resolves to the Node dialer, whose `node:net`
    // the check must report.
    const { nodeImports } = await bundle(`export { connect } from '@qmpkit/transport';`, {
      platform: 'neutral',
    });
    expect(nodeImports.some((i) => i.startsWith('node:net'))).toBe(true);
  });
});
