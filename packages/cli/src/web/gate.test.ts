import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { listenAddress } from '../commands/bridge.js';
import { main } from '../main.js';
import { isListenAddressError } from './errors.js';
import {
  checkListen,
  isLoopback,
  listen,
  parseListen,
  remoteWarning,
  tokenMatches,
} from './gate.js';

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
    expect(io.err()).toMatch(
      /^qmpkit: --listen '0\.0\.0\.0:0': 0\.0\.0\.0 is not a loopback address/,
    );
    expect(io.out()).toBe('');
  });

  it('a non-loopback address is refused without --allow-remote: the error names the address and the flag', () => {
    for (const bad of ['0.0.0.0:8080', '192.168.1.2:80', '[::]:80', 'example.com:80']) {
      let error: unknown;
      try {
        parseListen(bad);
      } catch (e) {
        error = e;
      }
      expect(isListenAddressError(error), bad).toBe(true);
      expect((error as Error).message, bad).toContain(`'${bad}'`);
      expect((error as Error).message, bad).toContain('--allow-remote');
    }
  });

  it('--allow-remote: the non-loopback address is accepted, marked, and warned about', () => {
    expect(parseListen('0.0.0.0:8080', { allowRemote: true })).toEqual({
      host: '0.0.0.0',
      port: 8080,
      allowRemote: true,
    });
    expect(parseListen('[::]:0', { allowRemote: true })).toEqual({
      host: '::',
      port: 0,
      allowRemote: true,
    });
    expect(parseListen('example.com:80', { allowRemote: true })).toMatchObject({
      host: 'example.com',
    });
    // Loopback stays loopback (and unwarned) with the flag.
    const local = parseListen('127.0.0.1:0', { allowRemote: true });
    expect(remoteWarning(local)).toBeUndefined();
    const warning = remoteWarning(parseListen('0.0.0.0:8080', { allowRemote: true }));
    expect(warning).toMatch(
      /^WARNING: --allow-remote: listening on 0\.0\.0\.0, which is not loopback/,
    );
    expect(warning).toMatch(/controls this VM/);
    expect(warning).toMatch(/clear text/);
    // What the commands do with the flags: the warning goes to the log, line by line.
    const lines: string[] = [];
    expect(listenAddress({ listen: '0.0.0.0:0', allowRemote: true }, (l) => lines.push(l))).toEqual(
      { host: '0.0.0.0', port: 0, allowRemote: true },
    );
    expect(lines).toHaveLength(3);
    expect(lines.every((l) => l.startsWith('WARNING: '))).toBe(true);
    const quiet: string[] = [];
    listenAddress({ listen: '127.0.0.1:0', allowRemote: true }, (l) => quiet.push(l));
    expect(quiet).toEqual([]);
    // A syntax error is still one.
    expect(() => parseListen('0.0.0.0:', { allowRemote: true })).toThrow(
      expect.objectContaining({ reason: 'syntax' }),
    );
  });

  it('listen() itself refuses a non-loopback address built without allowRemote (no socket is opened)', async () => {
    expect(() => checkListen({ host: '10.1.2.3', port: 0 })).toThrow(
      expect.objectContaining({ name: 'ListenAddressError', reason: 'not-loopback' }),
    );
    expect(checkListen({ host: '10.1.2.3', port: 0, allowRemote: true })).toEqual({
      host: '10.1.2.3',
      port: 0,
      allowRemote: true,
    });
    const server = http.createServer();
    await expect(listen(server, { host: '0.0.0.0', port: 0 })).rejects.toMatchObject({
      name: 'ListenAddressError',
      address: '0.0.0.0:0',
    });
    expect(server.listening).toBe(false);
  });

  it('qmpkit serve refuses a non-loopback address with exit 2 and names --allow-remote', async () => {
    const io = recordingIo();
    const code = await main(['serve', '--dir', '/nonexistent', '--listen', '10.0.0.1:80'], io);
    expect(code).toBe(2);
    expect(io.err()).toMatch(/^qmpkit: --listen '10\.0\.0\.1:80': .*pass --allow-remote/);
    expect(io.out()).toBe('');
  });
});

it('tokenMatches compares exactly', () => {
  expect(tokenMatches('abc', 'abc')).toBe(true);
  expect(tokenMatches('abc', 'abd')).toBe(false);
  expect(tokenMatches('abc', 'ab')).toBe(false);
  expect(tokenMatches('abc', '')).toBe(false);
});
