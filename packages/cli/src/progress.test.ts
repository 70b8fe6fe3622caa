/**
 * Progress output reaches 100% when the work completes (issue #12 §4: the bar ended at "1%",
 * piped output never said 100%): the last progress report is short of the total by
 * construction here, as it is when a job concludes between two polls.
 */
import { PassThrough } from 'node:stream';
import { expect, it } from 'vitest';
import { recordingIo } from './cli.test-support.js';
import { progressView } from './commands/snapshot.js';
import { createProgress } from './progress.js';

/** A stderr that says it is a terminal and records what is drawn. */
function terminalIo() {
  const stderr = Object.assign(new PassThrough(), {
    isTTY: true,
    columns: 100,
    // Cursor movement is not recorded; only the text drawn matters here.
    cursorTo: () => true,
    moveCursor: () => true,
    clearLine: () => true,
    clearScreenDown: () => true,
  });
  let drawn = '';
  stderr.on('data', (chunk: Buffer) => {
    drawn += chunk.toString('utf8');
  });
  return { io: { ...recordingIo(), stderr }, drawn: () => drawn };
}

it('the bar is drawn full when the work finishes after a last report of 1%', () => {
  const { io, drawn } = terminalIo();
  const bar = createProgress(io, { label: 'snapshot-save' });
  bar.update(1, 100);
  bar.status('concluded');
  bar.finish();
  expect(drawn()).toContain('100%');
  const last = drawn().split('%').at(-2) ?? '';
  expect(last.endsWith('100')).toBe(true);
});

it('piped progress (no terminal) prints a 100% line once when the work finishes', () => {
  const io = recordingIo();
  const view = progressView(io, 'save s1');
  const at = (bytes: number) => ({
    phase: 'save' as const,
    bytes,
    totalBytes: 1000,
    percent: bytes / 10,
    elapsedMs: 0,
  });
  view.update(at(100));
  view.update(at(600));
  view.update(at(990));
  view.finish();
  view.finish();
  const lines = io.err().trimEnd().split('\n');
  expect(lines.at(-1)).toMatch(/^save s1: save 100% /);
  expect(lines.filter((l) => l.includes('100%'))).toHaveLength(1);
});
