import { MiB, type VmConfig } from '@qmpkit/devices';
import { describe, expect, it } from 'vitest';
import { privateRamConfig, sharedRamBackend } from './shared-ram.js';

const base: VmConfig = { machine: { type: 'pc-i440fx-7.2' }, memory: { size: 16 * MiB } };
const withBackend = (object: Record<string, unknown>): VmConfig => ({
  ...base,
  machine: { ...base.machine, 'memory-backend': 'm0' },
  objects: [{ id: 'm0', size: 16 * MiB, ...object } as NonNullable<VmConfig['objects']>[number]],
});

describe('sharedRamBackend: why a sharedRam save falls back to the stream', () => {
  it('names each reason', () => {
    expect(sharedRamBackend(base)).toMatchObject({ reason: 'no-memory-backend' });
    expect(sharedRamBackend(withBackend({ 'qom-type': 'memory-backend-ram' }))).toMatchObject({
      reason: 'not-file-backed',
    });
    expect(
      sharedRamBackend(withBackend({ 'qom-type': 'memory-backend-file', 'mem-path': '/r' })),
    ).toMatchObject({ reason: 'not-shared' });
    expect(
      sharedRamBackend(
        withBackend({ 'qom-type': 'memory-backend-file', 'mem-path': '/r', share: true }),
      ),
    ).toEqual({ id: 'm0', memPath: '/r' });
  });

  it('privateRamConfig maps the record file with share off and leaves other objects alone', () => {
    const config: VmConfig = {
      ...withBackend({ 'qom-type': 'memory-backend-file', 'mem-path': '/live', share: true }),
    };
    const out = privateRamConfig(
      { ...config, objects: [...(config.objects ?? []), { 'qom-type': 'iothread', id: 'io0' }] },
      { path: '/store/x.ram', bytes: 1, sha256: '', backend: 'm0' },
    );
    expect(out.objects).toEqual([
      {
        'qom-type': 'memory-backend-file',
        id: 'm0',
        size: 16 * MiB,
        'mem-path': '/store/x.ram',
        share: false,
      },
      { 'qom-type': 'iothread', id: 'io0' },
    ]);
  });
});
