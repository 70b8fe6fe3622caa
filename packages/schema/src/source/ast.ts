/**
 * The raw result of reading QAPI source files: JSON-ish values with source locations,
 * doc comment blocks, include and pragma directives. No semantic checks have run yet
 * (see `check.ts` and `lower.ts` for those).
 */
import type { Pragmas, SourceLocation } from '../model/ir.js';
import type { QapiRules } from './rules.js';

export interface QapiString {
  readonly kind: 'string';
  readonly value: string;
  readonly loc: SourceLocation;
}

export interface QapiBool {
  readonly kind: 'bool';
  readonly value: boolean;
  readonly loc: SourceLocation;
}

export interface QapiArray {
  readonly kind: 'array';
  readonly items: readonly QapiValue[];
  readonly loc: SourceLocation;
}

export interface QapiEntry {
  readonly key: string;
  readonly keyLoc: SourceLocation;
  readonly value: QapiValue;
}

export interface QapiObject {
  readonly kind: 'object';
  /** Entries in source order; keys are unique (duplicates are a parse error). */
  readonly entries: readonly QapiEntry[];
  readonly byKey: ReadonlyMap<string, QapiEntry>;
  readonly loc: SourceLocation;
}

export type QapiValue = QapiString | QapiBool | QapiArray | QapiObject;

/** One section of a doc comment block. */
export interface QapiDocSection {
  /**
   * `plain`: untagged text (the first section of every block is the plain body, possibly
   * empty); `member`: `@name:` description; `feature`: `@name:` after `Features:`;
   * `tagged`: `Returns:`, `Errors:`, `Since:`, `Note:`/`Notes:`, `Example:`/`Examples:`,
   * `TODO:`.
   */
  readonly kind: 'plain' | 'member' | 'feature' | 'tagged';
  /** Member or feature name, or the tag without the colon (e.g. `Since`). */
  readonly name?: string;
  /** Text with the comment markers and common indentation removed, trimmed. */
  readonly text: string;
  readonly loc: SourceLocation;
}

/** A `##` … `##` doc comment block. */
export interface QapiDoc {
  /** Location of the opening `##`. */
  readonly loc: SourceLocation;
  /** The documented definition (`@Name:` first line); absent for free-form blocks. */
  readonly symbol?: string;
  /** All sections in source order; `sections[0]` is the plain body. */
  readonly sections: readonly QapiDocSection[];
}

/** A source file read while parsing, in include order. */
export interface QapiSourceFile {
  /** Path as used to open it: the main file as given, includes joined to their includer's directory. */
  readonly path: string;
  /** Module name: path relative to the main file's directory, without `.json`. */
  readonly module: string;
  /** Where it was included from; absent for the main file. */
  readonly includedFrom?: SourceLocation;
}

export interface QapiDefinitionExpr {
  readonly kind: 'definition';
  readonly value: QapiObject;
  readonly loc: SourceLocation;
  readonly module: string;
  /** The definition doc block directly preceding the expression, if any. */
  readonly doc?: QapiDoc;
}

export interface QapiIncludeExpr {
  readonly kind: 'include';
  /** The include path as written. */
  readonly include: string;
  /** The path it resolves to (joined to the including file's directory). */
  readonly path: string;
  readonly loc: SourceLocation;
  /** False when the file had been included before and was skipped (include-once). */
  readonly loaded: boolean;
}

export interface QapiPragmaExpr {
  readonly kind: 'pragma';
  readonly value: QapiObject;
  readonly loc: SourceLocation;
}

export type QapiExpression = QapiDefinitionExpr | QapiIncludeExpr | QapiPragmaExpr;

/** Everything `parseQapiFile` read: expressions of all files flattened in include order. */
export interface ParsedSchema {
  readonly mainFile: string;
  readonly files: readonly QapiSourceFile[];
  readonly expressions: readonly QapiExpression[];
  /** All doc blocks (definition and free-form) in source order. */
  readonly docs: readonly QapiDoc[];
  /** Pragma values in effect after reading everything (QEMU's pragmas are global). */
  readonly pragmas: Pragmas;
  /** sha256 (hex) over the contents of all files in include order. */
  readonly sha256: string;
  /** The QAPI rules the schema was read with and is checked with (`ReadOptions.qemuVersion`). */
  readonly rules: QapiRules;
}

export interface ReadOptions {
  /**
   * The QEMU version (`7.2`, `10.0`) whose QAPI rules apply: QEMU's generator accepted
   * different schemas over time (see `qapiRulesFor`). Default: the newest rules.
   */
  readonly qemuVersion?: string;
  /**
   * Reads a file as text. Defaults to reading UTF-8 from disk. Throwing an error with a
   * Node-style `code` (e.g. `ENOENT`) produces a QEMU-like message.
   */
  readonly readFile?: (path: string) => string;
}
