/**
 * Context-free checks of QAPI definitions (what QEMU's scripts/qapi/expr.py does): keys
 * per meta-type, value types, naming rules, flags, `if` conditions, features, and whether a
 * doc comment belongs to the definition. Produces normalized definitions for `lower.ts`.
 */
import { SchemaError } from '../errors.js';
import type { Condition, Pragmas, SourceLocation, TypeRef } from '../model/ir.js';
import type { ParsedSchema, QapiDoc, QapiEntry, QapiObject, QapiValue } from './ast.js';
import {
  checkCamelName,
  checkLowerName,
  checkUpperName,
  cName,
  isConfigSymbol,
  type NameProblem,
  nameStem,
} from './names.js';

export interface NFeature {
  readonly name: string;
  readonly if?: Condition;
  readonly loc: SourceLocation;
}

export interface NTypeRef {
  readonly ref: TypeRef;
  readonly loc: SourceLocation;
}

export interface NMember {
  readonly name: string;
  readonly optional: boolean;
  readonly type: NTypeRef;
  readonly if?: Condition;
  readonly features: readonly NFeature[];
  readonly loc: SourceLocation;
}

export interface NBranch {
  readonly name: string;
  readonly type: NTypeRef;
  readonly if?: Condition;
  readonly loc: SourceLocation;
}

export interface NEnumValue {
  readonly name: string;
  readonly if?: Condition;
  readonly features: readonly NFeature[];
  readonly loc: SourceLocation;
}

export interface NNamedRef {
  readonly kind: 'named';
  readonly name: string;
  readonly loc: SourceLocation;
}

/** A reference to an object type: by name, or an inline member list (implicit type). */
export type NObjectRef =
  | NNamedRef
  | { readonly kind: 'inline'; readonly members: readonly NMember[]; readonly loc: SourceLocation };

interface NCommon {
  readonly name: string;
  readonly loc: SourceLocation;
  readonly module: string;
  readonly doc?: QapiDoc;
  readonly if?: Condition;
  readonly features: readonly NFeature[];
}

export interface NEnum extends NCommon {
  readonly meta: 'enum';
  readonly values: readonly NEnumValue[];
  readonly prefix?: string;
}

export interface NStruct extends NCommon {
  readonly meta: 'struct';
  readonly base?: NNamedRef;
  readonly members: readonly NMember[];
}

export interface NUnion extends NCommon {
  readonly meta: 'union';
  /** Absent for a legacy simple union. */
  readonly base?: NObjectRef;
  readonly discriminator?: { readonly name: string; readonly loc: SourceLocation };
  readonly branches: readonly NBranch[];
  readonly legacySimple: boolean;
}

export interface NAlternate extends NCommon {
  readonly meta: 'alternate';
  readonly branches: readonly NBranch[];
}

export interface NCommand extends NCommon {
  readonly meta: 'command';
  readonly data?: NObjectRef;
  readonly returns?: NTypeRef;
  readonly boxed: boolean;
  readonly gen: boolean;
  readonly successResponse: boolean;
  readonly allowOob: boolean;
  readonly allowPreconfig: boolean;
  readonly coroutine: boolean;
}

export interface NEvent extends NCommon {
  readonly meta: 'event';
  readonly data?: NObjectRef;
  readonly boxed: boolean;
}

export type NDef = NEnum | NStruct | NUnion | NAlternate | NCommand | NEvent;
export type Meta = NDef['meta'];

const metas: readonly Meta[] = ['enum', 'struct', 'union', 'alternate', 'command', 'event'];

function fail(loc: SourceLocation, message: string): never {
  throw new SchemaError(loc, message);
}

function nameError(loc: SourceLocation, source: string, problem: NameProblem): never {
  switch (problem) {
    case 'invalid':
      return fail(loc, `${source} has an invalid name`);
    case 'lower':
      return fail(loc, `name of ${source} must not use uppercase or '_'`);
    case 'upper':
      return fail(loc, `name of ${source} must not use lowercase or '-'`);
    case 'camel':
      return fail(loc, `name of ${source} must use CamelCase`);
  }
}

