/**
 * Doc comment parsing (`##` … `##` blocks).
 *
 * QEMU changed the doc comment rules after 7.2: 7.2 wants continuation lines aligned with
 * the text after `@member:` (and rejects anything less indented), upstream wants them
 * indented by any amount and ends a description at the first unindented line. 7.2 also has
 * `Note:`/`Example:` sections which upstream replaced by rST directives, and upstream added
 * `Errors:`. The indentation rules are those of the QEMU version being read (`aligned` for
 * 7.2, `indented` for 9.0 and later, see rules.ts); the structure (symbol line, section order,
 * duplicated or empty sections) is checked the same way for both.
 */
import { SchemaError } from '../errors.js';
import type { SourceLocation } from '../model/ir.js';
import type { QapiDoc, QapiDocSection } from './ast.js';
import type { QapiRules } from './rules.js';

type Indentation = QapiRules['docIndentation'];

/** A raw comment line as the lexer returns it (starting with `#`). */
export interface RawDocLine {
  readonly text: string;
  readonly loc: SourceLocation;
}

interface Line {
  readonly content: string;
  readonly indent: number;
  /** Location of the first content character (after `# `). */
  readonly loc: SourceLocation;
}

type SectionKind = QapiDocSection['kind'];

interface Building {
  readonly kind: SectionKind;
  readonly name?: string;
  readonly loc: SourceLocation;
  /** For member/feature/tagged sections, `lines[0]` is the text on the header line. */
  readonly lines: string[];
  readonly headerText: boolean;
  /**
   * How continuation lines are recognised: `indented` (upstream: any indentation),
   * `flush` (QEMU 7.2 style when the header line has no text: unindented lines continue).
   */
  mode: 'unset' | 'flush' | 'indented';
  pendingBlank: boolean;
  /** `aligned` rules: the column continuation lines must reach (the header text's), else 0. */
  readonly align: number;
}

const memberRe = /^@([^\s:]*):\s*(.*)$/;
const tagRe = /^(Returns|Errors|Since|Notes?|Examples?|TODO):(?!:)\s*(.*)$/;
const uniqueTags: ReadonlySet<string> = new Set(['Returns', 'Errors', 'Since']);

function toLines(raw: readonly RawDocLine[]): Line[] {
  return raw.map(({ text, loc }) => {
    if (text === '#') return { content: '', indent: 0, loc: { ...loc, col: loc.col + 1 } };
    if (text[1] !== ' ') throw new SchemaError(loc, 'missing space after #');
    const content = text.slice(2).trimEnd();
    const indent = content.length - content.trimStart().length;
    return { content, indent, loc: { ...loc, col: loc.col + 2 } };
  });
}

/** Removes the common indentation and surrounding blank lines. */
function dedent(lines: readonly string[]): string {
  let min = Number.POSITIVE_INFINITY;
  for (const line of lines) {
    if (line.trim() === '') continue;
    const indent = line.length - line.trimStart().length;
    if (indent < min) min = indent;
  }
  const cut = Number.isFinite(min) ? min : 0;
  return lines
    .map((line) => (line.trim() === '' ? '' : line.slice(cut)))
    .join('\n')
    .replace(/^\n+|\n+$/g, '');
}

function sectionText(section: Building): string {
  if (section.kind === 'plain') return dedent(section.lines);
  const [first = '', ...rest] = section.lines;
  const tail = dedent(rest);
  if (first === '') return tail;
  return tail === '' ? first : `${first}\n${tail}`;
}

function finish(section: Building): QapiDocSection {
  const text = sectionText(section);
  if (section.kind !== 'plain' && text === '') {
    const what = section.kind === 'tagged' ? `'${section.name}:'` : `'@${section.name}:'`;
    throw new SchemaError(section.loc, `text required after ${what}`);
  }
  return {
    kind: section.kind,
    ...(section.name !== undefined ? { name: section.name } : {}),
    text,
    loc: section.loc,
  };
}

function freeForm(open: SourceLocation, lines: readonly Line[]): QapiDoc[] {
  const docs: QapiDoc[] = [];
  let loc = open;
  let current: string[] = [];
  const flush = () => {
    docs.push({ loc, sections: [{ kind: 'plain', text: dedent(current), loc }] });
  };
  for (const line of lines) {
    const at = /^@\S+:/.exec(line.content);
    if (at) {
      throw new SchemaError(line.loc, `'${at[0]}' not allowed in free-form documentation`);
    }
    // QEMU 7.2 starts a new block at an `=` heading; upstream wants headings first.
    if (line.content.startsWith('=') && current.some((l) => l.trim() !== '')) {
      flush();
      loc = line.loc;
      current = [];
    }
    current.push(line.content);
  }
  flush();
  return docs;
}

