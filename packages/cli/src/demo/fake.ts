/**
 * The demo tour without QEMU: the same steps against the embedded fake QMP server
 * (`@qmpkit/fake-qmp`, a QEMU 7.2 peer on the wire), over an in-memory connection.
 * The fake has no guest: the counter and RAM parts of the real tour are left out, and
 * snapshots restore the simulated run state only.
 */
import { createFakeQmp } from '@qmpkit/fake-qmp';
import { connect } from '@qmpkit/transport';
import { createStreamSink } from '@qmpkit/transport/fd';
import { bytes, ms, type Report } from './report.js';

export async function fakeTour(report: Report, workDir: string): Promise<void> {
  const fake = await createFakeQmp({ machine: 'pc', storage: 'memory' });
  const qmp = await connect(fake.pair());
  try {
    report.section('Typed queries (fake QEMU 7.2 over an in-memory pair)');
    const version = await qmp.execute('query-version'); // typed: VersionInfo
    report.step(
      `query-version → QEMU ${version.qemu.major}.${version.qemu.minor}.${version.qemu.micro} (${version.package})`,
    );
    const status = await qmp.execute('query-status'); // typed: StatusInfo
    report.step(`query-status → ${status.status}, running: ${status.running}`);
    const schema = await qmp.schema();
    report.step(
      `query-qmp-schema → ${schema.commandNames().length} commands, ${schema.eventNames().length} events`,
    );
    report.step(`has('snapshot-save') → ${await qmp.has('snapshot-save')}`);

    report.section('Hot-plug');
    // A qcow2 disk made by QEMU's own job framework, then a virtio-blk device for it.
    await qmp.runJob('blockdev-create', {
      options: { driver: 'file', filename: '/demo/data.qcow2', size: 0 },
    });
    await qmp.execute('blockdev-add', {
      driver: 'file',
      'node-name': 'data-file',
      filename: '/demo/data.qcow2',
    });
    await qmp.runJob('blockdev-create', {
      options: { driver: 'qcow2', file: 'data-file', size: 16 * 1024 * 1024 },
    });
    await qmp.execute('blockdev-add', { driver: 'qcow2', 'node-name': 'data', file: 'data-file' });
    await qmp.execute('device_add', { driver: 'virtio-blk-pci', id: 'vd0', drive: 'data' });
    const blocks = await qmp.execute('query-block');
    report.step(
      `device_add virtio-blk-pci → query-block lists ${blocks.map((b) => b.qdev ?? b.device).join(', ')}`,
    );
    const deleted = qmp.expectEvent('DEVICE_DELETED', (e) => e.data.device === 'vd0');
    await qmp.execute('device_del', { id: 'vd0' });
    await deleted.wait({ timeout: 5000 });
    report.step('device_del vd0 → DEVICE_DELETED');

    report.section('Snapshots (the fake keeps the run state only)');
    const rows: string[][] = [];
    const time = async (fn: () => Promise<unknown>) => {
      const t0 = performance.now();
      await fn();
      return performance.now() - t0;
    };
    const hmp = async (line: string) => {
      const text = await qmp.hmp(line);
      if (text.startsWith('Error:')) throw new Error(`${line}: ${text.trim()}`);
      return text;
    };
    const hmpSave = await time(() => hmp('savevm demo-hmp'));
    const hmpLoad = await time(() => hmp('loadvm demo-hmp'));
    report.step(
      `HMP savevm/loadvm; info snapshots:\n${(await hmp('info snapshots')).trimEnd().replace(/^/gm, '    ')}`,
    );
    rows.push(['internal-hmp', ms(hmpSave), ms(hmpLoad), '–']);

    const args = { tag: 'demo-jobs', vmstate: 'data', devices: ['data'] };
    const jobSave = await time(() => qmp.runJob('snapshot-save', args));
    const jobLoad = await time(() => qmp.runJob('snapshot-load', args));
    report.step('snapshot-save / snapshot-load jobs followed to concluded and dismissed');
    rows.push(['internal-jobs', ms(jobSave), ms(jobLoad), '–']);

    // External: overlay switch in one transaction, then the migration stream into a file.
    await qmp.execute('stop');
    await qmp.runJob('blockdev-create', {
      options: { driver: 'file', filename: '/demo/overlay.qcow2', size: 0 },
    });
    await qmp.execute('blockdev-add', {
      driver: 'file',
      'node-name': 'ovl-file',
      filename: '/demo/overlay.qcow2',
    });
    await qmp.runJob('blockdev-create', {
      options: {
        driver: 'qcow2',
        file: 'ovl-file',
        size: 16 * 1024 * 1024,
        'backing-file': '/demo/data.qcow2',
        'backing-fmt': 'qcow2',
      },
    });
    await qmp.execute('blockdev-add', {
      driver: 'qcow2',
      'node-name': 'ovl',
      file: 'ovl-file',
      backing: null,
    });
    await qmp.execute('transaction', {
      actions: [{ type: 'blockdev-snapshot', data: { node: 'data', overlay: 'ovl' } }],
    });
    await qmp.execute('migrate-set-capabilities', {
      capabilities: [{ capability: 'events', state: true }],
    });
    const sink = await createStreamSink({
      socketDir: workDir,
      file: `${workDir}/state.bin`,
      timeout: 10_000,
    });
    const t0 = performance.now();
    const completed = qmp.expectEvent('MIGRATION', (e) => e.data.status === 'completed');
    await qmp.execute('migrate', { uri: sink.uri });
    await completed.wait({ timeout: 10_000 });
    const written = await sink.done;
    const extSave = performance.now() - t0;
    await qmp.execute('cont');
    report.step(
      `external: overlay switched in one transaction; migration stream ${bytes(written.bytes)} written and fsynced (sha256 ${written.sha256.slice(0, 12)}…)`,
    );
    rows.push(['external', ms(extSave), 'needs a real QEMU restart', bytes(written.bytes)]);

    report.section('Timings against the fake (QEMU-shaped protocol, no guest)');
    report.table(['strategy', 'save', 'load', 'state'], rows);
  } finally {
    await qmp.close();
    await fake.close();
  }
}
