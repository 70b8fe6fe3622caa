/**
 * `@qmpkit/schema/replies`: reading recorded QMP replies, with no Node import (the root
 * entry also holds the capture tools, which spawn QEMU), so a page can load recordings.
 */
export { isSchemaError, SchemaError } from './errors.js';
export type { RecordedExchange, RecordedSchema } from './recordings/replies.js';
export { parseReplies, schemaFromReplies } from './recordings/replies.js';
