import { readFileSync } from 'node:fs';
import path from 'node:path';
import { tables } from '@qmpkit/qapi';
import { describe, expect, it } from 'vitest';
import { SchemaIndex } from './schema.js';

const captured = JSON.parse(
  readFileSync(
    path.join(import.meta.dirname, '../../../../schemas/qemu-7.2/query-qmp-schema.json'),
    'utf8',
  ),
) as unknown;
const index = SchemaIndex.from(captured);

describe('SchemaIndex on the captured QEMU 7.2 introspection', () => {
  it('knows every command and event of the generated 7.2 tables', () => {
    expect(Object.keys(tables.commands).filter((c) => !index.query(c))).toEqual([]);
    expect(Object.keys(tables.events).filter((e) => !index.query(e))).toEqual([]);
    expect(index.query('no-such-command')).toBe(false);
  });

  it('follows masked type names to members, enum values, branches and features', () => {
    expect(index.query('blockdev-add', { member: 'node-name' })).toBe(true);
    expect(index.query('blockdev-add', { member: 'filename' })).toBe(true); // in a branch
    expect(index.query('blockdev-add', { member: 'nope' })).toBe(false);
    expect(index.query('blockdev-add', { member: 'driver', value: 'qcow2' })).toBe(true);
    expect(index.query('blockdev-add', { member: 'driver', value: 'qcow3' })).toBe(false);
    expect(index.query('blockdev-add', { when: { driver: 'file' }, member: 'filename' })).toBe(
      true,
    );
    expect(index.query('blockdev-add', { when: { driver: 'qcow2' }, member: 'filename' })).toBe(
      false,
    );
    expect(index.query('blockdev-add', { when: { driver: 'nope' } })).toBe(false);
    expect(index.query('blockdev-add', { when: { 'node-name': 'x' } })).toBe(false);
    expect(index.query('block-commit', { member: 'top', feature: 'deprecated' })).toBe(true);
    expect(index.query('block-commit', { feature: 'deprecated' })).toBe(false);
    // A union branch's own features (libvirt: blockdev-add/arg-type/+file/$dynamic-auto-read-only).
    const branchFeature = (driver: string, feature: string) =>
      index.query('blockdev-add', { when: { driver }, feature });
    expect(branchFeature('file', 'dynamic-auto-read-only')).toBe(true);
    expect(branchFeature('qcow2', 'dynamic-auto-read-only')).toBe(false);
    expect(branchFeature('file', 'unstable')).toBe(false);
    expect(branchFeature('nope', 'dynamic-auto-read-only')).toBe(false);
    expect(index.query('blockdev-snapshot', { feature: 'allow-write-only-overlay' })).toBe(true);
    expect(index.query('migrate-set-capabilities', { member: 'capabilities' })).toBe(true);
    const capability = (value: string) =>
      index.query('migrate-set-capabilities', {
        member: 'capabilities',
        inner: { member: 'capability', value },
      });
    expect(capability('background-snapshot')).toBe(true);
    expect(capability('mapped-ram')).toBe(false); // QEMU >= 9.0
    expect(
      index.query('blockdev-create', {
        member: 'options',
        inner: { when: { driver: 'qcow2' }, member: 'data-file' },
      }),
    ).toBe(true);
    expect(
      index.query('blockdev-add', {
        when: { driver: 'qcow2' },
        member: 'file',
        inner: { when: { driver: 'file' }, member: 'filename' },
      }),
    ).toBe(true);
    expect(index.query('query-status', { member: 'x', inner: { member: 'y' } })).toBe(false);
    expect(index.query('query-status', { member: 'x' })).toBe(false); // no arguments
    expect(index.allowsOob('migrate-recover')).toBe(true);
    expect(index.allowsOob('query-status')).toBe(false);
    expect(index.commandNames().length).toBe(Object.keys(tables.commands).length);
    expect(index.eventNames()).toContain('STOP');
  });

  it('rejects what is not a schema', () => {
    expect(() => SchemaIndex.from({})).toThrow(TypeError);
    expect(() => SchemaIndex.from([{ name: 1 }])).toThrow(TypeError);
  });
});
