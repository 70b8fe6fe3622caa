/**
 * apt with private state: its own sources.list, package lists and caches under one directory
 * that the caller owns (e.g. `<repo>/.cache/debian/apt`). Nothing under /etc or /var is read
 * for sources or written; nothing is installed. Every tool runs with an argument array.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  type ControlRecord,
  downloadFileName,
  parseControl,
  parseDepends,
  parsePolicy,
} from './control.js';
import { DebianChecksumError, DebianOptionsError, DebianPackageNotFoundError } from './errors.js';
import { withDirLock } from './lock.js';
import { runTool } from './run.js';

export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';
export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

export interface AptRepoOptions {
  /** Absolute directory for apt's private state (created if missing). */
  readonly dir: string;
  /** Suites to index, e.g. `['bookworm', 'bookworm-backports']`. */
  readonly suites: readonly string[];
  /** Default `http://deb.debian.org/debian`. */
  readonly mirror?: string;
  /** Default `['main']`. */
  readonly components?: readonly string[];
  /** Default `'amd64'`. */
  readonly architecture?: string;
  /** `deb` (binary packages, default) or `deb-src` (source packages). */
  readonly type?: 'deb' | 'deb-src';
  /** Keyring that signs the mirror's Release files. Default Debian's archive keyring. */
  readonly keyring?: string;
}

/** One binary package version as the index describes it. */
export interface DebPackage {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  /** `pool/…` path on the mirror. */
  readonly filename: string;
  readonly size: number;
  readonly sha256: string;
  /** `Depends` plus `Pre-Depends`, as groups of alternatives. */
  readonly depends: readonly (readonly string[])[];
  /** The raw record, for fields not lifted above. */
  readonly record: ControlRecord;
}

/** A `.deb` file on disk. */
export interface DownloadedDeb {
  readonly package: DebPackage;
  readonly file: string;
  /** `false` when the file was already there with the right checksum. */
  readonly downloaded: boolean;
}

const NAME = /^[a-z0-9][a-z0-9+.-]*$/;
const SUITE = /^[a-z0-9][a-z0-9-]*$/;

/** apt with private lists under `options.dir`. */
export class AptRepo {
  readonly dir: string;
  readonly suites: readonly string[];
  readonly mirror: string;
  readonly architecture: string;
  private readonly sourcesText: string;

