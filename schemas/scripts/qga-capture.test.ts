/**
 * `schemas:qga`: the capture of a qga schema keeps every definition, condition and feature,
 * reads back into the same schema, and carries none of the source's comments or doc text.
 * Uses a schema written for this test (not QEMU's) in a temporary directory.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadQapiSource } from '@qmpkit/codegen';
import { afterAll, expect, it } from 'vitest';
import { qgaCaptureText } from './qga-capture.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'qmpkit-qga-capture-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SOURCE = `# -*- Mode: Python -*-
##
# = Made-up agent
##
{ 'pragma': { 'doc-required': true } }
{ 'pragma': { 'command-returns-exceptions': [ 'guest-sync-delimited' ] } }

##
# @guest-sync-delimited:
#
# SECRET-DOC-TEXT echoes the id.
#
# @id: SECRET-MEMBER-DOC
#
# Returns: the id
#
# Since: 1.1
##
{ 'command': 'guest-sync-delimited', 'data': { 'id': 'int' }, 'returns': 'int' }

##
# @GuestThing:
#
# SECRET-STRUCT-DOC
#
# @name: SECRET
#
# @old: SECRET
#
# Features:
# @deprecated: SECRET-FEATURE-DOC
#
# Since: 2.0
##
{ 'struct': 'GuestThing',
  'data': { 'name': 'str', '*old': { 'type': 'int', 'features': [ 'deprecated' ] } },
  'if': { 'any': [ 'CONFIG_LINUX', 'CONFIG_WIN32' ] } }

##
# @guest-things:
#
# SECRET
#
# Returns: SECRET
#
# Since: 2.0
##
{ 'command': 'guest-things', 'returns': [ 'GuestThing' ], 'success-response': false }
`;

it('keeps the structure and drops every comment and doc text', () => {
  const main = path.join(tmp, 'qapi-schema.json');
  writeFileSync(main, SOURCE);
  const { text, definitions } = qgaCaptureText(main);
  expect(definitions).toBe(3);
  expect(text).not.toMatch(/SECRET|#|doc-required/);
  expect(text).toContain("'if': { 'any': ['CONFIG_LINUX', 'CONFIG_WIN32'] }");
  const capture = path.join(tmp, 'capture.json');
  writeFileSync(capture, text);
  const a = loadQapiSource(main);
  const b = loadQapiSource(capture);
  expect([...b.commands.keys()]).toEqual([...a.commands.keys()]);
  expect(b.commands.get('guest-things')?.successResponse).toBe(false);
  const strip = (t: unknown) =>
    JSON.parse(
      JSON.stringify(t, (k, v) => (k === 'loc' || k === 'doc' || k === 'module' ? undefined : v)),
    );
  expect(strip(b.types.get('GuestThing'))).toEqual(strip(a.types.get('GuestThing')));
  expect(b.types.get('GuestThing')?.if).toEqual({
    kind: 'any',
    of: [
      { kind: 'config', name: 'CONFIG_LINUX' },
      { kind: 'config', name: 'CONFIG_WIN32' },
    ],
  });
});
