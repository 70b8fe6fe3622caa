// QAPI features narrow a version range too: `supportsFeature(qmp, subject, feature)`.
// Run: node --conditions=@qmpkit/source --import tsx packages/transport/examples/features.ts <qmp-address>
import { connect, supportsFeature } from '@qmpkit/transport/versions';

const qmp = await connect<'4.2' | '7.2'>(process.argv[2] ?? 'unix:/run/vm/qmp.sock');

// Both versions have blockdev-snapshot; only 5.0+ carries `allow-write-only-overlay`
// (libvirt's probe `blockdev-snapshot/$allow-write-only-overlay`). The answer is the same
// client typed for the versions of the range with the feature (here 7.2), or `undefined`.
const overlay = await supportsFeature(qmp, 'blockdev-snapshot', 'allow-write-only-overlay');
console.log('write-only overlays:', overlay !== undefined);

// Subjects are also arguments (`cmd.member`, `cmd.case.member`), union branches of the
// arguments (`cmd[case]`) and argument values (`cmd.member=value`); `deprecated` and
// `unstable` are features like any other. A typo in either string does not compile.
console.log(
  'auto-read-only file:',
  !!(await supportsFeature(qmp, 'blockdev-add[file]', 'dynamic-auto-read-only')),
);
console.log('base deprecated:', !!(await supportsFeature(qmp, 'block-commit.base', 'deprecated')));
await qmp.close();
