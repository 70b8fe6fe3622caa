/** Names for HMP completion, parsed from QEMU's own `help` and `help info` output. */

/**
 * Command names of `help` output lines such as `c|cont  -- resume emulation` or
 * `announce_self [interfaces] [id] -- …` (aliases included).
 */
export function parseHmpHelp(text: string): string[] {
  const names = new Set<string>();
  for (const raw of text.split(/\r?\n/)) {
    const match = /^([a-z_][\w-]*(?:\|[\w-]+)*)/i.exec(raw.trim());
    if (match) for (const name of match[1]!.split('|')) names.add(name);
  }
  return [...names].sort();
}

/** Topics of `help info` output lines (`info balloon  -- show balloon information`). */
export function parseHmpInfoHelp(text: string): string[] {
  const topics = new Set<string>();
  for (const raw of text.split(/\r?\n/)) {
    const match = /^info\s+([\w-]+)/.exec(raw.trim());
    if (match) topics.add(match[1]!);
  }
  return [...topics].sort();
}