function quoteList(keys: Iterable<string>): string {
  return [...keys]
    .sort()
    .map((k) => `'${k}'`)
    .join(', ');
}

function checkKeys(
  obj: QapiObject,
  source: string,
  required: readonly string[],
  optional: readonly string[],
): void {
  const missing = required.filter((k) => !obj.byKey.has(k));
  if (missing.length > 0) {
    fail(obj.loc, `${source} misses key${missing.length > 1 ? 's' : ''} ${quoteList(missing)}`);
  }
  const allowed = new Set([...required, ...optional]);
  const unknown = obj.entries.filter((e) => !allowed.has(e.key));
  const first = unknown[0];
  if (first) {
    fail(
      first.keyLoc,
      `${source} has unknown key${unknown.length > 1 ? 's' : ''} ${quoteList(unknown.map((e) => e.key))}` +
        ` (valid keys are ${quoteList(allowed)})`,
    );
  }
}

function checkCondition(value: QapiValue, source: string): Condition {
  if (value.kind === 'string') {
    if (!isConfigSymbol(value.value)) {
      fail(value.loc, `'if' condition '${value.value}' of ${source} is not a valid identifier`);
    }
    return { kind: 'config', name: value.value };
  }
  if (value.kind !== 'object')
    fail(value.loc, `'if' condition of ${source} must be a string or an object`);
  checkKeys(value, `'if' condition of ${source}`, [], ['all', 'any', 'not']);
  const [entry, extra] = value.entries;
  if (!entry || extra) {
    fail(value.loc, `'if' condition of ${source} must have exactly one of 'all', 'any', 'not'`);
  }
  if (entry.key === 'not') return { kind: 'not', of: checkCondition(entry.value, source) };
  const operands = entry.value;
  if (operands.kind !== 'array')
    fail(operands.loc, `'${entry.key}' condition of ${source} must be an array`);
  if (operands.items.length === 0) fail(operands.loc, `'if' condition [] of ${source} is useless`);
  const of = operands.items.map((item) => checkCondition(item, source));
  return entry.key === 'all' ? { kind: 'all', of } : { kind: 'any', of };
}

function optionalIf(obj: QapiObject, source: string): { if?: Condition } {
  const entry = obj.byKey.get('if');
  return entry ? { if: checkCondition(entry.value, source) } : {};
}

function checkFeatures(entry: QapiEntry | undefined): NFeature[] {
  if (!entry) return [];
  const list = entry.value;
  if (list.kind !== 'array') fail(list.loc, "'features' must be an array");
  const seen = new Map<string, string>();
  return list.items.map((item) => {
    let nameValue: QapiValue = item;
    let cond: { if?: Condition } = {};
    if (item.kind === 'object') {
      checkKeys(item, "'features' member", ['name'], ['if']);
      nameValue = item.byKey.get('name')?.value ?? item;
    }
    if (nameValue.kind !== 'string')
      fail(nameValue.loc, "'features' member requires a string name");
    const name = nameValue.value;
    const source = `feature '${name}'`;
    if (nameStem(name) === undefined) nameError(nameValue.loc, source, 'invalid');
    if (item.kind === 'object') cond = optionalIf(item, source);
    const key = cName(name);
    const previous = seen.get(key);
    if (previous !== undefined)
      fail(nameValue.loc, `${source} collides with feature '${previous}'`);
    seen.set(key, name);
    return { name, ...cond, loc: nameValue.loc };
  });
}

/** A type name (`'str'`) or, with `allowArray`, a one-element array (`['str']`). */
function checkTypeRef(value: QapiValue, source: string, allowArray: boolean): NTypeRef {
  if (value.kind === 'string') return { ref: { kind: 'named', name: value.value }, loc: value.loc };
  if (value.kind === 'array') {
    if (!allowArray) fail(value.loc, `${source} cannot be an array`);
    const [element, extra] = value.items;
    if (!element || extra || element.kind !== 'string') {
      fail(value.loc, `${source}: array type must contain single type name`);
    }
    return {
      ref: { kind: 'array', element: { kind: 'named', name: element.value } },
      loc: value.loc,
    };
  }
  return fail(value.loc, `${source} should be a type name`);
}

