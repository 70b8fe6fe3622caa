import type { GuestAgentInfo, Commands as Qga72 } from '@qmpkit/qapi/qga-7.2';
import type { GuestExecCaptureOutput, Commands as Qga100 } from '@qmpkit/qapi/qga-10.0';
import type { QmpClient } from '@qmpkit/transport';
import { describe, expectTypeOf, test } from 'vitest';
import type { GuestAgent } from './client.js';

declare const agent72: GuestAgent;
declare const agent10: GuestAgent<Qga100>;

describe('GuestAgent.execute', () => {
  test('is typed by the qga bindings (7.2 by default)', () => {
    expectTypeOf(agent72.execute('guest-info')).resolves.toEqualTypeOf<GuestAgentInfo>();
    expectTypeOf(agent72.execute('guest-file-open', { path: '/x' })).resolves.toBeNumber();
    expectTypeOf<GuestAgent>().toEqualTypeOf<GuestAgent<Qga72>>();
    // @ts-expect-error guest-file-open needs a path
    agent72.execute('guest-file-open', {});
    // @ts-expect-error not a guest agent command
    agent72.execute('query-status');
  });

  test('follows the version it is given', () => {
    const capture: GuestExecCaptureOutput = 'merged';
    agent10.execute('guest-exec', { path: '/bin/true', 'capture-output': capture });
    // @ts-expect-error 7.2 takes only a boolean
    agent72.execute('guest-exec', { path: '/bin/true', 'capture-output': 'merged' });
  });

  test('attachQmp takes a QmpClient', () => {
    expectTypeOf<QmpClient>().toExtend<Parameters<GuestAgent['attachQmp']>[0]>();
  });
});
