/**
 * Type-level helpers of the merged (multi-version) view. A merged type is generic over a set
 * of QEMU versions `V` (a union of version strings) and describes what *every* version in `V`
 * accepts — the meet of the versions' types — so a client typed for a range of versions only
 * compiles what all of them understand.
 *
 * Generated merged types describe each member with the versions that have it (`in`) and the
 * versions where it is required (`req`, a subset of `in`), e.g.
 * `{ 'node-name': { in: '4.2' | '8.0'; req: never; t: string } }`.
 */

/** One member of a merged object type. */
export interface MergedMember {
  /** Versions that have the member. */
  readonly in: string;
  /** Versions where the member is required. */
  readonly req: string;
  /** The member's type (already the meet over the versions that have it). */
  readonly t: unknown;
}

/** The values of an object type, as a union. */
export type ValuesOf<T> = T[keyof T];

/** True when the version set `V` is a single version, not a union. */
export type IsSingleVersion<V, All = V> = V extends unknown
  ? [All] extends [V]
    ? true
    : false
  : never;

/** Members every version of `V` has. */
type Shared<V, M extends Record<string, MergedMember>> = {
  [K in keyof M]: [V] extends [M[K]['in']] ? K : never;
}[keyof M];

/** Members some version of `V` requires. */
type RequiredSomewhere<V, M extends Record<string, MergedMember>> = {
  [K in keyof M]: [Extract<V, M[K]['req']>] extends [never] ? never : K;
}[keyof M];

/**
 * The meet of an object type over `V`: members all versions of `V` have; required when some
 * version requires it; `never` when some version of `V` requires a member another lacks
 * (no value satisfies both).
 */
export type MeetObject<V, M extends Record<string, MergedMember>> = [
  Exclude<RequiredSomewhere<V, M>, Shared<V, M>>,
] extends [never]
  ? { [K in Shared<V, M> & RequiredSomewhere<V, M> & keyof M]: M[K]['t'] } & {
      [K in Exclude<Shared<V, M>, RequiredSomewhere<V, M>> & keyof M]?: M[K]['t'];
    }
  : never;

/** The meet of an enum over `V`: the values every version of `V` has. */
export type MeetEnum<V, M extends Record<string, string>> = {
  [K in keyof M]: [V] extends [M[K]] ? K : never;
}[keyof M] &
  string;

/** One branch of a merged union: the versions that have it and its own members' type. */
export interface MergedBranch {
  readonly in: string;
  readonly t: unknown;
}

/**
 * The meet of a flat union over `V`: the branches every version of `V` has, each the base
 * (without the discriminator) plus the discriminator literal plus the branch's members.
 */
export type MeetUnion<
  V,
  Tag extends string,
  Base,
  Branches extends Record<string, MergedBranch>,
> = ValuesOf<{
  [C in keyof Branches as [V] extends [Branches[C]['in']] ? C : never]: Base & {
    [P in Tag]: C;
  } & Branches[C]['t'];
}>;

/** The meet of an alternate over `V`: the alternatives every version of `V` has. */
export type MeetAlternate<V, Alternatives extends Record<string, MergedBranch>> = ValuesOf<{
  [A in keyof Alternatives as [V] extends [Alternatives[A]['in']]
    ? A
    : never]: Alternatives[A]['t'];
}>;