/** `{ 'type': …, 'if': …, 'features': … }` or the short form (just the type). */
function memberForm(
  value: QapiValue,
  source: string,
  optional: readonly string[],
): { type: QapiValue; obj?: QapiObject } {
  if (value.kind !== 'object') return { type: value };
  checkKeys(value, source, ['type'], optional);
  const type = value.byKey.get('type')?.value ?? value;
  return { type, obj: value };
}

function checkMembers(
  value: QapiObject,
  what: string,
  owner: string | undefined,
  pragmas: Pragmas,
): NMember[] {
  const permissive = owner !== undefined && pragmas.memberNameExceptions.includes(owner);
  return value.entries.map((entry) => {
    const source = `${what} '${entry.key}'`;
    const optional = entry.key.startsWith('*');
    const name = optional ? entry.key.slice(1) : entry.key;
    const problem = checkLowerName(name, permissive, permissive);
    if (problem) nameError(entry.keyLoc, source, problem);
    const c = cName(name);
    if (c === 'u' || c.startsWith('has_')) fail(entry.keyLoc, `${source} uses reserved name`);
    const { type, obj } = memberForm(entry.value, source, ['if', 'features']);
    const cond = obj ? optionalIf(obj, source) : {};
    const features = obj ? checkFeatures(obj.byKey.get('features')) : [];
    return {
      name,
      optional,
      type: checkTypeRef(type, source, true),
      ...cond,
      features,
      loc: entry.keyLoc,
    };
  });
}

/** A type name or (when `owner` is given) an inline member list. */
function checkObjectRef(
  value: QapiValue,
  source: string,
  memberWhat: string,
  owner: string | undefined,
  allowInline: boolean,
  pragmas: Pragmas,
): NObjectRef {
  if (value.kind === 'string') return { kind: 'named', name: value.value, loc: value.loc };
  if (value.kind === 'array') fail(value.loc, `${source} cannot be an array`);
  if (!allowInline) fail(value.loc, `${source} should be a type name`);
  if (value.kind !== 'object') fail(value.loc, `${source} should be an object or type name`);
  return {
    kind: 'inline',
    members: checkMembers(value, memberWhat, owner, pragmas),
    loc: value.loc,
  };
}

function checkBranches(value: QapiValue, checkNames: boolean, allowArray: boolean): NBranch[] {
  if (value.kind !== 'object') fail(value.loc, "'data' must be an object");
  return value.entries.map((entry) => {
    const source = `branch '${entry.key}'`;
    if (checkNames) {
      const problem = checkLowerName(entry.key);
      if (problem) nameError(entry.keyLoc, source, problem);
    }
    const { type, obj } = memberForm(entry.value, source, ['if']);
    const cond = obj ? optionalIf(obj, source) : {};
    return {
      name: entry.key,
      type: checkTypeRef(type, source, allowArray),
      ...cond,
      loc: entry.keyLoc,
    };
  });
}

function flag(obj: QapiObject, key: string, allowed: boolean): boolean {
  const entry = obj.byKey.get(key);
  if (!entry) return !allowed;
  if (entry.value.kind !== 'bool' || entry.value.value !== allowed) {
    fail(entry.value.loc, `flag '${key}' may only use ${allowed} value`);
  }
  return allowed;
}

function checkDefinitionName(
  name: string,
  meta: Meta,
  loc: SourceLocation,
  pragmas: Pragmas,
): void {
  const source = `${meta} '${name}'`;
  let problem: NameProblem | undefined;
  if (meta === 'event') problem = checkUpperName(name);
  else if (meta === 'command') {
    problem = checkLowerName(name, false, pragmas.commandNameExceptions.includes(name));
  } else {
    problem = checkCamelName(name);
    if (!problem && name.endsWith('List'))
      fail(loc, `${meta} name '${name}' should not end in 'List'`);
  }
  if (problem) nameError(loc, source, problem);
}

