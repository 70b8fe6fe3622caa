import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { historyFile, loadHistory, saveHistory, stateDir } from './history.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

it('lives under $XDG_STATE_HOME/qmpkit, else ~/.local/state/qmpkit, one file per mode', () => {
  expect(stateDir({ XDG_STATE_HOME: '/x/state', HOME: '/home/u' })).toBe('/x/state/qmpkit');
  expect(stateDir({ XDG_STATE_HOME: 'relative', HOME: '/home/u' })).toBe(
    '/home/u/.local/state/qmpkit',
  );
  expect(historyFile({ HOME: '/home/u' }, 'hmp')).toBe('/home/u/.local/state/qmpkit/hmp-history');
});

it('is bounded, oldest line first on disk, newest first in memory, private (0600 in 0700)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-history-'));
  dirs.push(dir);
  const file = path.join(dir, 'state', 'qmpkit', 'history');
  saveHistory(file, ['c', 'b', 'a'], 2);
  expect(readFileSync(file, 'utf8')).toBe('b\nc\n');
  expect(loadHistory(file, 10)).toEqual(['c', 'b']);
  expect(loadHistory(file, 1)).toEqual(['c']);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
  expect(loadHistory(path.join(dir, 'missing'))).toEqual([]);
  saveHistory(file, ['query-status ', 'cont', 'query-status'], 10);
  expect(loadHistory(file)).toEqual(['query-status', 'cont']);
});
