/**
 * Put QEMU's QAPI source files (qapi/*.json) for one QEMU version into a gitignored cache:
 *   pnpm schemas:source                      Debian's source package (apt-get source qemu)
 *   pnpm schemas:source --qemu-tree DIR      a QEMU source tree you name
 *   pnpm schemas:source --release trixie     a newer QEMU (10.0) from another Debian release,
 *                                            for the parser's forward-compatibility tests
 *
 * Cache: <repo>/.cache/qapi-source/qemu-<version>/qapi/*.json, the guest agent's schema in
 * qga/*.json, plus `provenance.json`.
 * Idempotent: a complete cache is reused. QEMU's files are GPL: they stay in the cache
 * and are never committed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AptRepo } from '@qmpkit/debian';

const repoRoot = path.resolve(import.meta.dirname, '../..');
export const cacheRoot = path.join(repoRoot, '.cache/qapi-source');

class FetchError extends Error {
  override readonly name = 'FetchError';
}

/** Where the QAPI source of a version lives once fetched. */
export function qapiSourceDir(version: string): string {
  return path.join(cacheRoot, `qemu-${version}`, 'qapi');
}

/** Where the guest agent's QAPI source (`qga/*.json`) of a version lives once fetched. */
export function qgaSourceDir(version: string): string {
  return path.join(cacheRoot, `qemu-${version}`, 'qga');
}

function run(command: string, args: readonly string[], cwd?: string): string {
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.error) throw new FetchError(`cannot run ${command}: ${result.error.message}`);
  if (result.status !== 0) {
    throw new FetchError(
      `${command} ${args.join(' ')} failed (exit ${result.status}):\n${(result.stderr || result.stdout).trim().slice(-2000)}`,
    );
  }
  return result.stdout;
}

function copyQapiJson(
  fromTree: string,
  version: string,
  provenance: Record<string, string>,
): string {
  const from = path.join(fromTree, 'qapi');
  if (!existsSync(path.join(from, 'qapi-schema.json'))) {
    throw new FetchError(`${from}/qapi-schema.json not found: is ${fromTree} a QEMU source tree?`);
  }
  const target = path.join(cacheRoot, `qemu-${version}`);
  const staging = `${target}.partial`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(path.join(staging, 'qapi'), { recursive: true });
  const files = readdirSync(from)
    .filter((f) => f.endsWith('.json'))
    .sort();
  for (const file of files) cpSync(path.join(from, file), path.join(staging, 'qapi', file));
  // The guest agent's schema (qga/qapi-schema.json) lives beside qapi/ in the same tree.
  const qgaFrom = path.join(fromTree, 'qga');
  const qgaFiles = existsSync(qgaFrom)
    ? readdirSync(qgaFrom)
        .filter((f) => f.endsWith('.json'))
        .sort()
    : [];
  if (qgaFiles.length > 0) mkdirSync(path.join(staging, 'qga'));
  for (const file of qgaFiles) cpSync(path.join(qgaFrom, file), path.join(staging, 'qga', file));
  writeFileSync(
    path.join(staging, 'provenance.json'),
    `${JSON.stringify({ ...provenance, files: files.length, ...(qgaFiles.length > 0 ? { qgaFiles: qgaFiles.length } : {}) }, null, 2)}\n`,
  );
  rmSync(target, { recursive: true, force: true });
  renameSync(staging, target); // the cache is complete or absent, never half-written
  return target;
}

function treeVersion(tree: string): string {
  const file = path.join(tree, 'VERSION');
  if (!existsSync(file))
    throw new FetchError(`${tree}/VERSION not found: is ${tree} a QEMU source tree?`);
  const [major, minor] = readFileSync(file, 'utf8').trim().split('.');
  return `${major}.${minor}`;
}

