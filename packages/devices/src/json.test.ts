import { describe, expect, it } from 'vitest';
import { toArgv } from './argv.js';
import { type ConfigFormatError, isConfigFormatError, isConfigValidationError } from './errors.js';
import { plug } from './hotplug.js';
import { CONFIG_FORMAT, CONFIG_VERSION, fromDocument, fromJSON, toJSON } from './json.js';
import { sampleConfig } from './sample.test-helper.js';

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

function corrupt(
  edit: (doc: { config: Record<string, unknown> } & Record<string, unknown>) => void,
): string {
  const doc = JSON.parse(toJSON(sampleConfig()));
  edit(doc);
  return JSON.stringify(doc);
}

describe('toJSON / fromJSON', () => {
  it('round-trips a configuration exactly', () => {
    const text = toJSON(sampleConfig());
    expect(fromJSON(text)).toEqual(sampleConfig());
    expect(toJSON(fromJSON(text))).toBe(text);
    // The argv of the stored configuration is the argv of the original.
    const qmp = { backend: { type: 'stdio', data: {} } } as const;
    expect(toArgv(fromJSON(text), { qmp })).toEqual(toArgv(sampleConfig(), { qmp }));
  });

  it('round-trips a configuration changed by hot-plug', () => {
    const { config } = plug(sampleConfig(), {
      blockdevs: [{ driver: 'null-co', 'node-name': 'n1', size: 1048576 }],
    });
    expect(fromJSON(toJSON(config))).toEqual(config);
  });

  it('writes a versioned document', () => {
    const doc = JSON.parse(toJSON(sampleConfig()));
    expect(doc.format).toBe(CONFIG_FORMAT);
    expect(doc.version).toBe(CONFIG_VERSION);
    expect(Object.keys(doc)).toEqual(['format', 'version', 'config']);
    expect(toJSON(sampleConfig()).endsWith('}\n')).toBe(true);
  });
});

describe('reading a corrupt configuration names the bad field', () => {
  it('not JSON', () => {
    const error = thrown(() => fromJSON('{"format": "qmpkit-devices/vm-config", '));
    expect(isConfigFormatError(error)).toBe(true);
    expect((error as ConfigFormatError).problems[0]?.message).toMatch(
      /^config: is not valid JSON: /,
    );
  });

  it('wrong header: format, version, extra fields', () => {
    const error = thrown(() =>
      fromJSON(
        corrupt((d) => {
          d.format = 'something-else';
          d.version = 2;
          d.comment = 'x';
        }),
      ),
    ) as ConfigFormatError;
    expect(error.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      `$.format: config: format is "something-else", expected '${CONFIG_FORMAT}'`,
      '$.version: config: version 2 is newer than this package reads (1); update @qmpkit/devices',
      '$.comment: config: comment is not a field of a qmpkit-devices document',
    ]);
    expect(error.name).toBe('ConfigFormatError');
    expect(String(thrown(() => fromDocument([])))).toContain('is not a qmpkit-devices document');
  });

  it('a field of the wrong type', () => {
    const error = thrown(() =>
      fromJSON(
        corrupt((d) => {
          const devices = d.config.devices as Array<Record<string, unknown>>;
          (devices[0] as Record<string, unknown>).bootindex = 'first';
          (d.config.memory as Record<string, unknown>).size = '256M';
        }),
      ),
    ) as ConfigFormatError;
    expect(isConfigFormatError(error)).toBe(true);
    expect(error.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      '$.config.memory.size: memory: size must be an integer, not "256M"',
      '$.config.devices[0].bootindex: device \'vd0\': bootindex must be an integer in -2147483648..2147483647 (int32), not "first"',
    ]);
  });

  it("a value QEMU's schema rejects, inside a block node", () => {
    const error = thrown(() =>
      fromJSON(
        corrupt((d) => {
          const nodes = d.config.blockdevs as Array<Record<string, unknown>>;
          (nodes[1] as Record<string, unknown>).filename = 42;
        }),
      ),
    );
    expect(isConfigValidationError(error)).toBe(true);
    expect(String(error)).toContain("node 'disk0-file': filename expected a string, got 42");
    const problems = (error as { problems: Array<{ path: string }> }).problems;
    expect(problems[0]?.path).toBe('$.config.blockdevs[1].filename');
  });

  it('a reference that no longer resolves', () => {
    const text = corrupt((d) => {
      d.config.blockdevs = (d.config.blockdevs as Array<Record<string, unknown>>).filter(
        (n) => n['node-name'] !== 'base',
      );
    });
    const error = thrown(() => fromJSON(text));
    expect(isConfigValidationError(error)).toBe(true);
    expect(String(error)).toContain("node 'disk0': backing 'base' names no block node");
    // Reading without semantic validation still works (e.g. to repair the file).
    expect(fromJSON(text, { validate: false }).blockdevs).toHaveLength(12);
  });
});
