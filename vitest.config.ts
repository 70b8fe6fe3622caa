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
      {
        ...shared,
        test: {
          // Tests that start a real qemu-system-x86_64. Slow-ish; run alone with
          // `pnpm vitest run --project qemu`.
          name: 'qemu',
          include: ['**/*.qemu.test.ts'],
          exclude,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
