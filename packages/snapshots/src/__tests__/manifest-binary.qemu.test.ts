/**
 * The manifest records, beside QEMU version, machine type and config hash, the binary that
 * saved the snapshot and the machine state format (issue #14 §3), for an internal and an
 * external save (one VM each: the two families are not mixed), read from the manifest file.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { STATE_FORMAT, STATE_VERSION } from '@qmpkit/machine';
import { qemuSuite } from '@qmpkit/testguest/test-support';
import { expect, it } from 'vitest';
import { openSnapshots } from '../snapshots.js';
import { guestConfig, nextCounter, startGuest } from './qemu.test-support.js';

const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-snapshots-test-' });

for (const kind of ['internal-jobs', 'external'] as const) {
  it(`${kind} records name the binary and the state format`, async () => {
    const config = await guestConfig(suite.dir, { name: `binrec-${kind}` });
    const m = suite.adopt(await startGuest(suite.dir, config));
    const binary = m.qemuBinary;
    expect(binary?.path).toMatch(/qemu-system-x86_64$/);
    const v = m.qemuVersion;
    expect(binary?.version).toBe(`${v.major}.${v.minor}.${v.micro}`);
    const dir = path.join(suite.dir, `snaps-${kind}`);
    const snaps = await openSnapshots(m, { dir });
    await nextCounter(m);
    await snaps.strategy(kind).save('s');
    const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as {
      snapshots: {
        name: string;
        qemuBinary?: unknown;
        stateFormat?: unknown;
        machineType: string;
      }[];
    };
    expect(manifest.snapshots.map((s) => s.name)).toEqual(['s']);
    const [s] = manifest.snapshots;
    expect(s?.qemuBinary).toEqual({ path: binary?.path, version: binary?.version });
    expect(s?.stateFormat).toEqual({ format: STATE_FORMAT, version: STATE_VERSION });
    // The configuration's pinned type, whichever binary runs it.
    expect(s?.machineType).toBe(config.machine.type);
    await m.stop();
  });
}
