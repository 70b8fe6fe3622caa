import { describe, expect, it } from 'vitest';
import { isExpectationError } from '../errors.js';
import { fakeQmpTest, runWithFakeQmp, withFakeQmp } from '../vitest.js';

describe('vitest helpers', () => {
  it(
    'withFakeQmp gives a connected client and the fake',
    withFakeQmp(
      async ({ qmp, fake }) => {
        await qmp.execute('stop');
        expect(fake.model.run.status).toBe('paused');
      },
      { machine: 'none' },
    ),
  );

  it('fails the test when strict expectations are left over', async () => {
    const error = await runWithFakeQmp(async () => {}, {
      setup: (fake) => {
        fake.expect('query-status');
      },
    }).catch((e: unknown) => e);
    expect(isExpectationError(error)).toBe(true);
  });

  fakeQmpTest('fakeQmpTest provides fake and qmp fixtures', async ({ fake, qmp }) => {
    await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'n0' });
    expect(fake.model.block.find('n0')?.driver).toBe('null-co');
  });
});
