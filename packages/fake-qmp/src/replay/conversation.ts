/**
 * Conversation files: a recorded QMP session, byte for byte.
 *
 * Format `qmpkit-conversation` version 1 — JSON Lines, UTF-8:
 * - line 1, the header: `{"format":"qmpkit-conversation","version":1,"qemu":{…},"source":"…"}`
 *   (`qemu` is the greeting's version object when known; `source` is free text);
 * - every other line is one message: `{"dir":"in"|"out","t":<ms>,"line":"<raw text>"}`, where
 *   `in` is client → QEMU, `out` is QEMU → client, `line` is the message without its line
 *   ending (QEMU's `\r\n`), and `t` is milliseconds since the connection opened (optional).
 * Blank lines are ignored. The first `out` line is the greeting.
 *
 * libvirt's `.replies` recordings (pretty-printed JSON, command then reply, blank line
 * between) are imported with `importReplies`; their replies are re-serialised in QEMU's
 * wire format and the greeting is built from the recorded `query-version`.
 */
import { isSchemaError, parseReplies } from '@qmpkit/schema/replies';
import { ConversationFileError } from '../errors.js';
import { RawJson } from '../json/values.js';
import { writeOrderedJson, writeQemuJson } from '../json/writer.js';

export interface ConversationRecord {
  readonly dir: 'in' | 'out';
  readonly line: string;
  readonly t?: number;
}

export interface Conversation {
  readonly format: 'qmpkit-conversation';
  readonly version: 1;
  readonly qemu?: { major: number; minor: number; micro: number };
  readonly source?: string;
  readonly records: readonly ConversationRecord[];
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses a conversation file; every problem names the file and line. */
export function parseConversation(text: string, file = '<conversation>'): Conversation {
  const lines = text.split('\n');
  let header: Record<string, unknown> | undefined;
  const records: ConversationRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      throw new ConversationFileError(file, i + 1, 'not valid JSON', { cause: error });
    }
    if (!isRecord(value)) throw new ConversationFileError(file, i + 1, 'expected a JSON object');
    if (header === undefined) {
      if (value.format !== 'qmpkit-conversation')
        throw new ConversationFileError(
          file,
          i + 1,
          'not a qmpkit conversation (missing header "format": "qmpkit-conversation")',
        );
      if (value.version !== 1)
        throw new ConversationFileError(
          file,
          i + 1,
          `unsupported conversation version ${JSON.stringify(value.version)} (this reader knows 1)`,
        );
      header = value;
      continue;
    }
    if (value.dir !== 'in' && value.dir !== 'out')
      throw new ConversationFileError(file, i + 1, `"dir" must be "in" or "out"`);
    if (typeof value.line !== 'string')
      throw new ConversationFileError(file, i + 1, `"line" must be a string`);
    if (
      value.t !== undefined &&
      (typeof value.t !== 'number' || !Number.isFinite(value.t) || value.t < 0)
    )
      throw new ConversationFileError(
        file,
        i + 1,
        `"t" must be a non-negative number of milliseconds`,
      );
    records.push({
      dir: value.dir,
      line: value.line,
      ...(typeof value.t === 'number' ? { t: value.t } : {}),
    });
  }
  if (header === undefined)
    throw new ConversationFileError(file, undefined, 'empty file (no header)');
  if (!records.some((r) => r.dir === 'out'))
    throw new ConversationFileError(
      file,
      undefined,
      'the conversation has no greeting (no "out" message)',
    );
  const qemu = isRecord(header.qemu) ? header.qemu : undefined;
  return {
    format: 'qmpkit-conversation',
    version: 1,
    ...(qemu &&
    typeof qemu.major === 'number' &&
    typeof qemu.minor === 'number' &&
    typeof qemu.micro === 'number'
      ? { qemu: { major: qemu.major, minor: qemu.minor, micro: qemu.micro } }
      : {}),
    ...(typeof header.source === 'string' ? { source: header.source } : {}),
    records,
  };
}

/** Serialises a conversation (one JSON object per line, trailing newline). */
export function formatConversation(conversation: Omit<Conversation, 'format' | 'version'>): string {
  const header = {
    format: 'qmpkit-conversation',
    version: 1,
    ...(conversation.qemu ? { qemu: conversation.qemu } : {}),
    ...(conversation.source !== undefined ? { source: conversation.source } : {}),
  };
  const lines = [JSON.stringify(header)];
  for (const r of conversation.records) lines.push(JSON.stringify(r));
  return `${lines.join('\n')}\n`;
}

/**
 * Imports a libvirt `.replies` file. Commands keep libvirt's ids; replies are written in
 * QEMU's format. The greeting uses the recorded `query-version` (or `fallbackVersion`).
 */
export async function importReplies(
  text: string,
  file = '<replies>',
  fallbackVersion: { qemu: { major: number; minor: number; micro: number }; package: string } = {
    qemu: { major: 7, minor: 2, micro: 0 },
    package: '',
  },
): Promise<Conversation> {
  let exchanges: ReturnType<typeof parseReplies>;
  try {
    exchanges = parseReplies(file, text);
  } catch (error) {
    if (!isSchemaError(error)) throw error;
    throw new ConversationFileError(file, error.line, error.reason, { cause: error });
  }
  const versionReply = exchanges.find((e) => e.command.execute === 'query-version')?.reply.return;
  const version =
    isRecord(versionReply) && isRecord(versionReply.qemu) ? versionReply : fallbackVersion;
  const records: ConversationRecord[] = [
    // libvirt keeps QEMU's wire order of keys: keep it (only the greeting's frame is rebuilt).
    {
      dir: 'out',
      line: writeQemuJson({
        QMP: { version: new RawJson(writeOrderedJson(version)), capabilities: ['oob'] },
      }),
    },
  ];
  for (const exchange of exchanges) {
    const command: Record<string, unknown> = { execute: exchange.command.execute };
    if (exchange.command.arguments !== undefined) command.arguments = exchange.command.arguments;
    if (exchange.command.id !== undefined) command.id = exchange.command.id;
    records.push({ dir: 'in', line: JSON.stringify(command) });
    records.push({ dir: 'out', line: writeOrderedJson(exchange.reply) });
  }
  const qemu = isRecord(version.qemu)
    ? (version.qemu as { major: number; minor: number; micro: number })
    : undefined;
  return {
    format: 'qmpkit-conversation',
    version: 1,
    ...(qemu ? { qemu: { major: qemu.major, minor: qemu.minor, micro: qemu.micro } } : {}),
    source: `libvirt replies ${file}`,
    records,
  };
}