  constructor(options: AptRepoOptions) {
    if (!path.isAbsolute(options.dir))
      throw new DebianOptionsError('dir', options.dir, 'must be an absolute path');
    if (options.suites.length === 0)
      throw new DebianOptionsError('suites', options.suites, 'name at least one suite');
    for (const suite of options.suites)
      if (!SUITE.test(suite)) throw new DebianOptionsError('suites', suite, 'not a suite name');
    const mirror = options.mirror ?? DEFAULT_MIRROR;
    if (!/^https?:\/\/[^\s\]]+$/.test(mirror))
      throw new DebianOptionsError('mirror', mirror, 'must be an http(s) URL without spaces');
    const components = options.components ?? ['main'];
    for (const c of components)
      if (!SUITE.test(c)) throw new DebianOptionsError('components', c, 'not a component name');
    this.dir = options.dir;
    this.suites = options.suites;
    this.mirror = mirror;
    this.architecture = options.architecture ?? 'amd64';
    const keyring = options.keyring ?? DEBIAN_KEYRING;
    const type = options.type ?? 'deb';
    this.sourcesText = options.suites
      .map(
        (suite) =>
          `${type} [arch=${this.architecture} signed-by=${keyring}] ${mirror} ${suite} ${components.join(' ')}\n`,
      )
      .join('');
  }

  private get sourcesFile(): string {
    return path.join(this.dir, 'sources.list');
  }

  /** The `-o` options that point apt at this private state (and prefer `release`, if given). */
  aptOptions(release?: string): string[] {
    if (release !== undefined && !this.suites.includes(release))
      throw new DebianOptionsError('release', release, `not one of ${this.suites.join(', ')}`);
    const o = (setting: string) => ['-o', setting];
    return [
      ...o(`Dir::Etc::SourceList=${this.sourcesFile}`),
      ...o('Dir::Etc::SourceParts=-'),
      ...o('Dir::Etc::Preferences=-'),
      ...o('Dir::Etc::PreferencesParts=-'),
      ...o(`Dir::State::Lists=${path.join(this.dir, 'lists')}`),
      ...o(`Dir::State::status=${path.join(this.dir, 'status')}`),
      ...o(`Dir::Cache=${path.join(this.dir, 'cache')}`),
      ...o(`APT::Architecture=${this.architecture}`),
      ...o(`APT::Architectures=${this.architecture}`),
      ...o('Debug::NoLocking=true'),
      // As root apt drops to `_apt` for downloads, which cannot write a root-owned cache.
      ...(process.getuid?.() === 0 ? o('APT::Sandbox::User=root') : []),
      ...(release ? o(`APT::Default-Release=${release}`) : []),
    ];
  }

  /** Whether package lists for the current sources exist. */
  async hasLists(): Promise<boolean> {
    try {
      const stamp = await readFile(path.join(this.dir, 'updated-for'), 'utf8');
      return stamp === this.sourcesText;
    } catch {
      return false; // never updated (or updated for other sources)
    }
  }

  /** Runs `apt-get update` against the private lists (always; callers decide when). */
  async update(): Promise<void> {
    await this.locked(async () => {
      for (const sub of ['lists/partial', 'cache/archives/partial'])
        await mkdir(path.join(this.dir, sub), { recursive: true });
      await writeFile(this.sourcesFile, this.sourcesText);
      await writeFile(path.join(this.dir, 'status'), '', { flag: 'a' }); // empty: nothing installed
      await rm(path.join(this.dir, 'updated-for'), { force: true });
      await runTool('apt-get', [...this.aptOptions(), 'update', '-qq']);
      await writeFile(path.join(this.dir, 'updated-for'), this.sourcesText);
    });
  }

  /** Updates only when the lists for these sources are missing. */
  async ensureLists(): Promise<void> {
    if (!(await this.hasLists())) await this.update();
  }

  /**
   * The candidate version of each name, preferring `release` when given (apt's
   * `Default-Release`; other suites still answer for names `release` lacks).
   */
  async resolve(
    names: readonly string[],
    options: { release?: string } = {},
  ): Promise<DebPackage[]> {
    if (names.length === 0) return [];
    for (const name of names)
      if (!NAME.test(name)) throw new DebianOptionsError('package', name, 'not a package name');
    await this.ensureLists();
    const opts = this.aptOptions(options.release);
    const policy = parsePolicy((await runTool('apt-cache', [...opts, 'policy', ...names])).stdout);
    const missing = names.filter((n) => policy.get(n) === undefined);
    if (missing.length > 0)
      throw new DebianPackageNotFoundError(missing, this.suites, options.release);
    const specs = names.map((n) => `${n}=${policy.get(n)}`);
    const records = parseControl((await runTool('apt-cache', [...opts, 'show', ...specs])).stdout);
    return names.map((name) => {
      const version = policy.get(name);
      const record = records.find((r) => r.Package === name && r.Version === version);
      if (!record) throw new DebianPackageNotFoundError([name], this.suites, options.release);
      return toPackage(record);
    });
  }

  /**
   * `names` and, recursively, their dependencies for which `follow(name)` is true (first
   * alternative of each group; names with no candidate, such as virtual packages, are
   * skipped). Returned in discovery order.
   */
  async closure(
    names: readonly string[],
    options: { release?: string; follow: (name: string) => boolean },
  ): Promise<DebPackage[]> {
    const seen = new Map<string, DebPackage>();
    let frontier = [...new Set(names)];
    let first = true;
    while (frontier.length > 0) {
      let found: DebPackage[];
      if (first) found = await this.resolve(frontier, options);
      else {
        found = [];
        // Dependencies may be virtual or absent: resolve them one by one only when a batch fails.
        try {
          found = await this.resolve(frontier, options);
        } catch {
          for (const name of frontier) {
            try {
              found.push(...(await this.resolve([name], options)));
            } catch {
              // no candidate (virtual package): its providers are not followed
            }
          }
        }
      }
      first = false;
      for (const p of found) seen.set(p.name, p);
      frontier = [
        ...new Set(
          found.flatMap((p) =>
            p.depends
              .map((group) => group[0])
              .filter((d): d is string => d !== undefined && !seen.has(d) && options.follow(d)),
          ),
        ),
      ];
    }
    return [...seen.values()];
  }

  /**
   * Downloads `packages` into `into` with `apt-get download` (one process; files already
   * present with the index's sha256 are kept), then checks every checksum.
   */
  async download(packages: readonly DebPackage[], into: string): Promise<DownloadedDeb[]> {
    await mkdir(into, { recursive: true });
    const wanted = packages.map((p) => ({
      package: p,
      file: path.join(into, downloadFileName(p.name, p.version, p.architecture)),
    }));
    const present = new Set<string>();
    for (const w of wanted)
      if (existsSync(w.file) && (await sha256File(w.file)) === w.package.sha256)
        present.add(w.file);
    const missing = wanted.filter((w) => !present.has(w.file));
    if (missing.length > 0) {
      await this.ensureLists();
      await runTool(
        'apt-get',
        [
          ...this.aptOptions(),
          'download',
          '-qq',
          ...missing.map((w) => `${w.package.name}=${w.package.version}`),
        ],
        { cwd: into },
      );
      for (const w of missing) {
        const actual = await sha256File(w.file);
        if (actual !== w.package.sha256)
          throw new DebianChecksumError(w.file, w.package.sha256, actual);
      }
    }
    return wanted.map((w) => ({ ...w, downloaded: !present.has(w.file) }));
  }

  /**
   * `apt-get source --download-only name` into `into` (needs `type: 'deb-src'`); returns the
   * file names fetched (`.dsc`, tarballs).
   */
  async downloadSource(name: string, into: string): Promise<string[]> {
    if (!NAME.test(name)) throw new DebianOptionsError('package', name, 'not a package name');
    await this.ensureLists();
    await mkdir(into, { recursive: true });
    const before = new Set(await readdir(into));
    await runTool('apt-get', [...this.aptOptions(), 'source', '--download-only', '-qq', name], {
      cwd: into,
    });
    return (await readdir(into)).filter((f) => !before.has(f)).sort();
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    return withDirLock(path.join(this.dir, '.lock'), fn);
  }
}

function toPackage(record: ControlRecord): DebPackage {
  const field = (key: string): string => {
    const value = record[key];
    if (value === undefined)
      throw new DebianOptionsError('record', record.Package, `the index has no ${key} field`);
    return value;
  };
  return {
    name: field('Package'),
    version: field('Version'),
    architecture: field('Architecture'),
    filename: field('Filename'),
    size: Number(field('Size')),
    sha256: field('SHA256'),
    depends: [...parseDepends(record['Pre-Depends']), ...parseDepends(record.Depends)],
    record,
  };
}

/** sha256 of a file, hex. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