function checkDocFor(doc: QapiDoc, meta: Meta): void {
  for (const section of doc.sections) {
    if (section.kind !== 'tagged') continue;
    if ((section.name === 'Returns' || section.name === 'Errors') && meta !== 'command') {
      fail(section.loc, `'${section.name}' section is only valid for commands`);
    }
  }
}

function checkDefinition(
  obj: QapiObject,
  loc: SourceLocation,
  module: string,
  doc: QapiDoc | undefined,
  pragmas: Pragmas,
): NDef {
  const found = metas.filter((m) => obj.byKey.has(m));
  const meta = found[0];
  if (found.length !== 1 || meta === undefined) {
    fail(loc, `expression must have exactly one key ${metas.map((m) => `'${m}'`).join(', ')}`);
  }
  const nameValue = obj.byKey.get(meta)?.value;
  if (nameValue?.kind !== 'string') fail(nameValue?.loc ?? loc, `'${meta}' requires a string name`);
  const name = nameValue.value;
  checkDefinitionName(name, meta, nameValue.loc, pragmas);

  if (doc) {
    if (doc.symbol !== name) fail(loc, `documentation comment is for '${doc.symbol}'`);
    checkDocFor(doc, meta);
  } else if (pragmas.docRequired) {
    fail(loc, `documentation comment required for ${meta} '${name}'`);
  }

  const source = `${meta} '${name}'`;
  const get = (key: string): QapiValue | undefined => obj.byKey.get(key)?.value;
  const common = (): NCommon => ({
    name,
    loc,
    module,
    ...(doc ? { doc } : {}),
    ...optionalIf(obj, source),
    features: checkFeatures(obj.byKey.get('features')),
  });

  switch (meta) {
    case 'enum': {
      checkKeys(obj, source, ['enum', 'data'], ['if', 'features', 'prefix']);
      const data = get('data');
      if (data?.kind !== 'array') fail(data?.loc ?? loc, "'data' must be an array");
      const prefix = get('prefix');
      if (prefix && prefix.kind !== 'string') fail(prefix.loc, "'prefix' must be a string");
      const permissive = pragmas.memberNameExceptions.includes(name);
      const values = data.items.map((item): NEnumValue => {
        let nameNode: QapiValue = item;
        if (item.kind === 'object') {
          checkKeys(item, "'data' member", ['name'], ['if', 'features']);
          nameNode = item.byKey.get('name')?.value ?? item;
        }
        if (nameNode.kind !== 'string') fail(nameNode.loc, "'data' member requires a string name");
        const value = nameNode.value;
        const valueSource = `value '${value}'`;
        // Enum values may start with a digit.
        const problem = checkLowerName(
          /^[0-9]/.test(value) ? `d${value}` : value,
          permissive,
          permissive,
        );
        if (problem) nameError(nameNode.loc, valueSource, problem);
        if (item.kind !== 'object') return { name: value, features: [], loc: nameNode.loc };
        return {
          name: value,
          ...optionalIf(item, valueSource),
          features: checkFeatures(item.byKey.get('features')),
          loc: nameNode.loc,
        };
      });
      return {
        meta,
        ...common(),
        values,
        ...(prefix?.kind === 'string' ? { prefix: prefix.value } : {}),
      };
    }
    case 'struct': {
      checkKeys(obj, source, ['struct', 'data'], ['base', 'if', 'features']);
      const data = get('data') ?? obj;
      if (data.kind === 'array') fail(data.loc, "'data' cannot be an array");
      if (data.kind !== 'object') fail(data.loc, "'data' should be an object");
      const members = checkMembers(data, 'member', name, pragmas);
      const baseValue = get('base');
      const base = baseValue
        ? checkObjectRef(baseValue, "'base'", 'member', undefined, false, pragmas)
        : undefined;
      return {
        meta,
        ...common(),
        ...(base?.kind === 'named' ? { base } : {}),
        members,
      };
    }
    case 'union': {
      checkKeys(obj, source, ['union', 'data'], ['base', 'discriminator', 'if', 'features']);
      const baseValue = get('base');
      const discValue = get('discriminator');
      if (discValue && !baseValue) fail(discValue.loc, "'discriminator' requires 'base'");
      if (baseValue && !discValue) fail(baseValue.loc, "'base' requires 'discriminator'");
      const legacySimple = !baseValue;
      const base = baseValue
        ? checkObjectRef(baseValue, "'base'", 'base member', name, true, pragmas)
        : undefined;
      if (discValue && discValue.kind !== 'string') {
        fail(discValue.loc, "'discriminator' requires a string name");
      }
      const branches = checkBranches(get('data') ?? obj, legacySimple, legacySimple);
      return {
        meta,
        ...common(),
        ...(base ? { base } : {}),
        ...(discValue?.kind === 'string'
          ? { discriminator: { name: discValue.value, loc: discValue.loc } }
          : {}),
        branches,
        legacySimple,
      };
    }
    case 'alternate': {
      checkKeys(obj, source, ['alternate', 'data'], ['if', 'features']);
      const data = get('data') ?? obj;
      const empty =
        (data.kind === 'object' && data.entries.length === 0) ||
        (data.kind === 'array' && data.items.length === 0);
      if (empty) fail(data.loc, "'data' must not be empty");
      return { meta, ...common(), branches: checkBranches(data, true, true) };
    }
    case 'command': {
      checkKeys(
        obj,
        source,
        ['command'],
        [
          'data',
          'returns',
          'boxed',
          'if',
          'features',
          'gen',
          'success-response',
          'allow-oob',
          'allow-preconfig',
          'coroutine',
        ],
      );
      const boxed = flag(obj, 'boxed', true);
      const dataValue = get('data');
      if (boxed && !dataValue) fail(loc, "'boxed': true requires 'data'");
      const data = dataValue
        ? checkObjectRef(dataValue, "'data'", 'parameter', undefined, !boxed, pragmas)
        : undefined;
      const returnsValue = get('returns');
      const returns = returnsValue ? checkTypeRef(returnsValue, "'returns'", true) : undefined;
      const result: NCommand = {
        meta,
        ...common(),
        ...(data ? { data } : {}),
        ...(returns ? { returns } : {}),
        boxed,
        gen: flag(obj, 'gen', false),
        successResponse: flag(obj, 'success-response', false),
        allowOob: flag(obj, 'allow-oob', true),
        allowPreconfig: flag(obj, 'allow-preconfig', true),
        coroutine: flag(obj, 'coroutine', true),
      };
      if (result.allowOob && result.coroutine) {
        fail(loc, "flags 'allow-oob' and 'coroutine' are incompatible");
      }
      return result;
    }
    case 'event': {
      checkKeys(obj, source, ['event'], ['data', 'boxed', 'if', 'features']);
      const boxed = flag(obj, 'boxed', true);
      const dataValue = get('data');
      if (boxed && !dataValue) fail(loc, "'boxed': true requires 'data'");
      const data = dataValue
        ? checkObjectRef(dataValue, "'data'", 'member', undefined, !boxed, pragmas)
        : undefined;
      return { meta, ...common(), ...(data ? { data } : {}), boxed };
    }
  }
}

/** Runs the context-free checks over all definitions, in source order. */
export function checkExpressions(parsed: ParsedSchema): NDef[] {
  const defs: NDef[] = [];
  for (const expr of parsed.expressions) {
    if (expr.kind !== 'definition') continue;
    defs.push(checkDefinition(expr.value, expr.loc, expr.module, expr.doc, parsed.pragmas));
  }
  return defs;
}
