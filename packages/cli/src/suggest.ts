/**
 * "Did you mean …?" for command names, argument keys, event names and enum values:
 * optimal-string-alignment distance (Levenshtein plus adjacent transpositions), with prefix
 * matches ranked first, since QMP names are long and a name typed halfway is the common case.
 * Hand-written on purpose: `fastest-levenshtein` (the well-kept choice) counts a swap of two
 * letters as two edits, so `qeury-status` would score like a two-letter change.
 */

/** Edit distance counting insertions, deletions, substitutions and adjacent swaps. */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(
        d[(i - 1) * cols + j]! + 1,
        d[i * cols + j - 1]! + 1,
        d[(i - 1) * cols + j - 1]! + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[(i - 2) * cols + j - 2]! + 1);
      d[i * cols + j] = best;
    }
  }
  return d[rows * cols - 1]!;
}

/**
 * Up to `max` candidates close to `word`, best first; empty when nothing is close. Ranking:
 * names the word is a prefix of (what a person who stopped typing meant: `query-st` →
 * `query-status`), then edit distance, then names containing the word. The word itself is
 * never suggested. `_` and `-` are treated alike (QMP mixes `device_add` and `blockdev-add`).
 */
export function suggest(word: string, candidates: Iterable<string>, max = 3): string[] {
  const norm = (s: string) => s.toLowerCase().replaceAll('_', '-');
  const w = norm(word);
  if (w === '') return [];
  const limit = Math.max(1, Math.min(3, Math.floor(w.length / 3)));
  const scored: { name: string; score: number }[] = [];
  for (const name of candidates) {
    if (name === word) continue;
    const n = norm(name);
    if (n === w) {
      // The same name in another spelling (`device-add` for `device_add`).
      scored.push({ name, score: -2 });
      continue;
    }
    if (w.length >= 3 && n.startsWith(w)) {
      scored.push({ name, score: -1 });
      continue;
    }
    const distance = editDistance(w, n);
    if (distance <= limit) scored.push({ name, score: distance });
    else if (w.length >= 4 && n.includes(w)) scored.push({ name, score: limit + 0.75 });
  }
  // Ties: a name as long as the word first (swapped letters keep the length), then shorter.
  const gap = (name: string) => Math.abs(name.length - word.length);
  scored.sort(
    (x, y) =>
      x.score - y.score ||
      gap(x.name) - gap(y.name) ||
      x.name.length - y.name.length ||
      (x.name < y.name ? -1 : 1),
  );
  // A word that starts real names was typed halfway: far-off edit-distance guesses only add noise.
  const best = scored.some((s) => s.score < 0) ? scored.filter((s) => s.score < 0) : scored;
  return best.slice(0, max).map((s) => s.name);
}

/** `did you mean query-status?` / `did you mean a, b or c?`, or `''`. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const found = suggest(word, candidates);
  if (found.length === 0) return '';
  if (found.length === 1) return `did you mean ${found[0]}?`;
  return `did you mean ${found.slice(0, -1).join(', ')} or ${found.at(-1)}?`;
}
