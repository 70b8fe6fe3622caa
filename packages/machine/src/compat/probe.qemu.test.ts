/**
 * `probeCompatibility` on real binaries (the system's 7.2 and 10.0 from `pnpm qemu:fetch
 * 10.0`; CI fetches it), with the tiny test guest's configuration plus an e1000e NIC:
 * - 7.2 → 10.0: the static diff flags hpet and e1000e (see the vmstate suite for why), the
 *   probe loads them: `warn`, listing both; the guest's image is not touched;
 * - 7.2 → 7.2: `ok`; the second ask comes from the cache (no QEMU runs);
 * - a refusal with QEMU's own reason: 10.0 against the same 10.0 whose firmware dir holds a
 *   bigger `efi-e1000e.rom` (a ROM-size mismatch, the stand-in the issue allows: no device of
 *   this board was found whose state 7.2 → 10.0 does not load); the fingerprints differ.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import type { VmConfig } from '@qmpkit/devices';
import { QEMU, QEMU_10, qemuSuite, REPO_CACHE_DIR } from '@qmpkit/testguest/test-support';
import { beforeAll, describe, expect, it } from 'vitest';
import { qemuCacheDir, resolveQemuBinary, unpackedRootLayout } from '../binary.js';
import { guestConfig } from '../qemu.test-support.js';
import { firmwareDirs } from './fingerprint.js';
import { probeCompatibility } from './probe.js';

const suite = qemuSuite({ binary: QEMU_10, prefix: 'qmpkit-probe-' });

let config: VmConfig;
let image: string;
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

beforeAll(async () => {
  const base = await guestConfig(suite.dir, { name: 'probe' });
  image = path.join(suite.dir, 'probe.raw');
  config = {
    ...base,
    netdevs: [{ id: 'net0', type: 'user' }],
    devices: [
      ...(base.devices ?? []),
      { driver: 'e1000e', id: 'nic0', props: { netdev: 'net0', mac: '52:54:00:12:34:56' } },
    ],
  };
});

/**
 * A copy of the 10.0 root made of symlinks, whose data dir (searched before the system's
 * iPXE dir) holds `rom` padded to 300 000 bytes: QEMU rounds the ROM's RAM block up to
 * 512 KiB where the real one (249 856 bytes) takes 256 KiB.
 */
async function biggerRomRoot(rom: string): Promise<string> {
  const real = path.join(qemuCacheDir(REPO_CACHE_DIR, '10.0'), 'root');
  const layout = unpackedRootLayout(real);
  const root = path.join(suite.dir, 'root-big-rom');
  const fake = unpackedRootLayout(root);
  mkdirSync(path.dirname(fake.executable), { recursive: true });
  mkdirSync(path.dirname(fake.moduleDir), { recursive: true });
  mkdirSync(fake.dataDir, { recursive: true });
  symlinkSync(layout.executable, fake.executable);
  symlinkSync(layout.moduleDir, fake.moduleDir);
  for (const name of readdirSync(layout.dataDir))
    symlinkSync(path.join(layout.dataDir, name), path.join(fake.dataDir, name));
  // Where the real build finds the ROM (Debian: the ipxe-qemu package's dir).
  const real10 = await resolveQemuBinary(QEMU_10.machineQemu, { cacheDir: REPO_CACHE_DIR });
  const dir = (await firmwareDirs(real10)).find((d) => existsSync(path.join(d, rom)));
  if (dir === undefined) throw new Error(`no ${rom} in the firmware dirs of QEMU 10.0`);
  const original = readFileSync(path.join(dir, rom));
  const padded = Buffer.alloc(300_000);
  original.copy(padded);
  writeFileSync(path.join(fake.dataDir, rom), padded);
  return fake.executable;
}

describe(`probeCompatibility ${QEMU.description} / ${QEMU_10.description}`, () => {
  it('7.2 → 10.0: warn, the statically flagged sections load; the image is untouched', async () => {
    const before = { sha: sha(image), mtime: statSync(image).mtimeMs };
    const r = await probeCompatibility({
      save: QEMU.machineQemu,
      load: QEMU_10.machineQemu,
      config,
      cacheDir: REPO_CACHE_DIR,
      cache: false,
      scratchParent: suite.dir,
    });
    expect(r.probe).toMatchObject({ loaded: true, cached: false });
    expect(r.verdict).toBe('warn');
    // Read from the running source: the board's own devices and the configured ones.
    expect(r.sections).toEqual(expect.arrayContaining(['PIIX3', 'isa-serial', 'e1000e', 'hpet']));
    expect(r.flaggedSections).toEqual(['e1000e', 'hpet']);
    expect(r.flaggedButLoaded).toEqual(['e1000e', 'hpet']);
    expect(r.save.version).toMatch(/^7\.2\./);
    expect(r.load.version).toMatch(/^10\.0\./);
    expect({ sha: sha(image), mtime: statSync(image).mtimeMs }).toEqual(before);
    console.log(
      `probe 7.2 → 10.0: ${r.flaggedSections.length} statically flagged sections of ${r.sections.length} used, ${r.flaggedButLoaded.length} loaded fine (${r.probe.ms} ms)`,
    );
  }, 120_000);

  it('7.2 → 7.2: ok; asked again, the verdict comes from the cache', async () => {
    const cacheDir = path.join(suite.dir, 'cache');
    const ask = () =>
      probeCompatibility({
        save: QEMU.machineQemu,
        load: QEMU.machineQemu,
        config,
        cacheDir,
        scratchParent: suite.dir,
      });
    const first = await ask();
    expect([first.verdict, first.probe.cached, first.staticProblems]).toEqual(['ok', false, []]);
    const second = await ask();
    expect([second.verdict, second.probe.cached, second.key]).toEqual(['ok', true, first.key]);
    expect(readdirSync(path.join(cacheDir, 'compat', 'verdicts'))).toEqual([`${first.key}.json`]);
    // Keyed on content, never on a path: nothing of the binary's or the image's path is in it.
    expect(
      readFileSync(path.join(cacheDir, 'compat', 'verdicts', `${first.key}.json`), 'utf8'),
    ).not.toContain(suite.dir);
  }, 120_000);

  it("a ROM-size mismatch: refuse, with QEMU's reason", async () => {
    const big = await resolveQemuBinary(await biggerRomRoot('efi-e1000e.rom'));
    const real = await resolveQemuBinary(QEMU_10.machineQemu, { cacheDir: REPO_CACHE_DIR });
    const r = await probeCompatibility({
      save: real,
      load: big,
      config,
      cacheDir: REPO_CACHE_DIR,
      cache: false,
      scratchParent: suite.dir,
    });
    expect(r.verdict).toBe('refuse');
    expect(r.probe.loaded).toBe(false);
    expect(r.probe.reason).toMatch(/Size mismatch: .*e1000e\.rom: 0x40000 != 0x80000/);
    expect(r.flaggedButLoaded).toEqual([]);
    console.log(`probe refused: ${r.probe.reason}`);
    // Same version, same executable, other firmware: another build.
    expect(r.save.version).toBe(r.load.version);
    expect(r.save.sha256).not.toBe(r.load.sha256);
  }, 120_000);
});
