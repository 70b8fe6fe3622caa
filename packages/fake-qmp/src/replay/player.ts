/**
 * Replays a conversation to one client: the recorded greeting and events go out as they were
 * recorded; each command the client sends must equal the next recorded command (name and
 * arguments; ids may differ and are substituted in the replies), and the recorded answers
 * that followed it are sent. A different command is a divergence: it is reported (the
 * client gets a GenericError naming both) and the recording does not advance.
 */
import type { ReplayDivergence } from '../errors.js';
import { parseQemuJson } from '../json/reader.js';
import type { QemuValue } from '../json/values.js';
import { writeQemuJson } from '../json/writer.js';
import { stable } from '../script/expectations.js';
import type { Conversation, ConversationRecord } from './conversation.js';

/** Parses one line as QEMU would (single quotes etc.), or undefined. */
export function parseLine(line: string): QemuValue | undefined {
  try {
    return JSON.parse(line) as QemuValue;
  } catch {
    // Not plain JSON: QEMU's parser may still read it (single quotes); undefined if not.
    try {
      return parseQemuJson(line);
    } catch {
      return undefined;
    }
  }
}

function commandKey(value: QemuValue | undefined, text: string): string {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const v = value as Record<string, unknown>;
    const name = v.execute ?? v['exec-oob'];
    if (typeof name === 'string')
      return `${v.execute !== undefined ? 'execute' : 'exec-oob'} ${name} ${stable(v.arguments ?? {})}`;
    const { id: _id, ...rest } = v;
    return stable(rest);
  }
  return text.trim();
}

function idOf(value: QemuValue | undefined): QemuValue | undefined {
  if (value !== null && typeof value === 'object' && !Array.isArray(value))
    return (value as Record<string, QemuValue | undefined>).id;
  return undefined;
}

/** Replaces the id of a QEMU reply line (QEMU writes `{"return": …, "id": X}` and `{"id": X, "error": …}`). */
export function replaceReplyId(
  line: string,
  oldId: QemuValue | undefined,
  newId: QemuValue | undefined,
): string {
  if (!line.startsWith('{"return"') && !line.startsWith('{"error"') && !line.startsWith('{"id"'))
    return line;
  let body = line;
  if (oldId !== undefined) {
    const old = writeQemuJson(oldId);
    const tail = `, "id": ${old}}`;
    const head = `{"id": ${old}, `;
    if (body.endsWith(tail)) body = `${body.slice(0, -tail.length)}}`;
    else if (body.startsWith(head)) body = `{${body.slice(head.length)}`;
  }
  if (newId === undefined) return body;
  const id = writeQemuJson(newId);
  return body.startsWith('{"error"')
    ? `{"id": ${id}, ${body.slice(1)}`
    : `${body.slice(0, -1)}, "id": ${id}}`;
}

export class ReplayPlayer {
  private position = 0;
  private commandIndex = 0;

  constructor(
    private readonly conversation: Conversation,
    private readonly write: (line: string, delayMs: number) => void,
    private readonly report: (divergence: ReplayDivergence) => void,
    private readonly timing: 'asap' | 'recorded' = 'asap',
  ) {}

  /** Recorded commands not yet received. */
  get leftover(): number {
    return this.conversation.records.slice(this.position).filter((r) => r.dir === 'in').length;
  }

  start(): void {
    this.flushOut(undefined, undefined, 0);
  }

  private flushOut(
    oldId: QemuValue | undefined,
    newId: QemuValue | undefined,
    since: number,
  ): void {
    const records = this.conversation.records;
    while (this.position < records.length && records[this.position]!.dir === 'out') {
      const r: ConversationRecord = records[this.position++]!;
      const delay = this.timing === 'recorded' && r.t !== undefined ? Math.max(0, r.t - since) : 0;
      this.write(`${replaceReplyId(r.line, oldId, newId)}\r\n`, delay);
    }
  }

  /** A line from the client. */
  input(text: string): void {
    const records = this.conversation.records;
    const got = parseLine(text);
    const expected = records[this.position];
    const gotKey = commandKey(got, text);
    if (expected?.dir !== 'in') {
      this.diverge(
        undefined,
        text,
        got,
        `command ${this.commandIndex + 1}: the recording has ended, got ${gotKey}`,
      );
      return;
    }
    const want = parseLine(expected.line);
    const wantKey = commandKey(want, expected.line);
    if (wantKey !== gotKey) {
      this.diverge(
        expected.line,
        text,
        got,
        `command ${this.commandIndex + 1}: expected ${wantKey}, got ${gotKey}`,
      );
      return;
    }
    this.position++;
    this.commandIndex++;
    this.flushOut(idOf(want), idOf(got), expected.t ?? 0);
  }

  private diverge(
    expected: string | undefined,
    text: string,
    got: QemuValue | undefined,
    message: string,
  ): void {
    this.report({
      index: this.commandIndex,
      ...(expected !== undefined ? { expected } : {}),
      got: text,
      message,
    });
    const id = idOf(got);
    const error = { error: { class: 'GenericError', desc: `qmpkit fake-qmp replay: ${message}` } };
    this.write(`${writeQemuJson(id === undefined ? error : { ...error, id })}\r\n`, 0);
  }
}
