/**
 * Stable, readable names for implicit types: owner + role. Both schema readers use these
 * rules so the two IRs of one QEMU version name implicit types identically.
 */

/** `blockdev-add` → `BlockdevAdd`, `BLOCK_JOB_COMPLETED` → `BlockJobCompleted`, `__com.redhat_x` → `ComRedhatX`. */
export function pascalCase(name: string): string {
  return name
    .split(/[-_.]+/)
    .filter((part) => part.length > 0)
    .map((part) => {
      const word = part === part.toUpperCase() ? part.toLowerCase() : part;
      return word.charAt(0).toUpperCase() + word.slice(1);
    })
    .join('');
}

export const implicitNames = {
  /** Arguments of a command with inline `data`. */
  commandArguments: (command: string) => `${pascalCase(command)}Arguments`,
  /** A masked return type of a command (introspection), or its array element. */
  commandResult: (command: string) => `${pascalCase(command)}Result`,
  /** Data of an event with inline `data`. */
  eventData: (event: string) => `${pascalCase(event)}Event`,
  /** Inline base of a union. */
  unionBase: (union: string) => `${union}Base`,
  /** Implicit discriminator enum of a legacy simple union. */
  simpleUnionKind: (union: string) => `${union}Kind`,
  /** Wrapper struct `{ data: T }` of a legacy simple union branch. */
  simpleUnionWrapper: (union: string, branch: string) => `${union}${pascalCase(branch)}Wrapper`,
  /** A masked branch type of a union (introspection). */
  unionBranch: (union: string, branch: string) => `${union}${pascalCase(branch)}`,
  /** A masked member type (introspection). */
  memberType: (owner: string, member: string) => `${owner}${pascalCase(member)}`,
  /** A masked alternative type of an alternate (introspection), named by its JSON kind. */
  alternative: (alternate: string, jsonKind: string) => `${alternate}${pascalCase(jsonKind)}`,
} as const;
