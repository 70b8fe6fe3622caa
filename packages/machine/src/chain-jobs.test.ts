import { validate } from '@qmpkit/devices';
import { describe, expect, it } from 'vitest';
import { mirrorNodeName } from './chain-jobs.js';

describe('mirrorNodeName', () => {
  it('names a format node and its file node that QEMU accepts (node names of 31 characters at most)', () => {
    // Regression: the name held the pid and the time, so the file node had 32+ characters
    // for any pid above 99 and `qmpkit block mirror` was always refused.
    const id = mirrorNodeName();
    const problems = validate({
      machine: { type: 'pc-i440fx-7.2' },
      memory: { size: 16 * 1024 * 1024 },
      blockdevs: [
        { driver: 'file', 'node-name': `${id}-file`, filename: 'target.qcow2' },
        { driver: 'qcow2', 'node-name': id, file: `${id}-file` },
      ],
    });
    expect(problems.map((p) => p.message)).toEqual([]);
    expect(mirrorNodeName()).not.toBe(id);
  });
});
