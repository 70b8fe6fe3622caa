import { describe, expect, it } from 'vitest';
import { downloadFileName, parseControl, parseDepends, parsePolicy } from './control.js';

describe('parseControl', () => {
  it('splits paragraphs and joins continuation lines', () => {
    const text =
      'Package: a\nVersion: 1:2.0-1\nDescription: short\n long line\n .\n more\n\nPackage: b\nVersion: 3\n';
    expect(parseControl(text)).toEqual([
      { Package: 'a', Version: '1:2.0-1', Description: 'short\nlong line\n.\nmore' },
      { Package: 'b', Version: '3' },
    ]);
  });
});

describe('parseDepends', () => {
  it('keeps groups of alternatives, drops versions and arch qualifiers', () => {
    expect(
      parseDepends('libc6 (>= 2.34), libglib2.0-0 (>= 2.63.3), a | b:any (<< 2), python3:native'),
    ).toEqual([['libc6'], ['libglib2.0-0'], ['a', 'b'], ['python3']]);
    expect(parseDepends(undefined)).toEqual([]);
    expect(parseDepends('')).toEqual([]);
  });
});

describe('parsePolicy', () => {
  it('reads the candidate of each package, (none) as undefined', () => {
    const text = [
      'qemu-guest-agent:',
      '  Installed: (none)',
      '  Candidate: 1:10.0.2+ds-2+deb13u1~bpo12+1',
      '  Version table:',
      '     1:10.0.2+ds-2+deb13u1~bpo12+1 990',
      '        990 http://deb.debian.org/debian bookworm-backports/main amd64 Packages',
      'virtual-thing:',
      '  Installed: (none)',
      '  Candidate: (none)',
      '  Version table:',
      '',
    ].join('\n');
    expect(parsePolicy(text)).toEqual(
      new Map([
        ['qemu-guest-agent', '1:10.0.2+ds-2+deb13u1~bpo12+1'],
        ['virtual-thing', undefined],
      ]),
    );
  });
});

it("downloadFileName writes the epoch's colon as %3a, as apt-get download does", () => {
  expect(downloadFileName('qemu-guest-agent', '1:7.2+dfsg-7', 'amd64')).toBe(
    'qemu-guest-agent_1%3a7.2+dfsg-7_amd64.deb',
  );
});
