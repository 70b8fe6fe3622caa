/** `qmpkit vm init`: the example is a configuration `vm start` reads; no silent overwrite. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isConfigFormatError } from '@qmpkit/devices';
import { privateTempDir } from '@qmpkit/testguest/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';
import { parseVmConfig, readVmConfig } from './config.js';
import { EXAMPLE_CONFIG } from './init.js';

const dirs: { remove(): void }[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});
function tmp(): string {
  const d = privateTempDir('qmpkit-init-');
  dirs.push(d);
  return d.dir;
}
async function run(...argv: string[]) {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

describe('qmpkit vm init', () => {
  it('writes a commented example that the configuration reader accepts', async () => {
    const file = path.join(tmp(), 'vm.jsonc');
    const result = await run('vm', 'init', file);
    expect(result).toMatchObject({ code: 0, err: '' });
    expect(result.out).toContain(`wrote ${file}`);
    const text = readFileSync(file, 'utf8');
    expect(text).toBe(EXAMPLE_CONFIG);
    expect(text).toMatch(/^\s*\/\/ /m);
    const config = await readVmConfig(file);
    expect(config.machine.type).toBe('pc-i440fx-7.2');
    // The disk is resolved against the file's directory, as `vm start` uses it.
    expect(config.blockdevs?.[0]).toMatchObject({
      driver: 'file',
      filename: path.join(path.dirname(file), 'disk.qcow2'),
    });
  });

  it('refuses to replace an existing file (exit 1, file unchanged) unless --force', async () => {
    const file = path.join(tmp(), 'mine.json');
    writeFileSync(file, 'my own config\n');
    const refused = await run('vm', 'init', file);
    expect(refused.code).toBe(1);
    expect(refused.out).toBe('');
    expect(refused.err).toBe(
      `qmpkit: ${file} exists; not replacing it (use --force to overwrite)\n`,
    );
    expect(readFileSync(file, 'utf8')).toBe('my own config\n');
    const forced = await run('vm', 'init', '--force', file);
    expect(forced.code).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(EXAMPLE_CONFIG);
  });

  it('exits 1 naming the file when its directory does not exist', async () => {
    const file = path.join(tmp(), 'no', 'such', 'vm.jsonc');
    const result = await run('vm', 'init', file);
    expect(result.code).toBe(1);
    expect(result.err).toMatch(new RegExp(`^qmpkit: cannot write ${file}: .*ENOENT`));
  });
});

describe('parseVmConfig (JSON with comments)', () => {
  it('still reads plain JSON', () => {
    const plain = JSON.stringify(parseVmConfigDocument());
    expect(parseVmConfig(plain).machine.type).toBe('pc-i440fx-7.2');
  });

  it('names the line and column of a syntax error', () => {
    const broken = EXAMPLE_CONFIG.replace('"version": 1,', '"version": 1 "oops": 2,');
    const line = broken.split('\n').findIndex((l) => l.includes('"oops"')) + 1;
    let caught: unknown;
    try {
      parseVmConfig(broken);
    } catch (error) {
      caught = error;
    }
    expect(isConfigFormatError(caught)).toBe(true);
    expect((caught as Error).message).toContain(`at line ${line}, column`);
  });
});

/** The example's document without comments, via the reader itself. */
function parseVmConfigDocument() {
  return {
    format: 'qmpkit-devices/vm-config',
    version: 1,
    config: parseVmConfig(EXAMPLE_CONFIG),
  };
}
