/**
 * Kernel modules without depmod: Debian's kernel package ships no `modules.dep`, so the load
 * order is computed from each module's own `depends=` field in its `.modinfo` section.
 */
import { LinuxGuestBuildError } from '../errors.js';

/** Module names mix `-` and `_` (`crc32c-generic` vs `crc32c_generic`); compare them as `_`. */
export function moduleKey(name: string): string {
  return name.replace(/-/g, '_');
}

/** The `depends=` list of a `.ko` file's modinfo (empty when it depends on nothing). */
export function moduleDepends(ko: Uint8Array): string[] {
  const text = Buffer.from(ko.buffer, ko.byteOffset, ko.byteLength).toString('latin1');
  const at = text.indexOf('\0depends=');
  if (at < 0) return [];
  const start = at + '\0depends='.length;
  const value = text.slice(start, text.indexOf('\0', start));
  return value === '' ? [] : value.split(',').map(moduleKey);
}

/**
 * Load order for `wanted` and everything they depend on, dependencies first. `read(key)`
 * returns a module's bytes, or `undefined` when the kernel package has no such module file
 * (an error: the list names only modules, not features built into the kernel).
 */
export function moduleLoadOrder(
  wanted: readonly string[],
  read: (key: string) => Uint8Array | undefined,
): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, from: string | undefined) => {
    const key = moduleKey(name);
    if (state.get(key) === 'done') return;
    if (state.get(key) === 'visiting')
      throw new LinuxGuestBuildError('modules', `module dependency cycle through ${key}`);
    const bytes = read(key);
    if (!bytes) {
      throw new LinuxGuestBuildError(
        'modules',
        `kernel module ${key}${from ? ` (needed by ${from})` : ''} is not in the kernel package`,
      );
    }
    state.set(key, 'visiting');
    for (const dep of moduleDepends(bytes)) visit(dep, key);
    state.set(key, 'done');
    order.push(key);
  };
  for (const name of wanted) visit(name, undefined);
  return order;
}
