import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

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
  'packages/machine/src/vmstate/vmstate.qemu.test.ts',
  'packages/cli/src/commands/vmstate.qemu.test.ts',
  'packages/snapshots/src/__tests__/cross-version.qemu.test.ts',
  'test/e2e/linux-guest.qemu.test.ts',
  // The contract suite picks its binaries per scenario (fake of version X vs real X).
  'test/contract/contract.qemu.test.ts',
  // The test harness (cleanup of leaked QEMUs), packaging and README examples.
  'packages/testguest/src/test-support/cleanup.qemu.test.ts',
  'packages/testguest/src/example.qemu.test.ts',
  'packages/machine/src/example.qemu.test.ts',
  'packages/snapshots/src/__tests__/example.qemu.test.ts',
  'packages/cli/src/from-clone.qemu.test.ts',
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

export default defineConfig({
  test: {
    projects: [
      {
        ...shared,
        test: {
          name: 'unit',
          include: ['**/*.test.ts'],
          exclude: [...exclude, '**/*.qemu.test.ts'],
          // A guard against hangs, not a speed check: on a busy 2-core machine (CI beside other
          // work) a 64 MiB decode or a child-process test can take well over vitest's 5 s default.
          testTimeout: 30_000,
          typecheck: { enabled: true, include: ['**/*.test-d.ts'], tsconfig: './tsconfig.json' },
        },
      },
      qemuProject('7.2', 'system', []),
      qemuProject('10.0', '10.0', ONCE),
    ],
  },
});
