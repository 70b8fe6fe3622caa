// Fetch qemu-guest-agent 10.0 from bookworm-backports into a private cache and unpack it.
// Run from the repository root (needs network and apt-get/dpkg):
//   node --conditions=@qmpkit/source --import tsx packages/debian/examples/fetch-agent.ts
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AptRepo, cachedDir, unpackDebs } from '@qmpkit/debian';

const cache = await mkdtemp(path.join(tmpdir(), 'debian-example-'));
const apt = new AptRepo({
  dir: path.join(cache, 'apt'),
  suites: ['bookworm', 'bookworm-backports'],
});
await apt.update(); // private lists; about 20 MB
// The candidate from bookworm-backports (apt's Default-Release), with its index record.
const [agent] = await apt.resolve(['qemu-guest-agent'], { release: 'bookworm-backports' });
console.log(agent?.version); // e.g. 1:10.0.2+ds-2+deb13u1~bpo12+1

// Complete-or-absent: built in a staging dir, renamed into place; a second call reuses it.
const { dir } = await cachedDir(path.join(cache, 'agent'), async (staging) => {
  const debs = await apt.download(agent ? [agent] : [], path.join(cache, 'debs'));
  await unpackDebs(
    debs.map((d) => d.file),
    staging,
  );
});
console.log(path.join(dir, 'usr/sbin/qemu-ga'));
await rm(cache, { recursive: true, force: true }); // an example: leave nothing behind
