import { describe, expect, it } from 'vitest';
import { isSchemaError } from '../errors.js';
import type { Schema } from '../model/ir.js';
import type { QapiDoc } from './ast.js';
import { loadQapiSource, parseQapiFile } from './index.js';

const readFile = (text: string) => ({ readFile: () => text });
/** Checked with the newest rules, or those of `qemuVersion`. */
const load = (text: string, qemuVersion?: string): Schema =>
  loadQapiSource('d.json', { ...readFile(text), ...(qemuVersion ? { qemuVersion } : {}) });
const docsOf = (text: string): readonly QapiDoc[] => parseQapiFile('d.json', readFile(text)).docs;

function message(text: string, qemuVersion?: string): string {
  try {
    load(text, qemuVersion);
  } catch (err) {
    if (isSchemaError(err)) return err.message;
    throw err;
  }
  throw new Error('accepted');
}

/** A struct `Thing` with members a and b, documented by `doc` (the lines between the `##`). */
function struct(doc: string, extra = ''): string {
  const lines = doc.split('\n').map((l) => (l === '' ? '#' : `# ${l}`));
  return `##\n# @Thing:\n${lines.join('\n')}\n##\n{ 'struct': 'Thing', 'data': { 'a': 'int', '*b': 'str' }${extra} }\n`;
}

function memberDocs(schema: Schema): (string | undefined)[] {
  const def = schema.types.get('Thing');
  return def?.kind === 'struct' ? def.members.map((m) => m.doc) : [];
}

