import { expect, it } from 'vitest';
import { didYouMean, editDistance, suggest } from './suggest.js';

it('edit distance counts an adjacent swap as one edit', () => {
  expect(editDistance('query-status', 'query-staus')).toBe(1);
  expect(editDistance('qeury', 'query')).toBe(1);
  expect(editDistance('', 'abc')).toBe(3);
});

it('suggests close names, treating _ and - alike, and nothing for far-off words', () => {
  const names = [
    'query-status',
    'query-stats',
    'query-version',
    'device_add',
    'device_del',
    'blockdev-add',
  ];
  expect(suggest('qeury-status', names)[0]).toBe('query-status');
  expect(suggest('device-add', names)[0]).toBe('device_add');
  // Equally far from query-stats (one deletion) and query-status (one swap): same length wins.
  expect(suggest('query-stauts', names)).toEqual(['query-status', 'query-stats']);
  expect(suggest('xyzzy', names)).toEqual([]);
  expect(didYouMean('query-versoin', names)).toBe('did you mean query-version?');
  expect(didYouMean('zzz', names)).toBe('');
});

it('ranks names the word is a prefix of above edit-distance matches (issue #12: query-st)', () => {
  const names = ['query-status', 'query-stats', 'query-sev', 'query-pci', 'query-cpus-fast'];
  // `query-st` is one edit from `query-sev` but a prefix of query-status and query-stats.
  expect(suggest('query-st', names).slice(0, 2).sort()).toEqual(['query-stats', 'query-status']);
  expect(didYouMean('query-st', names)).toMatch(/query-stat/);
  expect(didYouMean('query-st', names)).not.toContain('query-sev');
});

it('never suggests the name that was typed', () => {
  const names = ['query-status', 'query-stats'];
  expect(suggest('query-stats', names)).toEqual(['query-status']);
  expect(suggest('query-status', names)).not.toContain('query-status');
});
