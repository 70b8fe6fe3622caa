/**
 * The fake QEMU executable for tests: a Node script that runs `@qmpkit/fake-qmp`'s process mode
 * from source (the workspace is not built in tests), and the environment that lets it load
 * TypeScript. Spawn `path` with `env` wherever a `qemu-system-x86_64` is expected.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export function writeFakeQemu(dir: string): { path: string; env: NodeJS.ProcessEnv } {
  return writeFakeProgram(dir, 'qemu-bin.ts', 'fake-qemu');
}

/** The fake `qemu-storage-daemon` executable (the fake's storage-daemon process mode). */
export function writeFakeStorageDaemon(dir: string): { path: string; env: NodeJS.ProcessEnv } {
  return writeFakeProgram(dir, 'qsd-bin.ts', 'fake-qemu-storage-daemon');
}

function writeFakeProgram(
  dir: string,
  entryFile: string,
  name: string,
): { path: string; env: NodeJS.ProcessEnv } {
  const require = createRequire(import.meta.url);
  const entry = path.join(
    path.dirname(require.resolve('@qmpkit/fake-qmp/package.json')),
    'src',
    entryFile,
  );
  const fake = path.join(dir, name);
  writeFileSync(
    fake,
    `#!${process.execPath}\nimport(${JSON.stringify(pathToFileURL(entry).href)});\n`,
    { mode: 0o700 },
  );
  const env = {
    ...process.env,
    NODE_OPTIONS:
      `${process.env.NODE_OPTIONS ?? ''} --conditions=@qmpkit/source --import tsx`.trim(),
  };
  return { path: fake, env };
}