describe('doc comments: the indentation rules of the QEMU version checked', () => {
  it('accepts upstream continuation indentation; checked as 7.2 it is an unexpected de-indent', () => {
    const text = struct('@a: first line\n  continued\n\n@b: other');
    expect(memberDocs(load(text))).toEqual(['first line\ncontinued', 'other']);
    expect(memberDocs(load(text, '10.0'))).toEqual(['first line\ncontinued', 'other']);
    expect(message(text, '7.2')).toBe(
      'd.json:4:3: unexpected de-indent (expected at least 4 spaces)',
    );
    // An unindented line right after "@a: text" is a de-indent in 7.2 too.
    expect(message(struct('@a: first line\ncontinued\n@b: other'), '7.2')).toBe(
      'd.json:4:3: unexpected de-indent (expected at least 4 spaces)',
    );
  });

  it('accepts QEMU 7.2 aligned continuation lines under both rule sets', () => {
    const text = struct('@a: first line\n    continued\n        further\n@b: other');
    for (const version of [undefined, '7.2'])
      expect(memberDocs(load(text, version))).toEqual([
        'first line\ncontinued\n    further',
        'other',
      ]);
  });

  it('takes a description that starts on the next, unindented line only as 7.2', () => {
    const text = struct('@a:\ntext of a\nmore of a\n@b: other');
    expect(memberDocs(load(text, '7.2'))).toEqual(['text of a\nmore of a', 'other']);
    // From 9.0 the unindented line ends the empty description.
    expect(() => load(text, '10.0')).toThrow(/d\.json:\d+:\d+: /);
  });

  it('ends an upstream description at an unindented line and keeps that as text', () => {
    const schema = load(struct('Intro.\n\n@a: text\n@b: other\nAfterwards.\n\nSince: 1.0'));
    expect(memberDocs(schema)).toEqual(['text', 'other']);
    expect(schema.types.get('Thing')?.doc).toEqual({
      text: 'Intro.\n\nAfterwards.',
      sections: [{ tag: 'Since', text: '1.0' }],
      since: '1.0',
    });
  });

  it('runs a QEMU 7.2 Example section across blank lines up to the next tag', () => {
    const schema = load(struct('Example:\n\n-> one\n<- two\n\n-> three\n\nTODO: more'), '7.2');
    expect(schema.types.get('Thing')?.doc?.sections).toEqual([
      { tag: 'Example', text: '-> one\n<- two\n\n-> three' },
      { tag: 'TODO', text: 'more' },
    ]);
  });

  it('knows Note/Notes/Example/Examples/TODO (7.2) and Errors (upstream); `Tag::` stays text', () => {
    const schema = load(
      `##\n# @c:\n#\n# Notes:: not a tag\n#\n# Note: n\n#\n# Examples: e\n#\n# Errors: x\n#\n# Returns: r\n##\n{ 'command': 'c', 'returns': 'Thing' }\n${struct('')}`,
    );
    expect(schema.commands.get('c')?.doc).toEqual({
      text: 'Notes:: not a tag',
      sections: [
        { tag: 'Note', text: 'n' },
        { tag: 'Examples', text: 'e' },
        { tag: 'Errors', text: 'x' },
        { tag: 'Returns', text: 'r' },
      ],
    });
  });

  it("accepts 'Returns:' on a command without 'returns' (QEMU 7.2 did)", () => {
    expect(load("##\n# @c:\n#\n# Returns: nothing\n##\n{ 'command': 'c' }").commands.has('c')).toBe(
      true,
    );
  });

  it("rejects 'Errors:' outside commands", () => {
    expect(message(struct('Errors: none'))).toBe(
      "d.json:3:3: 'Errors' section is only valid for commands",
    );
  });

  it('treats an indented @name: as text', () => {
    const schema = load(struct('@a: text\n    @b: is part of a'));
    expect(memberDocs(schema)).toEqual(['text\n@b: is part of a', undefined]);
  });

  it('documents features of members and enum values', () => {
    const schema = load(
      "##\n# @Colour:\n#\n# @v: value\n#\n# Features:\n#\n# @shiny: a feature\n##\n{ 'enum': 'Colour', 'data': [ { 'name': 'v', 'features': [ 'shiny' ] } ] }",
    );
    const def = schema.types.get('Colour');
    expect(def?.kind === 'enum' && def.values[0]).toEqual({
      name: 'v',
      features: [{ name: 'shiny', doc: 'a feature' }],
      doc: 'value',
    });
  });

  it("rejects documenting a named base's members in a union doc, like QEMU", () => {
    const text =
      "{ 'enum': 'Kinds', 'data': [ 'x' ] }\n{ 'struct': 'Base', 'data': { 'k': 'Kinds' } }\n{ 'struct': 'Xy', 'data': {} }\n" +
      "##\n# @Un:\n#\n# @k: the kind\n##\n{ 'union': 'Un', 'base': 'Base', 'discriminator': 'k', 'data': { 'x': 'Xy' } }";
    expect(message(text)).toBe("d.json:7:3: documented member 'k' does not exist");
  });

  it("documents a legacy simple union's branches", () => {
    const schema = load(
      "##\n# @Val:\n#\n# @s: a string\n##\n{ 'union': 'Val', 'data': { 's': 'str' } }",
    );
    const kind = schema.types.get('ValKind');
    expect(kind?.kind === 'enum' && kind.values[0]?.doc).toBe('a string');
  });

  it('splits a free-form block at a second = heading, like QEMU 7.2', () => {
    const docs = docsOf('##\n# = One\n#\n# Text.\n#\n# == Two\n##\n');
    expect(docs.map((d) => [d.loc.line, d.sections[0]?.text])).toEqual([
      [1, '= One\n\nText.\n'.trim()],
      [6, '== Two'],
    ]);
  });

  it("checks 'Features:' structure", () => {
    expect(message(struct('Features:\n@f: x\n\nFeatures:\n@g: y'))).toBe(
      "d.json:6:3: duplicated 'Features:' line",
    );
    expect(message(struct('Features:\n@f: x\n\nText.\n\n@g: y'))).toBe(
      "d.json:8:3: description of '@g:' follows a section",
    );
    expect(message(struct('Features:\n@f: x', ", 'features': [ 'f', 'g' ]"))).toBe(
      "d.json:6:78: feature 'g' lacks documentation",
    );
  });

  it('rejects an empty member description and an empty name', () => {
    expect(message(struct('@a:\n\n@b: x'))).toBe("d.json:3:3: text required after '@a:'");
    expect(message(struct('@: x'))).toBe('d.json:3:3: invalid parameter name');
    expect(message('##\n# @:\n##\n')).toBe("d.json:2:3: name required after '@'");
  });

  it("rejects junk after the closing '##'", () => {
    expect(message('##\n# @Thing:\n## end\n')).toBe(
      "d.json:3:1: junk after '##' at end of documentation comment",
    );
  });
});
