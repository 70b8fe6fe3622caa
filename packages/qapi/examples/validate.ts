// Typed QMP shapes of QEMU 7.2 and the runtime validator.
// Run: node --conditions=@qmpkit/source --import tsx packages/qapi/examples/validate.ts
import { type Commands, RunState, validateArgs } from '@qmpkit/qapi/qemu-7.2';
import { formatProblem } from '@qmpkit/qapi/runtime-v1';

// Arguments are checked by the compiler: a qcow2 node needs its `file`.
const disk: Commands['blockdev-add']['args'] = {
  driver: 'qcow2',
  'node-name': 'disk0',
  file: { driver: 'file', filename: 'disk.qcow2' },
};

// …and at run time, for values that come from users or files.
console.log(validateArgs('blockdev-add', disk)); // []
for (const problem of validateArgs('blockdev-add', { driver: 'qcow3', 'node-name': 'disk0' })) {
  console.log(formatProblem(problem)); // $.driver: expected one of 'blkdebug' | … got 'qcow3'
}

// Enums are string-literal unions with a same-named object of their values.
const paused: RunState = RunState.paused;
console.log(paused, Object.keys(RunState).length, 'run states');