const DEB_SRC_FILE = '/etc/apt/sources.list.d/qmpkit-bookworm-src.sources';
const DEB_SRC = `Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;

function hasDebSrc(): boolean {
  const dirs = ['/etc/apt/sources.list', '/etc/apt/sources.list.d'];
  for (const entry of dirs) {
    if (!existsSync(entry)) continue;
    const files = entry.endsWith('.d')
      ? readdirSync(entry).map((f) => path.join(entry, f))
      : [entry];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      if (/^\s*deb-src\s/m.test(text) || /^Types:.*\bdeb-src\b/m.test(text)) return true;
    }
  }
  return false;
}

function fromDebian(): string {
  if (!existsSync('/usr/bin/apt-get'))
    throw new FetchError('apt-get not found: use --qemu-tree DIR with a QEMU source tree');
  if (!existsSync('/usr/bin/dpkg-source')) {
    throw new FetchError(
      'dpkg-source not found: install dpkg-dev (apt-get install -y dpkg-dev) or use --qemu-tree DIR',
    );
  }
  const root = process.getuid?.() === 0;
  if (!hasDebSrc()) {
    if (!root) {
      throw new FetchError(
        `no deb-src entry in apt's sources; as root, write ${DEB_SRC_FILE} with:\n${DEB_SRC}and run apt-get update`,
      );
    }
    writeFileSync(DEB_SRC_FILE, DEB_SRC);
    run('apt-get', ['update', '-qq']);
  }
  mkdirSync(cacheRoot, { recursive: true });
  const work = mkdtempSync(path.join(cacheRoot, 'download-'));
  try {
    // Download only, then unpack with dpkg-source so Debian's patches (stable updates) apply.
    run('apt-get', ['source', '--download-only', '-qq', 'qemu'], work);
    const dsc = readdirSync(work).find((f) => f.endsWith('.dsc'));
    if (!dsc) throw new FetchError('apt-get source qemu downloaded no .dsc file');
    run('dpkg-source', ['-x', dsc, 'tree'], work);
    const tree = path.join(work, 'tree');
    const version = treeVersion(tree);
    return copyQapiJson(tree, version, { source: 'debian', package: dsc.replace(/\.dsc$/, '') });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * A newer QEMU's QAPI source for the parser's forward-compatibility tests, from another Debian
 * release's source package (e.g. `trixie`: QEMU 10.0). apt runs with private lists and cache
 * under `.cache/` (`@qmpkit/debian`'s `AptRepo`: no root, the system's sources untouched);
 * only `qapi/*.json`, `qga/*.json` and `VERSION` are taken from the upstream tarball.
 */
async function fromDebianRelease(release: string): Promise<string> {
  if (!/^[a-z]+$/.test(release)) throw new FetchError(`not a Debian release name: ${release}`);
  if (!existsSync('/usr/bin/apt-get'))
    throw new FetchError('apt-get not found: use --qemu-tree DIR with a QEMU source tree');
  const apt = new AptRepo({
    dir: path.join(cacheRoot, `apt-${release}`),
    suites: [release],
    type: 'deb-src',
  });
  await apt.update();
  mkdirSync(cacheRoot, { recursive: true });
  const work = mkdtempSync(path.join(cacheRoot, 'download-'));
  try {
    const files = await apt.downloadSource('qemu', work);
    const orig = files.find((f) => /\.orig\.tar\.(xz|gz|bz2)$/.test(f));
    const dsc = files.find((f) => f.endsWith('.dsc'));
    if (!orig || !dsc)
      throw new FetchError(`apt-get source qemu (${release}) gave no .orig tarball`);
    run('tar', ['-xf', orig, '--wildcards', '*/VERSION', '*/qapi/*.json', '*/qga/*.json'], work);
    const root = readdirSync(work).find(
      (f) => existsSync(path.join(work, f, 'VERSION')) && existsSync(path.join(work, f, 'qapi')),
    );
    if (!root) throw new FetchError(`${orig} holds no top-level VERSION and qapi/`);
    const tree = path.join(work, root);
    return copyQapiJson(tree, treeVersion(tree), {
      source: `debian-${release}`,
      package: dsc.replace(/\.dsc$/, ''),
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export async function fetchQapiSource(options: {
  qemuTree?: string;
  version?: string;
  release?: string;
}): Promise<{
  dir: string;
  cached: boolean;
}> {
  if (options.release) {
    const entries = existsSync(cacheRoot) ? readdirSync(cacheRoot, { withFileTypes: true }) : [];
    const known = entries.find((d) => {
      if (!d.isDirectory() || !d.name.startsWith('qemu-')) return false;
      const file = path.join(cacheRoot, d.name, 'provenance.json');
      // A cache made before qga/ was taken along is incomplete: fetch again.
      return (
        existsSync(file) &&
        existsSync(path.join(cacheRoot, d.name, 'qga')) &&
        readFileSync(file, 'utf8').includes(`"debian-${options.release}"`)
      );
    });
    if (known) return { dir: path.join(cacheRoot, known.name), cached: true };
    return { dir: await fromDebianRelease(options.release), cached: false };
  }
  const wanted = options.version ?? '7.2';
  const cached = path.join(cacheRoot, `qemu-${wanted}`);
  if (!options.qemuTree && existsSync(path.join(cached, 'provenance.json')))
    return { dir: cached, cached: true };
  if (options.qemuTree) {
    const tree = path.resolve(options.qemuTree);
    const version = treeVersion(tree);
    if (options.version && version !== options.version) {
      throw new FetchError(`${tree} is QEMU ${version}, not ${options.version}`);
    }
    let commit = 'unknown';
    try {
      commit = execFileSync('git', ['-C', tree, 'rev-parse', 'HEAD'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
    } catch {
      // not a git checkout
    }
    return { dir: copyQapiJson(tree, version, { source: 'tree', commit }), cached: false };
  }
  return { dir: fromDebian(), cached: false };
}

if (process.argv[1]?.endsWith('fetch-source.ts')) {
  const { values } = parseArgs({
    options: {
      'qemu-tree': { type: 'string' },
      version: { type: 'string' },
      release: { type: 'string' },
    },
  });
  try {
    const { dir, cached } = await fetchQapiSource({
      ...(values['qemu-tree'] ? { qemuTree: values['qemu-tree'] } : {}),
      ...(values.version ? { version: values.version } : {}),
      ...(values.release ? { release: values.release } : {}),
    });
    const count = readdirSync(path.join(dir, 'qapi')).length;
    console.log(
      `${cached ? 'cached' : 'fetched'}: ${count} QAPI files in ${path.relative(process.cwd(), dir)}/qapi`,
    );
  } catch (error) {
    console.error(`schemas:source: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}
