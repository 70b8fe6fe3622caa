import { describe, expect, it } from 'vitest';
import { formatAddress, parseAddress } from './address.js';

describe('parseAddress', () => {
  it.each([
    ['unix:/run/qmp.sock', { kind: 'unix', path: '/run/qmp.sock' }],
    ['unix:rel/qmp.sock', { kind: 'unix', path: 'rel/qmp.sock' }],
    ['/run/qmp.sock', { kind: 'unix', path: '/run/qmp.sock' }],
    ['tcp:127.0.0.1:4444', { kind: 'tcp', host: '127.0.0.1', port: 4444 }],
    ['tcp:localhost:1', { kind: 'tcp', host: 'localhost', port: 1 }],
    ['tcp:[::1]:4444', { kind: 'tcp', host: '::1', port: 4444 }],
    ['ws://127.0.0.1:8080/qmp', { kind: 'ws', url: 'ws://127.0.0.1:8080/qmp' }],
    ['wss://vm.example/qmp?vm=1', { kind: 'ws', url: 'wss://vm.example/qmp?vm=1' }],
  ])('%s', (text, expected) => {
    const parsed = parseAddress(text);
    expect(parsed).toEqual(expected);
    if (!text.startsWith('/')) expect(formatAddress(parsed)).toBe(text);
  });

  it.each([
    'unix:',
    'tcp:4444',
    'tcp:host:',
    'tcp:host:0',
    'tcp:host:70000',
    'tcp::1:4444',
    'tcp:[::1]4444',
    'tcp::4444',
    'http://x',
    'ws://',
    'qmp.sock',
  ])('rejects %s', (text) => {
    expect(() => parseAddress(text)).toThrow(TypeError);
  });
});
