/**
 * `@qmpkit/fake-qmp/vitest`: test helpers. Each test gets a fresh fake and a connected
 * `@qmpkit/transport` client over an in-memory pair; afterwards the client is closed, strict
 * expectations and replays are verified (a failure fails the test) and the fake is closed.
 *
 * ```ts
 * it('pauses the VM', withFakeQmp(async ({ qmp, fake }) => {
 *   await qmp.execute('stop');
 *   expect(fake.model.run.status).toBe('paused');
 * }));
 * ```
 */
import type { Commands, Events } from '@qmpkit/qapi';
import { type ConnectOptions, connect, type QmpClient } from '@qmpkit/transport';
import { test as baseTest } from 'vitest';
import { createFakeQmp, type FakeQmp, type FakeQmpOptions } from './server/fake.js';

export interface FakeQmpFixture {
  readonly qmp: QmpClient;
  readonly fake: FakeQmp;
}

export interface WithFakeQmpOptions extends FakeQmpOptions {
  /** Options for the client (`connect` of `@qmpkit/transport`); validation defaults to 'strict'. */
  readonly client?: ConnectOptions<Commands, Events>;
  /** Verify strict expectations / replay after the test (default true). */
  readonly verify?: boolean;
  /** Called with the fake before the client connects (scripting, faults, expectations). */
  readonly setup?: (fake: FakeQmp) => void | Promise<void>;
}

/** Starts a fake and a client for `fn`, and tears both down (verifying the fake) after it. */
export async function runWithFakeQmp<T>(
  fn: (fixture: FakeQmpFixture) => T | Promise<T>,
  options: WithFakeQmpOptions = {},
): Promise<T> {
  const { client: clientOptions, verify = true, setup, ...fakeOptions } = options;
  const fake = await createFakeQmp(fakeOptions);
  let qmp: QmpClient | undefined;
  try {
    await setup?.(fake);
    qmp = await connect(fake.pair(), { validate: 'strict', ...clientOptions });
    const result = await fn({ qmp, fake });
    if (verify) fake.verify();
    return result;
  } finally {
    await qmp?.close().catch(() => {});
    await fake.close();
  }
}

/** Wraps a test body: `it('…', withFakeQmp(async ({ qmp, fake }) => { … }))`. */
export function withFakeQmp(
  fn: (fixture: FakeQmpFixture) => unknown,
  options: WithFakeQmpOptions = {},
): () => Promise<void> {
  return async () => {
    await runWithFakeQmp(fn, options);
  };
}

/**
 * A vitest `test` with `fake` and `qmp` fixtures (default options):
 * `fakeQmpTest('…', async ({ qmp, fake }) => { … })`.
 */
export const fakeQmpTest = baseTest.extend<{ fake: FakeQmp; qmp: QmpClient }>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest requires a destructuring pattern
  fake: async ({}, use) => {
    const fake = await createFakeQmp();
    await use(fake);
    await fake.close();
  },
  qmp: async ({ fake }, use) => {
    const qmp = await connect(fake.pair(), { validate: 'strict' });
    await use(qmp);
    await qmp.close().catch(() => {});
    fake.verify();
  },
});
