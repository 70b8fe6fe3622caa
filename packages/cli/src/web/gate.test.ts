import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import { isListenAddressError } from './errors.js';
import { isLoopback, parseListen, tokenMatches } from './gate.js';

describe('--listen', () => {
  it('accepts loopback addresses only', () => {
    expect(parseListen(undefined)).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseListen('127.0.0.1:8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseListen('127.3.2.1:1')).toEqual({ host: '127.3.2.1', port: 1 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseListen('localhost:9')).toEqual({ host: '127.0.0.1', port: 9 });
    expect(parseListen('4000')).toEqual({ host: '127.0.0.1', port: 4000 });
    for (const bad of ['0.0.0.0:80', '192.168.1.2:80', '[::]:80', 'example.com:80']) {
      const error = (() => {
        try {
          parseListen(bad);
        } catch (e) {
          return e;
        }
      })();
      expect(isListenAddressError(error), bad).toBe(true);
      expect(error).toMatchObject({ reason: 'not-loopback', address: bad, exitCode: 2 });
    }
    for (const bad of ['127.0.0.1:', '127.0.0.1:70000', ':80', 'a:b']) {
      expect(() => parseListen(bad), bad).toThrow(expect.objectContaining({ reason: 'syntax' }));
    }
  });

  it('isLoopback: 127/8 and ::1 (also IPv4-mapped), nothing else', () => {
    expect(
      ['127.0.0.1', '127.255.0.1', '::1', '[::1]', '::ffff:127.0.0.1'].map(isLoopback),
    ).toEqual([true, true, true, true, true]);
    expect(['10.0.0.1', '::', '::ffff:10.0.0.1', 'localhost', ''].map(isLoopback)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
  });

  it('qmpkit bridge and serve refuse a non-loopback address with exit 2, before anything else', async () => {
    const io = recordingIo();
    const code = await main(['bridge', '--qmp', 'unix:/nonexistent', '--listen', '0.0.0.0:0'], io);
    expect(code).toBe(2);
    expect(io.err()).toMatch(/^qmpkit: --listen '0\.0\.0\.0:0': only loopback addresses/);
    expect(io.out()).toBe('');
  });
});

it('tokenMatches compares exactly', () => {
  expect(tokenMatches('abc', 'abc')).toBe(true);
  expect(tokenMatches('abc', 'abd')).toBe(false);
  expect(tokenMatches('abc', 'ab')).toBe(false);
  expect(tokenMatches('abc', '')).toBe(false);
});
