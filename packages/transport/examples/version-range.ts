// One client for several QEMU versions: `has` answers, `supports` narrows.
// Run: node --conditions=@qmpkit/source --import tsx packages/transport/examples/version-range.ts <qmp-address>
import { connect, supports } from '@qmpkit/transport/versions';

const qmp = await connect<'5.2' | '7.2'>(process.argv[2] ?? 'unix:/run/vm/qmp.sock');

// Only what QEMU 5.2 and 7.2 both accept compiles on `qmp`; `snapshot-save` (6.0+) does not.
// `has` accepts any name *some* version of the range has (a typo does not compile) and
// answers a boolean; `qmp` keeps its range type, because TypeScript cannot narrow an
// object through an awaited boolean.
console.log('snapshot-save:', await qmp.has('snapshot-save'));

// `supports` is the narrowing form: the same client typed for the versions of the range
// that have the command (here 7.2), or `undefined` when this QEMU lacks it.
const newer = await supports(qmp, 'snapshot-save');
if (newer) console.log('jobs now:', await newer.execute('query-jobs'));
await qmp.close();
