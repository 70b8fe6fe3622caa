/** Output helpers of `qmpkit demo`: section headings, steps, and a plain text table. */
import type { CliIo } from '../io.js';
import { painter, wantsColor } from '../io.js';

export interface Report {
  section(title: string): void;
  step(text: string): void;
  detail(text: string): void;
  table(headers: readonly string[], rows: readonly (readonly string[])[]): void;
  warn(text: string): void;
}

export function createReport(io: CliIo): Report {
  const paint = painter(wantsColor(io.stdout, io.env));
  const write = (text: string) => io.stdout.write(`${text}\n`);
  return {
    section: (title) => write(`\n${paint('bold', `== ${title}`)}`),
    step: (text) => write(`${paint('green', '✓')} ${text}`),
    detail: (text) => write(`  ${paint('dim', text)}`),
    warn: (text) => write(`${paint('yellow', '!')} ${text}`),
    table(headers, rows) {
      const widths = headers.map((h, i) =>
        Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)),
      );
      const line = (cells: readonly string[]) =>
        cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
      write(paint('bold', line(headers)));
      for (const row of rows) write(line(row));
    },
  };
}

export const ms = (value: number | undefined): string =>
  value === undefined ? '–' : `${value.toFixed(0)} ms`;

export const bytes = (value: number | undefined): string => {
  if (value === undefined) return '–';
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  return `${(value / 1024 / 1024).toFixed(1)} MiB`;
};
