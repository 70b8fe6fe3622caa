/**
 * Debug aid: runs scenarios (all, or those whose name contains argv[2]) against both peers
 * and prints only the steps whose lines differ.
 *   node --conditions=@qmpkit/source --import tsx test/contract/diff.ts [filter] [qemu|fake]
 * With a peer name it prints that peer's whole transcript instead. QMPKIT_QEMU picks the
 * binary, as in the tests; QMPKIT_CONTRACT_QEMU=10.0 runs QEMU 10.0 (and the fake imitating it).
 */
import { QEMU, QEMU_10 } from '@qmpkit/testguest/test-support';
import { runScenario } from './runner.js';
import { scenarios } from './scenarios.js';

const filter = process.argv[2] ?? '';
const show = process.argv[3] as 'qemu' | 'fake' | undefined;
const binary = process.env.QMPKIT_CONTRACT_QEMU === '10.0' ? QEMU_10 : QEMU;
for (const scenario of scenarios.filter((s) => s.name.includes(filter))) {
  if (show) {
    for (const e of await runScenario(scenario, show, binary)) {
      console.log(`## ${e.step}`);
      for (const l of e.lines) console.log(l);
    }
    continue;
  }
  const [real, fake] = await Promise.all([
    runScenario(scenario, 'qemu', binary),
    runScenario(scenario, 'fake', binary),
  ]);
  const n = Math.max(real.length, fake.length);
  let same = true;
  for (let i = 0; i < n; i++) {
    const r = real[i];
    const f = fake[i];
    if (JSON.stringify(r) === JSON.stringify(f)) continue;
    same = false;
    console.log(`\n[${scenario.name}] step ${i}: ${r?.step ?? f?.step}`);
    for (const l of r?.lines ?? []) console.log(`  qemu: ${l}`);
    for (const l of f?.lines ?? []) console.log(`  fake: ${l}`);
  }
  console.log(`${same ? 'SAME' : 'DIFF'}  ${scenario.name}`);
}