function definition(
  open: SourceLocation,
  first: Line,
  rest: readonly Line[],
  indentation: Indentation,
): QapiDoc {
  if (!first.content.endsWith(':')) throw new SchemaError(first.loc, "line should end with ':'");
  const symbol = first.content.slice(1, -1);
  if (symbol === '') throw new SchemaError(first.loc, "name required after '@'");

  const body: Building = {
    kind: 'plain',
    loc: open,
    lines: [],
    headerText: false,
    mode: 'unset',
    pendingBlank: false,
    align: 0,
  };
  const sections: Building[] = [body];
  let cur: Building | undefined = body;
  const members = new Set<string>();
  const features = new Set<string>();
  const tags = new Set<string>();
  let membersStarted = false;
  let membersClosed = false;
  let featuresLine: SourceLocation | undefined;
  let featuresClosed = false;
  let expectFeature = false;

  const start = (
    kind: SectionKind,
    loc: SourceLocation,
    name?: string,
    text = '',
    header = '',
  ): void => {
    cur = {
      kind,
      loc,
      ...(name !== undefined ? { name } : {}),
      lines: kind === 'plain' ? [] : [text],
      headerText: text !== '',
      mode: 'unset',
      pendingBlank: false,
      // QEMU 7.2: "@name:   text" wants what follows aligned with `text`; a bare header, none.
      align: indentation === 'aligned' && text !== '' ? header.length - text.length : 0,
    };
    sections.push(cur);
  };
  const closeDescriptions = (): void => {
    if (membersStarted) membersClosed = true;
    if (featuresLine) featuresClosed = true;
  };
  const startPlain = (line: Line): void => {
    if (expectFeature && featuresLine) {
      throw new SchemaError(featuresLine, 'feature descriptions expected');
    }
    closeDescriptions();
    start('plain', line.loc);
    cur?.lines.push(line.content);
  };

  const deIndent = (line: Line, align: number): never => {
    throw new SchemaError(line.loc, `unexpected de-indent (expected at least ${align} spaces)`);
  };
  for (const line of rest) {
    const { content } = line;
    if (content === '') {
      if (cur) {
        cur.lines.push('');
        cur.pendingBlank = true;
      }
      continue;
    }
    if (line.indent > 0) {
      if (cur && line.indent < cur.align) deIndent(line, cur.align);
      if (cur) {
        if (cur.kind !== 'plain' && cur.mode === 'unset') cur.mode = 'indented';
        cur.lines.push(content);
        cur.pendingBlank = false;
      } else {
        startPlain(line);
      }
      continue;
    }

    const member = memberRe.exec(content);
    if (member) {
      const name = member[1] ?? '';
      const text = member[2] ?? '';
      if (name === '') throw new SchemaError(line.loc, 'invalid parameter name');
      if (featuresLine && !featuresClosed) {
        if (features.has(name))
          throw new SchemaError(line.loc, `'${name}' feature name duplicated`);
        features.add(name);
        expectFeature = false;
        start('feature', line.loc, name, text, content);
      } else {
        if (featuresLine || membersClosed) {
          throw new SchemaError(line.loc, `description of '@${name}:' follows a section`);
        }
        if (members.has(name))
          throw new SchemaError(line.loc, `'${name}' parameter name duplicated`);
        members.add(name);
        membersStarted = true;
        start('member', line.loc, name, text, content);
      }
      continue;
    }
    if (content === 'Features:') {
      if (featuresLine) throw new SchemaError(line.loc, "duplicated 'Features:' line");
      if (membersStarted) membersClosed = true;
      featuresLine = line.loc;
      expectFeature = true;
      cur = undefined;
      continue;
    }
    const tagged = tagRe.exec(content);
    if (tagged) {
      const tag = tagged[1] ?? '';
      if (expectFeature && featuresLine) {
        throw new SchemaError(featuresLine, 'feature descriptions expected');
      }
      if (uniqueTags.has(tag)) {
        if (tags.has(tag)) throw new SchemaError(line.loc, `duplicated '${tag}' section`);
        tags.add(tag);
      }
      closeDescriptions();
      membersClosed = true;
      start('tagged', line.loc, tag, tagged[2] ?? '', content);
      continue;
    }
    if (content.startsWith('=')) {
      throw new SchemaError(line.loc, "unexpected '=' markup in definition documentation");
    }
    // QEMU ≥ 9.0 (`indented`): an unindented line ends a member, feature or tagged section.
    const open: Building | undefined = cur;
    if (open && open.kind !== 'plain' && indentation === 'aligned') {
      // QEMU 7.2: after "@name: text", an unindented line is a de-indent, unless a blank line
      // ended a member description (then it starts the next paragraph of the body).
      if (open.align > 0 && !(open.pendingBlank && open.kind !== 'tagged'))
        deIndent(line, open.align);
      // A header without text takes unindented lines; a description stops at a blank line,
      // a tagged section (e.g. `Example:`) runs on to the next tag.
      const continues = !open.pendingBlank || open.kind === 'tagged';
      if (open.mode === 'unset' && !open.headerText && continues) open.mode = 'flush';
      if (open.mode === 'flush' && continues) {
        open.lines.push(content);
        open.pendingBlank = false;
        continue;
      }
    } else if (open?.kind === 'plain') {
      open.lines.push(content);
      open.pendingBlank = false;
      continue;
    }
    startPlain(line);
  }
  if (expectFeature && featuresLine) {
    throw new SchemaError(featuresLine, 'feature descriptions expected');
  }
  return { loc: open, symbol, sections: sections.map(finish) };
}

/**
 * Parses the lines between the opening and closing `##` of a doc comment. Returns one doc,
 * or several when a free-form block holds more than one `=` heading (QEMU 7.2 splits those).
 */
export function parseDocComment(
  open: SourceLocation,
  raw: readonly RawDocLine[],
  indentation: Indentation = 'indented',
): QapiDoc[] {
  const lines = toLines(raw);
  const [first, ...rest] = lines;
  if (first?.content.startsWith('@')) return [definition(open, first, rest, indentation)];
  return freeForm(open, lines);
}
