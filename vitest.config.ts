import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { playwright } from '@vitest/browser-playwright';
import { defaultClientConditions, defaultServerConditions } from 'vite';
import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';

// Tests run on the TypeScript sources of every workspace package through the
// `@qmpkit/source` export condition, so no build step is needed before testing.
const conditions = ['@qmpkit/source', ...defaultServerConditions];
const shared = {
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['@qmpkit/source'] } },
};
const exclude = ['**/node_modules/**', '**/dist/**', '**/fixtures/**'];

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
  // Pre-bundled up front: discovering them mid-run makes Vite reload the page under a test.
  optimizeDeps: { include: ['fast-check', 'ws', 'msw', 'msw/browser'] },
  test: {
    // Tests in a real Chromium (vitest browser mode, Playwright driving the system browser):
    // the Node-free transport suite, and pages using the transport against the fake via msw.
    name: 'browser',
    include: [...nodeFreeTransportTests(), '**/*.browser.test.ts'],
    exclude,
    testTimeout: 30_000,
    browser: {
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
      ...(chromium === undefined ? [] : [browserProject]),
    ],
  },
});
