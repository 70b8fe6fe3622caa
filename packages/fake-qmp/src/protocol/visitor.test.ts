import { tables } from '@qmpkit/qapi';
import { describe, expect, it } from 'vitest';
import { integerMembers } from '../data/qemu-7.2.generated.js';
import { type QemuDict, QemuFloat } from '../json/values.js';
import { checkArguments } from './visitor.js';

const check = (command: string, args: Record<string, unknown>) =>
  checkArguments(tables, tables.commands[command]?.args, args as QemuDict, integerMembers);

describe("argument checks in QEMU's words", () => {
  it.each([
    ['blockdev-add', { driver: 'qcow2' }, "Parameter 'file' is missing"],
    [
      'blockdev-add',
      { driver: 'qcow2', 'node-name': 'q', file: { filename: '/x' } },
      "Parameter 'file.driver' is missing",
    ],
    [
      'migrate-set-capabilities',
      { capabilities: [{ state: true }] },
      "Parameter 'capabilities[0].capability' is missing",
    ],
    ['query-status', { x: 1 }, "Parameter 'x' is unexpected"],
    [
      'blockdev-add',
      { driver: 'qcow2', 'node-name': 'q', file: { driver: 'file', filename: '/x', bogus: 1 } },
      "Parameter 'file.bogus' is unexpected",
    ],
    [
      'blockdev-add',
      { driver: 'qcow2', 'node-name': 5, file: 'x' },
      "Invalid parameter type for 'node-name', expected: string",
    ],
    [
      'blockdev-add',
      { driver: 'qcow2', 'node-name': 'q', file: 5 },
      "Invalid parameter type for 'file', expected: BlockdevRef",
    ],
    [
      'snapshot-save',
      { 'job-id': 'j', tag: 't', vmstate: 'd', devices: [1] },
      "Invalid parameter type for 'devices[0]', expected: string",
    ],
    [
      'blockdev-add',
      { driver: 'qcow2', 'node-name': 'q', file: { driver: 'foo' } },
      "Parameter 'driver' does not accept value 'foo'",
    ],
    ['qmp_capabilities', { enable: ['bogus'] }, "Parameter 'null' does not accept value 'bogus'"],
    [
      'migrate-set-parameters',
      { 'compress-level': 300 },
      "Parameter 'compress-level' expects uint8_t",
    ],
    [
      'migrate-set-parameters',
      { 'max-bandwidth': 'x' },
      "Parameter 'max-bandwidth' expects uint64",
    ],
    [
      'migrate-set-parameters',
      { 'max-bandwidth': new QemuFloat(1) },
      "Parameter 'max-bandwidth' expects uint64",
    ],
  ])('%s %j', (command, args, message) => {
    expect(check(command, args)).toBe(message);
  });

  it('accepts valid arguments, negative values for unsigned parameters like QEMU', () => {
    expect(
      check('blockdev-add', { driver: 'null-co', 'node-name': 'n0', size: 4096 }),
    ).toBeUndefined();
    expect(check('migrate-set-parameters', { 'max-bandwidth': -1 })).toBeUndefined();
  });
});
