import { describe, expect, it } from 'vitest';
import { toArgv } from './argv.js';
import { withParts } from './hotplug.js';
import { MiB } from './model.js';
import { serialConsole } from './parts.js';

describe('serialConsole', () => {
  it('is a chardev plus the isa-serial port using it', () => {
    const parts = serialConsole({
      id: 'com1',
      backend: { type: 'file', data: { out: '/logs/com1.log' } },
      index: 0,
    });
    expect(parts).toEqual({
      chardevs: [{ id: 'com1-chr', backend: { type: 'file', data: { out: '/logs/com1.log' } } }],
      devices: [{ driver: 'isa-serial', id: 'com1', chardev: 'com1-chr', index: 0 }],
    });
    const config = withParts(
      { machine: { type: 'pc-i440fx-7.2' }, memory: { size: 64 * MiB } },
      parts,
    );
    expect(toArgv(config).slice(-4)).toEqual([
      '-chardev',
      'file,id=com1-chr,path=/logs/com1.log',
      '-device',
      '{"driver":"isa-serial","id":"com1","chardev":"com1-chr","index":0}',
    ]);
  });

  it('takes an explicit chardev id', () => {
    const parts = serialConsole({
      id: 'com1',
      chardev: 'ser0',
      backend: { type: 'null', data: {} },
    });
    expect(parts.devices).toEqual([{ driver: 'isa-serial', id: 'com1', chardev: 'ser0' }]);
  });
});
