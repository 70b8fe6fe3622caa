import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { playwright } from '@vitest/browser-playwright';
import { defaultClientConditions, defaultServerConditions } from 'vite';
import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';
import { dashboard } from './test/browser/dashboard.command.js';

// Tests run on the TypeScript sources of every workspace package through the
// `@qmpkit/source` export condition, so no build step is needed before testing.
const conditions = ['@qmpkit/source', ...defaultServerConditions];
const shared = {
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['@qmpkit/source'] } },
};
const exclude = ['**/node_modules/**', '**/dist/**', '**/fixtures/**'];

/**
 * Real-QEMU files that run once, on the system's QEMU (7.2), because their subject is not the
 * QEMU version: they compare binaries themselves (naming `QEMU_SYSTEM` and `QEMU_10`), test
 * the test harness or the packaging, or run a README example as a user would. Every other
 * `*.qemu.test.ts` follows test-support's `QEMU` and runs on both binaries.
 */
const ONCE = [
  // Compare 7.2 with 10.0 inside the file.
  'packages/testguest/src/test-support/binaries.qemu.test.ts',
  'packages/machine/src/binary.qemu.test.ts',
  'packages/machine/src/pinning.qemu.test.ts',
  // Post-copy recovery from a 7.2 source into a 10.0 target.
  'packages/machine/src/postcopy-recovery-cross.qemu.test.ts',
  'packages/machine/src/vmstate/vmstate.qemu.test.ts',
  'packages/cli/src/commands/vmstate.qemu.test.ts',
  'packages/snapshots/src/__tests__/cross-version.qemu.test.ts',
  'packages/snapshots/src/__tests__/cannot-load.qemu.test.ts',
  'packages/snapshots/src/__tests__/load-compat.qemu.test.ts',
  // mapped-ram saved on 10.0: loads there, portable loads on 7.2, refused on 7.2.
  'packages/snapshots/src/__tests__/mapped-ram.qemu.test.ts',
  'test/e2e/linux-guest.qemu.test.ts',
  // The contract suite picks its binaries per scenario (fake of version X vs real X).
  'test/contract/contract.qemu.test.ts',
  // The test harness (cleanup of leaked QEMUs), packaging and README examples.
  'packages/testguest/src/test-support/cleanup.qemu.test.ts',
  'packages/testguest/src/example.qemu.test.ts',
  'packages/machine/src/example.qemu.test.ts',
  'packages/snapshots/src/__tests__/example.qemu.test.ts',
  'packages/backup/src/__tests__/example.qemu.test.ts',
  'packages/cli/src/from-clone.qemu.test.ts',
  // The `vm clone` verb's wiring (the clone mechanism itself runs on both binaries in
  // packages/snapshots/src/__tests__/clones.qemu.test.ts).
  'packages/cli/src/commands/clone.qemu.test.ts',
  'test/packaging/packaging.qemu.test.ts',
  // The README's main job and the vm init example, run as written (the system's QEMU).
  'packages/cli/src/demo/demo.qemu.test.ts',
  'packages/cli/src/vm/init.qemu.test.ts',
  // Version-range typing checked against the 7.2 capture; schema capture compared with the
  // committed 7.2 capture; codegen's CLI reading a live schema.
  'test/e2e/versions.qemu.test.ts',
  // Replies validated against the 7.2 tables (10.0's come with the 10.0 bindings).
  'test/e2e/qapi-replies.qemu.test.ts',
  'packages/schema/src/introspection/capture.qemu.test.ts',
  'codegen/src/cli/main.qemu.test.ts',
  // Name their binaries themselves (7.2 and 10.0 cases inside the file, or one agent version
  // per file): live migration, machine diff / compatibility probe / torture, the guest agent.
  'packages/machine/src/live-migration.qemu.test.ts',
  // Disk copy over NBD and its kill trials: 7.2→7.2 and 7.2→10.0 inside the file.
  'packages/machine/src/live-migration-disks.qemu.test.ts',
  'packages/machine/src/compat/machine-type-diff.qemu.test.ts',
  'packages/machine/src/compat/probe.qemu.test.ts',
  'packages/machine/src/compat/torture.qemu.test.ts',
  'packages/cli/src/commands/machine.qemu.test.ts',
  'packages/cli/src/commands/vm-torture.qemu.test.ts',
  'packages/cli/src/commands/upgrade.qemu.test.ts',
  'packages/guest-agent/src/__tests__/agent-7.2.qemu.test.ts',
  'packages/guest-agent/src/__tests__/agent-10.0.qemu.test.ts',
  'test/contract/agent.qemu.test.ts',
];

