import { describe, expect, it } from 'vitest';
import { isLiveMigrationError } from './errors.js';
import {
  addressUri,
  parseMigrationAddress,
  parseReceiverAddress,
  postcopyVerdict,
  receiverAddressText,
} from './migration-transport.js';

describe('parseMigrationAddress', () => {
  it('reads unix and tcp addresses (IPv6 in brackets) and writes them back', () => {
    expect(parseMigrationAddress('unix:/run/x.sock')).toEqual({
      type: 'unix',
      path: '/run/x.sock',
    });
    expect(parseMigrationAddress('tcp:127.0.0.1:4444')).toEqual({
      type: 'tcp',
      host: '127.0.0.1',
      port: 4444,
    });
    const v6 = parseMigrationAddress('tcp:[::1]:0');
    expect(v6).toEqual({ type: 'tcp', host: '::1', port: 0 });
    expect(addressUri(v6)).toBe('tcp:[::1]:0');
  });

  it('refuses everything else with a typed error', () => {
    for (const bad of ['exec:cat', 'fd:3', 'file:/x', '/x.sock', 'unix:', 'tcp:h', 'tcp:h:65536']) {
      const error = (() => {
        try {
          parseMigrationAddress(bad);
        } catch (e) {
          return e;
        }
      })();
      expect(isLiveMigrationError(error) && error.reason).toBe('bad-address');
    }
  });
});

describe('postcopyVerdict', () => {
  const linux = { platform: 'linux', uid: 1000, sysctl: '0', device: false };
  it('root, the sysctl or /dev/userfaultfd make it available', () => {
    expect(postcopyVerdict({ ...linux, uid: 0 }).available).toBe(true);
    expect(postcopyVerdict({ ...linux, sysctl: '1' }).available).toBe(true);
    expect(postcopyVerdict({ ...linux, device: true }).available).toBe(true);
  });
  it('says why when it is not', () => {
    expect(postcopyVerdict(linux)).toEqual({
      available: false,
      reason: expect.stringMatching(
        /reserved for privileged processes.*vm\.unprivileged_userfaultfd=0.*set vm\.unprivileged_userfaultfd=1/,
      ),
    });
    expect(postcopyVerdict({ ...linux, uid: 0, sysctl: undefined }).reason).toMatch(
      /the kernel has no userfaultfd/,
    );
    expect(postcopyVerdict({ ...linux, platform: 'darwin' }).reason).toMatch(/Linux-only/);
  });
});

describe('parseReceiverAddress (the one token a receiver prints)', () => {
  it('splits the NBD port off a TCP address and writes it back the same', () => {
    const a = parseReceiverAddress('tcp:127.0.0.1:4444,nbd=4445');
    expect(a).toEqual({ migration: { type: 'tcp', host: '127.0.0.1', port: 4444 }, nbdPort: 4445 });
    expect(receiverAddressText(a)).toBe('tcp:127.0.0.1:4444,nbd=4445');
    expect(parseReceiverAddress('tcp:[::1]:4444,nbd=9').migration).toEqual({
      type: 'tcp',
      host: '::1',
      port: 4444,
    });
    expect(parseReceiverAddress('unix:/run/m.sock')).toEqual({
      migration: { type: 'unix', path: '/run/m.sock' },
    });
  });

  it('refuses a bad NBD port or a bad address in front of it', () => {
    for (const text of [
      'tcp:127.0.0.1:4444,nbd=0',
      'tcp:127.0.0.1:4444,nbd=70000',
      'tcp:h,nbd=1',
    ]) {
      const error = (() => {
        try {
          parseReceiverAddress(text);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(isLiveMigrationError(error) && error.reason).toBe('bad-address');
    }
  });
});
