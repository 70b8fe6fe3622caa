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
