/**
 * Shell history on disk: `$XDG_STATE_HOME/qmpkit/` (default `~/.local/state/qmpkit/`), one
 * file per mode, bounded to the newest `size` lines, written atomically (temp file + rename)
 * with mode 0600 in a 0700 directory — commands can carry secrets (`object-add` passwords).
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

export const DEFAULT_HISTORY_SIZE = 1000;

export function stateDir(env: Readonly<Record<string, string | undefined>>): string {
  const xdg = env.XDG_STATE_HOME;
  const base =
    xdg && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || homedir(), '.local', 'state');
  return path.join(base, 'qmpkit');
}

export function historyFile(
  env: Readonly<Record<string, string | undefined>>,
  mode: 'qmp' | 'hmp',
): string {
  return path.join(stateDir(env), mode === 'hmp' ? 'hmp-history' : 'history');
}

/** Lines newest first (readline's order); a missing or unreadable file is an empty history. */
export function loadHistory(file: string, size = DEFAULT_HISTORY_SIZE): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(-size)
    .reverse();
}

/** Writes `lines` (newest first) as the history file, oldest line first, at most `size`. */
export function saveHistory(
  file: string,
  lines: readonly string[],
  size = DEFAULT_HISTORY_SIZE,
): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // Completion leaves a trailing space; `a ` and `a` are one entry on disk.
  const seen = new Set<string>();
  const kept = lines
    .map((line) => line.trimEnd())
    .filter((line) => line !== '' && !seen.has(line) && seen.add(line))
    .slice(0, size)
    .reverse();
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, kept.length > 0 ? `${kept.join('\n')}\n` : '', { mode: 0o600 });
  renameSync(temp, file);
}
