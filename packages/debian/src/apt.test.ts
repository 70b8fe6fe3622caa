import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AptRepo } from './apt.js';
import { isDebianOptionsError } from './errors.js';
import { cachedDir } from './unpack.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'qmpkit-debian-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('AptRepo options', () => {
  it('points every apt path into its own directory and prefers the release asked for', () => {
    const repo = new AptRepo({ dir: '/cache/apt', suites: ['bookworm', 'bookworm-backports'] });
    const options = repo.aptOptions('bookworm-backports');
    const settings = options.filter((_, i) => options[i - 1] === '-o');
    expect(settings).toEqual(
      expect.arrayContaining([
        'Dir::Etc::SourceList=/cache/apt/sources.list',
        'Dir::Etc::SourceParts=-',
        'Dir::State::Lists=/cache/apt/lists',
        'Dir::State::status=/cache/apt/status',
        'Dir::Cache=/cache/apt/cache',
        'APT::Default-Release=bookworm-backports',
      ]),
    );
    // every value is its own argument after its own -o: nothing for a shell to split
    expect(options.length).toBe(settings.length * 2);
  });

  it('refuses what cannot work, with the option named', () => {
    const bad = [
      () => new AptRepo({ dir: 'relative', suites: ['bookworm'] }),
      () => new AptRepo({ dir: '/x', suites: [] }),
      () => new AptRepo({ dir: '/x', suites: ['bookworm main'] }),
      () => new AptRepo({ dir: '/x', suites: ['bookworm'], mirror: 'ftp://x y' }),
      () => new AptRepo({ dir: '/x', suites: ['bookworm'] }).aptOptions('trixie'),
    ];
    const options = bad.map((make) => {
      try {
        make();
        return 'accepted';
      } catch (error) {
        return isDebianOptionsError(error) ? error.option : String(error);
      }
    });
    expect(options).toEqual(['dir', 'suites', 'suites', 'mirror', 'release']);
  });

  it('rejects a package name that could be read as an option before running apt', async () => {
    const repo = new AptRepo({ dir: path.join(tmp, 'apt'), suites: ['bookworm'] });
    await expect(repo.resolve(['-o=Dir::Etc=/'])).rejects.toMatchObject({
      name: 'DebianOptionsError',
      option: 'package',
    });
  });
});

describe('cachedDir', () => {
  it('builds once into a staging dir, then reuses the complete entry', async () => {
    const target = path.join(tmp, 'entry');
    let builds = 0;
    const first = await cachedDir(target, async () => {
      builds++;
    });
    const second = await cachedDir(target, async () => {
      builds++;
    });
    expect([first.cached, second.cached, builds]).toEqual([false, true, 1]);
  });

  it('leaves nothing behind when the build fails', async () => {
    const target = path.join(tmp, 'failed');
    await expect(
      cachedDir(target, async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const { existsSync } = await import('node:fs');
    expect([
      existsSync(target),
      existsSync(`${target}.partial`),
      existsSync(`${target}.lock`),
    ]).toEqual([false, false, false]);
  });
});

describe('withDirLock', () => {
  it('takes over a lock whose owner is gone, and runs callers one at a time', async () => {
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const { withDirLock } = await import('./lock.js');
    const lock = path.join(tmp, 'stale.lock');
    mkdirSync(lock);
    writeFileSync(path.join(lock, 'pid'), '2147483646'); // no such process
    const order: string[] = [];
    const critical = (name: string) =>
      withDirLock(lock, async () => {
        order.push(`${name}-start`);
        await new Promise((r) => setTimeout(r, 50));
        order.push(`${name}-end`);
      });
    await Promise.all([critical('a'), critical('b')]);
    // whichever ran first, the other started only after it ended
    expect([order[0]?.[0], order[1]?.[0], order[2]?.[0], order[3]?.[0]]).toEqual(
      order[0] === 'a-start' ? ['a', 'a', 'b', 'b'] : ['b', 'b', 'a', 'a'],
    );
    expect(order.map((o) => o.slice(2))).toEqual(['start', 'end', 'start', 'end']);
  });

  it('eight callers on one stale lock: one at a time, none loses its fresh lock to a taker', async () => {
    // All eight see the dead owner at once; before the takeover guard a late taker removed the
    // winner's new lock (ENOENT on its pid file, or two callers inside at once).
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const { withDirLock } = await import('./lock.js');
    const lock = path.join(tmp, 'stale8.lock');
    mkdirSync(lock);
    writeFileSync(path.join(lock, 'pid'), '2147483646'); // no such process
    let inside = 0;
    let most = 0;
    const runs = Array.from({ length: 8 }, () =>
      withDirLock(lock, async () => {
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 5));
        inside--;
      }),
    );
    await Promise.all(runs);
    expect(most).toBe(1);
  });
});
