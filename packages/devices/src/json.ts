/**
 * The stored form of a configuration (the "stateful config file" a machine manager keeps):
 * `{ "format": "qmpkit-devices/vm-config", "version": 1, "config": { … } }`. The
 * configuration is plain data, so this is JSON with a header; reading it back checks the
 * header, the shape of every field and then everything `validate` checks.
 */
import { ConfigFormatError, ConfigValidationError } from './errors.js';
import type { VmConfig } from './model.js';
import { type ConfigProblem, problem } from './problems.js';
import { checkStructure } from './structure.js';
import { validate } from './validate.js';

export const CONFIG_FORMAT = 'qmpkit-devices/vm-config';
/** The version this package writes and reads. Older versions will be migrated on read. */
export const CONFIG_VERSION = 1;

export interface ConfigDocument {
  readonly format: typeof CONFIG_FORMAT;
  readonly version: typeof CONFIG_VERSION;
  readonly config: VmConfig;
}

export function toDocument(config: VmConfig): ConfigDocument {
  return { format: CONFIG_FORMAT, version: CONFIG_VERSION, config };
}

/** The configuration as stored JSON text (2-space indent, trailing newline). */
export function toJSON(config: VmConfig): string {
  return `${JSON.stringify(toDocument(config), null, 2)}\n`;
}

export interface ReadOptions {
  /**
   * Also run `validate` and throw `ConfigValidationError` on problems (default true).
   * Shape problems always throw `ConfigFormatError`.
   */
  readonly validate?: boolean;
}

const DOC: ConfigProblem['subject'] = { kind: 'config', id: '' };

/** Reads a stored document (already parsed from JSON). */
export function fromDocument(value: unknown, options: ReadOptions = {}): VmConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigFormatError([
      problem('format', DOC, '', '$', 'is not a qmpkit-devices document (expected an object)'),
    ]);
  }
  const doc = value as Record<string, unknown>;
  const header: ConfigProblem[] = [];
  if (doc.format !== CONFIG_FORMAT) {
    header.push(
      problem(
        'format',
        DOC,
        'format',
        '$.format',
        `is ${JSON.stringify(doc.format) ?? 'missing'}, expected '${CONFIG_FORMAT}'`,
      ),
    );
  }
  if (doc.version !== CONFIG_VERSION) {
    header.push(
      problem(
        'format',
        DOC,
        'version',
        '$.version',
        typeof doc.version === 'number' && doc.version > CONFIG_VERSION
          ? `${doc.version} is newer than this package reads (${CONFIG_VERSION}); update @qmpkit/devices`
          : `is ${JSON.stringify(doc.version) ?? 'missing'}, expected ${CONFIG_VERSION}`,
      ),
    );
  }
  for (const key of Object.keys(doc)) {
    if (key !== 'format' && key !== 'version' && key !== 'config')
      header.push(
        problem('format', DOC, key, `$.${key}`, 'is not a field of a qmpkit-devices document'),
      );
  }
  if (header.length > 0) throw new ConfigFormatError(header);
  const shape = checkStructure(doc.config, '$.config');
  if (shape.length > 0) throw new ConfigFormatError(shape);
  const config = doc.config as VmConfig;
  if (options.validate !== false) {
    const problems = validate(config).map((p) => ({
      ...p,
      path: p.path.replace(/^\$/, '$.config'),
    }));
    if (problems.length > 0) throw new ConfigValidationError(problems);
  }
  return config;
}

/** Reads stored JSON text (see `toJSON`). */
export function fromJSON(text: string, options: ReadOptions = {}): VmConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigFormatError([problem('format', DOC, '', '$', `is not valid JSON: ${reason}`)], {
      cause: error,
    });
  }
  return fromDocument(value, options);
}
