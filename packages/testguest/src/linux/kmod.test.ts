import { describe, expect, it } from 'vitest';
import { isLinuxGuestBuildError } from '../errors.js';
import { moduleDepends, moduleKey, moduleLoadOrder } from './kmod.js';

/** A fake .ko: some bytes, then modinfo strings as the kernel's build writes them. */
const ko = (modinfo: string) =>
  new TextEncoder().encode(`\x7fELF junk\0license=GPL\0${modinfo}\0vermagic=6.1\0`);

describe('moduleDepends', () => {
  it('reads depends= and normalises - to _', () => {
    expect(moduleDepends(ko('depends=mbcache,jbd2,crc16'))).toEqual(['mbcache', 'jbd2', 'crc16']);
    expect(moduleDepends(ko('depends=virtio-ring'))).toEqual(['virtio_ring']);
    expect(moduleDepends(ko('depends='))).toEqual([]);
    expect(moduleDepends(ko('name=x'))).toEqual([]);
  });
  it('moduleKey', () => expect(moduleKey('crc32c-generic')).toBe('crc32c_generic'));
});

describe('moduleLoadOrder', () => {
  const modules: Record<string, string> = {
    ext4: 'depends=mbcache,jbd2,crc16',
    jbd2: 'depends=',
    mbcache: 'depends=',
    crc16: 'depends=',
    virtio_blk: 'depends=virtio,virtio_ring',
    virtio: 'depends=virtio_ring',
    virtio_ring: 'depends=',
  };
  const read = (key: string) => (modules[key] === undefined ? undefined : ko(modules[key]));

  it('puts dependencies first, each module once', () => {
    expect(moduleLoadOrder(['ext4', 'virtio-blk', 'jbd2'], read)).toEqual([
      'mbcache',
      'jbd2',
      'crc16',
      'ext4',
      'virtio_ring',
      'virtio',
      'virtio_blk',
    ]);
  });

  it('names a missing module and who needs it', () => {
    const broken = (key: string) => (key === 'ext4' ? ko('depends=nope') : undefined);
    try {
      moduleLoadOrder(['ext4'], broken);
      expect.unreachable();
    } catch (error) {
      expect(isLinuxGuestBuildError(error) && error.step).toBe('modules');
      expect((error as Error).message).toContain('kernel module nope (needed by ext4)');
    }
  });

  it('refuses a dependency cycle', () => {
    const cyclic = (key: string) => ko(key === 'a' ? 'depends=b' : 'depends=a');
    expect(() => moduleLoadOrder(['a'], cyclic)).toThrow(/cycle through a/);
  });
});
