import { describe, expectTypeOf, it } from 'vitest';
import type {
  CommandsFor,
  EventsFor,
  QemuVersion,
  RunState,
} from './gen/merged/index.generated.js';
import type {
  Commands as Commands72,
  Events as Events72,
  StatusInfo as StatusInfo72,
} from './gen/qemu-7.2/index.generated.js';

type Range = CommandsFor<'6.2' | '7.2'>;

describe('merged view: types for a range of QEMU versions', () => {
  it('one version gives that version’s exact maps', () => {
    expectTypeOf<CommandsFor<'7.2'>>().toEqualTypeOf<Commands72>();
    expectTypeOf<EventsFor<'7.2'>>().toEqualTypeOf<Events72>();
  });

  it('a range keeps only the commands every version has', () => {
    expectTypeOf<Range>().toHaveProperty('snapshot-save'); // 6.0+
    expectTypeOf<CommandsFor<'5.2' | '7.2'>>().not.toHaveProperty('snapshot-save');
    expectTypeOf<CommandsFor<'5.2'>>().toHaveProperty('query-cpus'); // removed in 6.0
    expectTypeOf<CommandsFor<'5.2' | '6.2'>>().not.toHaveProperty('query-cpus');
  });

  it('returns are the union of what the versions return', () => {
    expectTypeOf<Range['query-status']['returns']['status']>().toExtend<string>();
    expectTypeOf<StatusInfo72>().toExtend<Range['query-status']['returns']>();
  });

  it('arguments are what all versions accept', () => {
    type Args<C> = C extends { 'blockdev-add': { args: infer A } } ? A : never;
    type Nbd<V extends '6.2' | '7.0' | '7.2'> = Extract<Args<CommandsFor<V>>, { driver: 'nbd' }>;
    // `open-timeout` of the nbd driver exists from 7.0 on:
    expectTypeOf<'open-timeout'>().toExtend<keyof Nbd<'7.0' | '7.2'>>();
    expectTypeOf<'open-timeout'>().not.toExtend<keyof Nbd<'6.2' | '7.2'>>();
    expectTypeOf<'reconnect-delay'>().toExtend<keyof Nbd<'6.2' | '7.2'>>();
    const ok: Nbd<'6.2' | '7.2'> = {
      driver: 'nbd',
      'node-name': 'n0',
      server: { type: 'unix', path: '/s' },
    };
    expectTypeOf(ok).toBeObject();
    // the preallocate driver is 6.0+: no such branch for a 5.2–7.2 client
    type Drivers52 = CommandsFor<'5.2' | '7.2'>['blockdev-add']['args']['driver'];
    expectTypeOf<'preallocate'>().not.toExtend<Drivers52>();
    expectTypeOf<'preallocate'>().toExtend<
      CommandsFor<'6.0' | '7.2'>['blockdev-add']['args']['driver']
    >();
  });

  it('enums keep the values every version has', () => {
    expectTypeOf<'running'>().toExtend<RunState<'4.2' | '7.2'>>();
    expectTypeOf<RunState<QemuVersion>>().toExtend<string>();
  });

  it('marks out-of-band commands only when every version allows it', () => {
    expectTypeOf<Range['migrate-pause']['oob']>().toEqualTypeOf<true>();
  });
});
