/**
 * Splits a shell line into words: whitespace separates words except inside quotes (`"…"` with
 * JSON escapes, `'…'` literal) and inside JSON brackets, so `key={"a": [1, 2]}` and
 * `key="two words"` are one word each. Quotes stay in the word; `parseValue` interprets them.
 */

export interface Token {
  readonly text: string;
  /** Offsets in the line: `line.slice(start, end) === text`. */
  readonly start: number;
  readonly end: number;
}

export interface Tokenized {
  readonly tokens: Token[];
  /** The last word has an open quote or bracket (the line is incomplete). */
  readonly open: boolean;
  /** The line ends in whitespace (a new, empty word is being started). */
  readonly trailingSpace: boolean;
}

export function tokenize(line: string): Tokenized {
  const tokens: Token[] = [];
  let i = 0;
  let open = false;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length) break;
    const start = i;
    let depth = 0;
    let quote: '"' | "'" | undefined;
    for (; i < line.length; i++) {
      const ch = line[i]!;
      if (quote !== undefined) {
        if (quote === '"' && ch === '\\') i++;
        else if (ch === quote) quote = undefined;
        continue;
      }
      if (ch === '"' || ch === "'") quote = ch;
      else if (ch === '{' || ch === '[') depth++;
      else if ((ch === '}' || ch === ']') && depth > 0) depth--;
      else if (depth === 0 && /\s/.test(ch)) break;
    }
    const end = Math.min(i, line.length);
    open = quote !== undefined || depth > 0;
    tokens.push({ text: line.slice(start, end), start, end });
  }
  const trailingSpace = line.length > 0 && /\s/.test(line[line.length - 1]!) && !open;
  return { tokens, open, trailingSpace };
}
