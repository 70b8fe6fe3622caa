import { readFileSync } from 'node:fs';
import { validateArgs } from '@qmpkit/qapi/runtime-v1';
import { readSchemaInfo } from '@qmpkit/schema/info';
import { expect, it } from 'vitest';
import { CAPTURE_FILE, model72 } from '../cli.test-support.js';
import { openCommands } from './live.js';

it("device_add stays open (QEMU does not check device properties); typed netdev_add/object-add don't", async () => {
  const list = readSchemaInfo(CAPTURE_FILE, JSON.parse(readFileSync(CAPTURE_FILE, 'utf8')));
  expect(openCommands(list)).toEqual(['device_add']);
  const { tables } = await model72();
  expect(
    validateArgs(tables, 'device_add', { driver: 'virtio-blk-pci', drive: 'd0', 'num-queues': 2 }),
  ).toEqual([]);
  expect(validateArgs(tables, 'device_add', { bus: 'pci.0' })[0]).toMatchObject({
    path: '$.driver',
    kind: 'missing',
  });
  expect(
    validateArgs(tables, 'object-add', { 'qom-type': 'iothread', id: 'io0', bogus: 1 })[0],
  ).toMatchObject({
    path: '$.bogus',
    kind: 'unexpected',
  });
});

it('the live tables carry the QEMU version and every command and event of the capture', async () => {
  const model = await model72();
  expect(model.qemuVersion).toBe('7.2.22');
  expect(model.commandNames()).toContain('query-status');
  expect(model.eventNames()).toContain('STOP');
  expect(model.describe(model.argType('blockdev-add')!)).toBe("object (union on 'driver')");
});
