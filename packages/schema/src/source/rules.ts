/**
 * The QAPI language changed under QEMU's own generator: a schema that QEMU 7.2 builds may be
 * rejected by a later QEMU, and the reverse. A schema is checked with the rules of the QEMU
 * version it belongs to (`ReadOptions.qemuVersion`); without a version, the newest rules apply.
 *
 * Two changes matter for the schemas we read (both checked against the real 7.2 and 10.0
 * sources; the release in between that made each change is taken from when QEMU merged it):
 * - conditional command/event arguments need `'boxed': true` (QEMU 8.1; 7.2 accepts them);
 * - doc comment indentation: QEMU 7.2 aligns continuation lines with the text after
 *   `@member:` or `Tag:` (a line less indented is "unexpected de-indent", a header without text
 *   takes unindented lines); from 9.0 a continuation is indented by any amount and the first
 *   unindented line ends the section.
 */
import { SchemaError } from '../errors.js';

export interface QapiRules {
  /** The QEMU version (`major.minor`) whose rules these are, or `newest`. */
  readonly version: string;
  /** `'boxed': true` is required for command or event arguments with an `if`. */
  readonly conditionalArgumentsNeedBoxed: boolean;
  /** `aligned`: QEMU ≤ 8.2 doc comments; `indented`: QEMU ≥ 9.0. */
  readonly docIndentation: 'aligned' | 'indented';
}

const atLeast = (version: readonly [number, number], major: number, minor: number): boolean =>
  version[0] > major || (version[0] === major && version[1] >= minor);

/** The rules of QEMU `major.minor` (`7.2`, `10.0`); the newest rules when omitted. */
export function qapiRulesFor(qemuVersion?: string): QapiRules {
  if (qemuVersion === undefined)
    return { version: 'newest', conditionalArgumentsNeedBoxed: true, docIndentation: 'indented' };
  const match = /^(\d+)\.(\d+)(?:\.\d+)?$/.exec(qemuVersion);
  if (!match)
    throw new SchemaError(
      { file: 'qemuVersion option' },
      `not a QEMU version: '${qemuVersion}' (expected major.minor, e.g. 7.2)`,
    );
  const version = [Number(match[1]), Number(match[2])] as const;
  return {
    version: `${version[0]}.${version[1]}`,
    conditionalArgumentsNeedBoxed: atLeast(version, 8, 1),
    docIndentation: atLeast(version, 9, 0) ? 'indented' : 'aligned',
  };
}
