/**
 * The machine's migration module against a real QEMU: a paused guest migrated into a file
 * (through the transport's stream sink) and back into a fresh `-incoming defer` QEMU comes
 * back with the same RAM; `exec:` is refused; an aborted migration says so; a cut stream
 * makes the incoming QEMU exit and the error carries its exit code and stderr.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { launchQemu, qemuSuite } from '@qmpkit/testguest/test-support';
import { createStreamSink } from '@qmpkit/transport/fd';
import { describe, expect, it } from 'vitest';
import { isMigrationError } from './errors.js';
import { launch, type Machine } from './machine.js';
import { migrateIncoming, migrateOutgoing, setUpMigration } from './migration.js';
import { guestConfig } from './qemu.test-support.js';

// Each test's machines are killed after it, then every QEMU whose pidfile lies under the
// suite's dir (and every pid a child reported), also after a failure or timeout.
const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-machine-test-' });

const COUNTER = /C=([0-9A-F]{8})\r\n/;
const quiet = { warn: () => {} };

async function ramCounter(m: Machine): Promise<number> {
  const out = await m.qmp.hmp('xp /1wx 0x500');
  return Number.parseInt(/0x([0-9a-f]+)\s*$/i.exec(out.trim())?.[1] ?? 'NaN', 16);
}

/** A running guest, paused after it counted, and its state saved into `file`. */
async function savedGuest(name: string): Promise<{ m: Machine; file: string; ram: number }> {
  const config = await guestConfig(suite.dir, { name });
  const m = suite.adopt(
    await launch(config, {
      ...launchQemu(),
      consoles: ['ser0'],
      runDirParent: suite.dir,
      logger: quiet,
    }),
  );
  await m.console('ser0').expect(COUNTER, { timeout: 20_000 });
  await m.qmp.execute('stop');
  const ram = await ramCounter(m);
  const file = path.join(suite.dir, `${name}.state`);
  await setUpMigration(m, { parameters: { 'max-bandwidth': 1024 ** 4 } });
  const sink = await createStreamSink({ file, acceptTimeout: 30_000, timeout: 60_000 });
  let ticks = 0;
  await migrateOutgoing(m, { uri: sink.uri, timeout: 60_000, onTick: () => ticks++ });
  await sink.done;
  expect(ticks).toBeGreaterThanOrEqual(1);
  return { m, file, ram };
}

describe('migration', () => {
  it('out into a file and back into a fresh QEMU: the same RAM', async () => {
    const { m, file, ram } = await savedGuest('round');
    expect(readFileSync(file).subarray(0, 4).toString('latin1')).toBe('QEVM');
    const [inherited] = await m.restart(m.config, {
      incoming: true,
      paused: true,
      inheritFiles: [{ path: file }],
    });
    await migrateIncoming(m, { uri: inherited?.uri ?? '', timeout: 60_000 });
    expect((await m.qmp.execute('query-status')).status).toBe('paused');
    expect(await ramCounter(m)).toBe(ram);
    await m.stop();
  });

  it('refuses exec: URIs and reports an abort', async () => {
    const config = await guestConfig(suite.dir, { name: 'refuse' });
    const m = suite.adopt(
      await launch(config, { ...launchQemu(), runDirParent: suite.dir, logger: quiet }),
    );
    const e1 = await migrateOutgoing(m, { uri: 'exec:cat > /dev/null', timeout: 5000 }).catch(
      (e: unknown) => e,
    );
    expect(isMigrationError(e1) && [e1.direction, e1.reason]).toEqual(['outgoing', 'failed']);
    const e2 = await migrateOutgoing(m, {
      uri: 'unix:/nonexistent-dir/sock',
      timeout: 5000,
      signal: AbortSignal.abort(),
    }).catch((e: unknown) => e);
    expect(isMigrationError(e2) && e2.reason).toBe('aborted');
    expect((await m.qmp.execute('query-status')).running).toBe(true);
    await m.stop();
  });

  it('a cut stream: the incoming QEMU exits and the error has its exit code and stderr', async () => {
    const { m, file } = await savedGuest('cut');
    writeFileSync(file, readFileSync(file).subarray(0, 64));
    const [inherited] = await m.restart(m.config, {
      incoming: true,
      paused: true,
      inheritFiles: [{ path: file }],
    });
    const error = await migrateIncoming(m, { uri: inherited?.uri ?? '', timeout: 60_000 }).catch(
      (e: unknown) => e,
    );
    expect(isMigrationError(error)).toBe(true);
    if (!isMigrationError(error)) return;
    expect(['failed', 'exited']).toContain(error.reason);
    expect(error.exitCode).toBe(1);
    expect(error.stderr).toMatch(/migration|load/i);
    expect(m.status).not.toBe('running');
  });
});
