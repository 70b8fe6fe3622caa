/**
 * The range maps on a hand-made two-version schema (no generated code): what the merged view's
 * `CommandsFor`/`EventsFor`/`ReturnsIn`/`DataIn` instantiate.
 */
import { describe, expectTypeOf, it } from 'vitest';
import type { RangeCommands, RangeData, RangeEvents, RangeReturns } from './ranges.js';

type V = '1.0' | '2.0';
interface Maps {
  '1.0': {
    commands: {
      stop: { args: undefined; returns: Record<string, never> };
      old: { args: undefined; returns: number };
      stat: { args: undefined; returns: { a: number } };
    };
    events: { STOP: { data: undefined }; OLD: { data: { n: number } } };
  };
  '2.0': {
    commands: {
      stop: { args: undefined; returns: Record<string, never>; oob: true };
      stat: { args: undefined; returns: { a: number; b: string } };
    };
    events: { STOP: { data: undefined }; NEW: { data: { s: string } } };
  };
}
interface Merged {
  stop: { in: V; args: undefined; oob: '2.0' };
  old: { in: '1.0'; args: undefined; oob: never };
  stat: { in: V; args: undefined; oob: never };
}
interface EventVersions {
  STOP: V;
  OLD: '1.0';
  NEW: '2.0';
}
type CommandsFor<W extends V> = RangeCommands<Maps, W, Merged>;
type EventsFor<W extends V> = RangeEvents<Maps, W, EventVersions>;

describe('range maps', () => {
  it('one version gives its exact maps', () => {
    expectTypeOf<CommandsFor<'1.0'>>().toEqualTypeOf<Maps['1.0']['commands']>();
    expectTypeOf<EventsFor<'2.0'>>().toEqualTypeOf<Maps['2.0']['events']>();
  });

  it('a range keeps the commands every version has, with the union of returns', () => {
    expectTypeOf<keyof CommandsFor<V>>().toEqualTypeOf<'stop' | 'stat'>();
    expectTypeOf<CommandsFor<V>['stat']['returns']>().toEqualTypeOf<
      { a: number } | { a: number; b: string }
    >();
    expectTypeOf<RangeReturns<Maps, V, 'old'>>().toEqualTypeOf<number>();
  });

  it('oob only where every version of the range allows it', () => {
    expectTypeOf<CommandsFor<V>['stop']>().not.toHaveProperty('oob');
    expectTypeOf<CommandsFor<'2.0'>['stop']['oob']>().toEqualTypeOf<true>();
  });

  it('a range has the events any version may send, with the union of data', () => {
    expectTypeOf<keyof EventsFor<V>>().toEqualTypeOf<'STOP' | 'OLD' | 'NEW'>();
    expectTypeOf<EventsFor<V>['OLD']['data']>().toEqualTypeOf<{ n: number }>();
    expectTypeOf<RangeData<Maps, V, 'NEW'>>().toEqualTypeOf<{ s: string }>();
  });
});