/**
 * Tests that start a real qemu-system-x86_64, once per binary: `qemu-7.2` (the system's) and
 * `qemu-10.0` (`pnpm qemu:fetch 10.0`), selected by test-support's `QMPKIT_TEST_QEMU`, so the
 * log names the binary of every file. Run alone with `pnpm vitest run --project 'qemu-*'`.
 */
function qemuProject(label: string, id: string, skip: readonly string[]) {
  return {
    ...shared,
    test: {
      name: `qemu-${label}`,
      include: ['**/*.qemu.test.ts'],
      exclude: [...exclude, ...skip],
      env: { QMPKIT_TEST_QEMU: id },
      testTimeout: 60_000,
      hookTimeout: 60_000,
    },
  };
}

/** The system's Chromium (Debian's `chromium`): Playwright's own download cannot be used here. */
function findChromium(): string | undefined {
  const given = process.env.QMPKIT_CHROMIUM;
  const candidates = given
    ? [given]
    : (process.env.PATH ?? '')
        .split(path.delimiter)
        .filter(Boolean)
        .flatMap((dir) => ['chromium', 'chromium-browser'].map((name) => path.join(dir, name)));
  return candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false; // not there or not executable: try the next candidate
    }
  });
}

/**
 * The transport's unit tests that need no Node (no `node:` import, no Node-only test
 * helpers, no `Buffer`): they run in Chromium too, against the browser build.
 */
function nodeFreeTransportTests(): string[] {
  const root = 'packages/transport/src';
  return readdirSync(root, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.test.ts') && !file.endsWith('.qemu.test.ts'))
    .map((file) => path.join(root, file))
    .filter(
      (file) => !/from 'node:|__tests__\/helpers|\bBuffer\./.test(readFileSync(file, 'utf8')),
    );
}

const chromium = findChromium();
const browserProject: TestProjectInlineConfiguration = {
  resolve: { conditions: ['@qmpkit/source', ...defaultClientConditions] },
  // The global setup runs `qmpkit bridge`/`serve` and a VM supervisor in-process (Node side).
  // Vitest runs it in its `__vitest__` environment, which otherwise resolves like the page
  // (browser conditions and main fields): give it Node's, and the sources of our packages.
  environments: {
    __vitest__: {
      resolve: {
        conditions,
        externalConditions: ['@qmpkit/source'],
        mainFields: ['main'],
      },
    },
  },
  // Pre-bundled up front: discovering them mid-run makes Vite reload the page under a test.
  optimizeDeps: { include: ['fast-check', 'ws', 'msw', 'msw/browser'] },
  test: {
    // Tests in a real Chromium (vitest browser mode, Playwright driving the system browser):
    // the Node-free transport suite, and pages using the transport against the fake via msw.
    name: 'browser',
    include: [...nodeFreeTransportTests(), '**/*.browser.test.ts'],
    exclude,
    testTimeout: 30_000,
    // Group (c): `qmpkit bridge` and `qmpkit serve` in front of real QEMU for the page tests.
    globalSetup: ['test/browser/qemu.global-setup.ts'],
    browser: {
      commands: { dashboard },
      enabled: true,
      headless: true,
      screenshotFailures: false,
      provider: playwright({ launchOptions: { executablePath: chromium ?? 'chromium' } }),
      instances: [{ browser: 'chromium' }],
    },
  },
};
if (chromium === undefined) {
  // CI installs Debian's chromium (.ci/run) and must run these tests; elsewhere say why not.
  if (process.env.CI === 'true') throw new Error('CI=true but no chromium on PATH');
  console.warn('[qmpkit] no chromium on PATH: the browser tests (project `browser`) are skipped');
}

export default defineConfig({
  test: {
    projects: [
      {
        ...shared,
        test: {
          name: 'unit',
          include: ['**/*.test.ts'],
          exclude: [...exclude, '**/*.qemu.test.ts', '**/*.browser.test.ts'],
          // A guard against hangs, not a speed check: on a busy 2-core machine (CI beside other
          // work) a 64 MiB decode or a child-process test can take well over vitest's 5 s default.
          testTimeout: 30_000,
          typecheck: { enabled: true, include: ['**/*.test-d.ts'], tsconfig: './tsconfig.json' },
        },
      },
      qemuProject('7.2', 'system', []),
      qemuProject('10.0', '10.0', ONCE),
      ...(chromium === undefined ? [] : [browserProject]),
    ],
  },
});
