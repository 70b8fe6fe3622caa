/**
 * Pure parsers for apt's text output: Debian control records (`apt-cache show`), dependency
 * fields and `apt-cache policy`. No I/O, so they are unit-tested on captured text.
 */

/** One paragraph of a control file: field name → value (continuation lines joined by `\n`). */
export type ControlRecord = Readonly<Record<string, string>>;

/** Splits control text into paragraphs; field names keep their case. */
export function parseControl(text: string): ControlRecord[] {
  const records: Record<string, string>[] = [];
  let current: Record<string, string> | undefined;
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      current = undefined;
      last = undefined;
      continue;
    }
    if ((line.startsWith(' ') || line.startsWith('\t')) && current && last) {
      current[last] = `${current[last]}\n${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    if (!current) {
      current = {};
      records.push(current);
    }
    last = line.slice(0, colon);
    current[last] = line.slice(colon + 1).trim();
  }
  return records;
}

/**
 * Parses a `Depends:`-style field into groups of alternatives, names only:
 * `libc6 (>= 2.34), a | b:any` → `[['libc6'], ['a', 'b']]`.
 */
export function parseDepends(field: string | undefined): string[][] {
  if (!field) return [];
  return field
    .split(',')
    .map((group) =>
      group
        .split('|')
        .map((alt) => alt.trim().split(/[\s([]/)[0] ?? '')
        .map((name) => name.replace(/:(any|native)$/, ''))
        .filter((name) => name !== ''),
    )
    .filter((group) => group.length > 0);
}

/** `apt-cache policy a b` → candidate version per package (`undefined` for `(none)`). */
export function parsePolicy(text: string): Map<string, string | undefined> {
  const result = new Map<string, string | undefined>();
  let name: string | undefined;
  for (const line of text.split('\n')) {
    const header = /^(\S+):$/.exec(line);
    if (header?.[1]) {
      name = header[1];
      result.set(name, undefined);
      continue;
    }
    const candidate = /^\s+Candidate:\s*(\S+)/.exec(line);
    if (candidate?.[1] && name)
      result.set(name, candidate[1] === '(none)' ? undefined : candidate[1]);
  }
  return result;
}

/** The file name `apt-get download` gives a package (the epoch's `:` is written `%3a`). */
export function downloadFileName(name: string, version: string, architecture: string): string {
  return `${name}_${version.replace(/:/g, '%3a')}_${architecture}.deb`;
}
