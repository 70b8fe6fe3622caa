/**
 * QAPI naming rules (see QEMU's docs/devel/qapi-code-gen.rst, "Naming rules and reserved
 * names"): letters, digits, `-` and `_`, starting with a letter, optionally prefixed by a
 * downstream `__RFQDN_` prefix and/or `x-`; the `q_` namespace is reserved.
 */

// group 1: downstream prefix, group 2: experimental prefix, group 3: stem
const validName = /^(__[a-z0-9.-]+_)?(x-)?([a-z][a-z0-9_-]*)$/i;

/**
 * The C identifier QEMU derives from a QAPI name (without keyword protection). Two members
 * clash when these are equal, e.g. `foo-bar` and `foo_bar`.
 */
export function cName(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_');
}

/** Returns the stem of a valid name, or `undefined` when the name is invalid. */
export function nameStem(name: string): string | undefined {
  const match = validName.exec(name);
  if (!match || cName(name).startsWith('q_')) return undefined;
  return match[3];
}

export type NameProblem = 'invalid' | 'lower' | 'upper' | 'camel';

/** Member, command, enum value, alternative and feature-less names: lower case, no `_`. */
export function checkLowerName(
  name: string,
  permitUpper = false,
  permitUnderscore = false,
): NameProblem | undefined {
  const stem = nameStem(name);
  if (stem === undefined) return 'invalid';
  if ((!permitUpper && /[A-Z]/.test(stem)) || (!permitUnderscore && stem.includes('_'))) {
    return 'lower';
  }
  return undefined;
}

/** Event names: upper case, no `-`. */
export function checkUpperName(name: string): NameProblem | undefined {
  const stem = nameStem(name);
  if (stem === undefined) return 'invalid';
  if (/[a-z-]/.test(stem)) return 'upper';
  return undefined;
}

/** Type names: CamelCase. */
export function checkCamelName(name: string): NameProblem | undefined {
  const stem = nameStem(name);
  if (stem === undefined) return 'invalid';
  if (!/^[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$/.test(stem)) return 'camel';
  return undefined;
}

/** `if` leaves are configuration symbols such as `CONFIG_SPICE`. */
export function isConfigSymbol(name: string): boolean {
  return /^[A-Z][A-Z0-9_]*$/.test(name);
}
