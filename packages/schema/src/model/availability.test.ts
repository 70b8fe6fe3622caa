/** trackAvailability and VersionOrder over three small hand-made schemas. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadQapiSource } from '../source/index.js';
import { trackAvailability, VersionOrder } from './availability.js';

const dir = mkdtempSync(path.join(tmpdir(), 'schema-availability-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function schema(version: string, text: string) {
  const file = path.join(dir, `${version}.json`);
  writeFileSync(file, text);
  return { version, schema: loadQapiSource(file) };
}

const versions = [
  schema('1.0', `{ 'command': 'old' }\n{ 'command': 'kept' }`),
  schema('2.0', `{ 'command': 'kept', 'features': [ 'deprecated' ] }\n{ 'event': 'NEW' }`),
  schema('3.0', `{ 'command': 'kept', 'features': [ 'deprecated' ] }\n{ 'command': 'old' }`),
];

describe('trackAvailability', () => {
  const av = trackAvailability(versions);

  it('records the versions that have and deprecate each command and event', () => {
    expect([...(av.commands.get('old')?.in ?? [])]).toEqual(['1.0', '3.0']);
    expect([...(av.commands.get('kept')?.in ?? [])]).toEqual(['1.0', '2.0', '3.0']);
    expect([...(av.commands.get('kept')?.deprecated ?? [])]).toEqual(['2.0', '3.0']);
    expect([...(av.events.get('NEW')?.in ?? [])]).toEqual(['2.0']);
    expect(av.commands.get('old')?.byVersion.get('3.0')?.name).toBe('old');
  });
});

describe('VersionOrder', () => {
  const order = new VersionOrder(['1.0', '2.0', '3.0']);

  it('describes ranges, gaps and deprecation', () => {
    expect(order.describe(new Set(['1.0', '2.0', '3.0']))).toBe('all versions (1.0+)');
    expect(order.describe(new Set(['2.0', '3.0']), new Set(['3.0']))).toBe(
      'QEMU 2.0+; deprecated in 3.0',
    );
    expect(order.describe(new Set(['1.0', '3.0']))).toBe('QEMU 1.0, 3.0+');
    expect(order.describe(new Set(['1.0', '2.0']))).toBe('QEMU 1.0–2.0');
    expect(order.describe(new Set())).toBe('no version');
  });

  it('masks a set with bit i for order[i]', () => {
    expect(order.mask(new Set(['1.0', '3.0']))).toBe(0b101);
    expect(order.mask(new Set())).toBe(0);
  });
});
