/**
 * Reader for libvirt's QEMU capability recordings (`tests/qemucapabilitiesdata/*.replies`):
 * pretty-printed JSON objects separated by blank lines, alternating a command
 * (`{"execute": …, "id": …}`) and QEMU's reply to it.
 */
import { SchemaError } from '../errors.js';

export interface RecordedExchange {
  readonly command: {
    readonly execute: string;
    readonly arguments?: unknown;
    readonly id?: unknown;
  };
  /** The reply object (`return` or `error`, plus `id`). */
  readonly reply: Readonly<Record<string, unknown>>;
  /** 1-based line of the command in the file. */
  readonly line: number;
}

/** Splits the file into top-level JSON values with the line each starts on. */
function values(file: string, text: string): { value: unknown; line: number }[] {
  const out: { value: unknown; line: number }[] = [];
  let depth = 0;
  let start = -1;
  let startLine = 1;
  let line = 1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 10) line++;
    if (inString) {
      if (ch === 92)
        i++; // backslash escapes the next character
      else if (ch === 34) inString = false;
      continue;
    }
    if (ch === 34) inString = true;
    else if (ch === 123 || ch === 91) {
      if (depth === 0) {
        start = i;
        startLine = line;
      }
      depth++;
    } else if (ch === 125 || ch === 93) {
      depth--;
      if (depth < 0) throw new SchemaError({ file, line, col: 1 }, 'unbalanced closing bracket');
      if (depth === 0) {
        const slice = text.slice(start, i + 1);
        try {
          out.push({ value: JSON.parse(slice), line: startLine });
        } catch (error) {
          throw new SchemaError(
            { file, line: startLine, col: 1 },
            `entry is not valid JSON: ${error instanceof Error ? error.message : String(error)}`,
          );
        }
      }
    } else if (depth === 0 && ch !== 10 && ch !== 13 && ch !== 32 && ch !== 9) {
      throw new SchemaError({ file, line, col: 1 }, `unexpected '${text[i]}' between entries`);
    }
  }
  if (depth !== 0 || inString)
    throw new SchemaError({ file, line: startLine, col: 1 }, 'unterminated entry at end of file');
  return out;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses a `.replies` file into command/reply pairs; errors name the file and entry. */
export function parseReplies(file: string, text: string): RecordedExchange[] {
  const list = values(file, text);
  const exchanges: RecordedExchange[] = [];
  for (let i = 0; i < list.length; i += 2) {
    const command = list[i]!;
    const reply = list[i + 1];
    if (!isRecord(command.value) || typeof command.value.execute !== 'string') {
      throw new SchemaError(
        { file, line: command.line, col: 1 },
        `entry ${i + 1}: expected a command object with "execute"`,
      );
    }
    if (!reply)
      throw new SchemaError(
        { file, line: command.line, col: 1 },
        `command '${command.value.execute}' has no reply`,
      );
    if (!isRecord(reply.value) || !('return' in reply.value || 'error' in reply.value)) {
      throw new SchemaError(
        { file, line: reply.line, col: 1 },
        `entry ${i + 2}: expected the reply to '${command.value.execute}'`,
      );
    }
    if (command.value.id !== undefined && reply.value.id !== command.value.id) {
      throw new SchemaError(
        { file, line: reply.line, col: 1 },
        `reply id ${JSON.stringify(reply.value.id)} does not match command id ${JSON.stringify(command.value.id)}`,
      );
    }
    exchanges.push({
      command: command.value as RecordedExchange['command'],
      reply: reply.value,
      line: command.line,
    });
  }
  return exchanges;
}

export interface RecordedSchema {
  readonly schema: readonly unknown[];
  readonly version: {
    readonly major: number;
    readonly minor: number;
    readonly micro: number;
    readonly package: string;
  };
  readonly exchanges: readonly RecordedExchange[];
}

/** The `query-qmp-schema` and `query-version` replies of a recording. */
export function schemaFromReplies(file: string, text: string): RecordedSchema {
  const exchanges = parseReplies(file, text);
  const find = (command: string) => exchanges.find((e) => e.command.execute === command);
  const schema = find('query-qmp-schema');
  if (!schema) throw new SchemaError({ file }, 'the recording has no query-qmp-schema exchange');
  const list = schema.reply.return;
  if (!Array.isArray(list)) {
    throw new SchemaError(
      { file, line: schema.line, col: 1 },
      'the query-qmp-schema reply is not a SchemaInfo list',
    );
  }
  const version = find('query-version')?.reply.return;
  const qemu = isRecord(version) && isRecord(version.qemu) ? version.qemu : undefined;
  if (
    !qemu ||
    typeof qemu.major !== 'number' ||
    typeof qemu.minor !== 'number' ||
    typeof qemu.micro !== 'number'
  ) {
    throw new SchemaError({ file }, 'the recording has no usable query-version reply');
  }
  return {
    schema: list,
    version: {
      major: qemu.major,
      minor: qemu.minor,
      micro: qemu.micro,
      package: isRecord(version) && typeof version.package === 'string' ? version.package : '',
    },
    exchanges,
  };
}
