import type { ChardevBackend } from '@qmpkit/qapi';
import { describe, expect, it } from 'vitest';
import { chardevCli } from './chardev-cli.js';

function text(backend: ChardevBackend, id = 'c0'): string {
  const result = chardevCli(id, backend);
  if (!result.ok) throw new Error(JSON.stringify(result.unsupported));
  return result.text;
}

describe('chardevCli', () => {
  it('maps QAPI members to 7.2 -chardev keys', () => {
    expect(text({ type: 'null', data: {} })).toBe('null,id=c0');
    expect(text({ type: 'pty', data: { logfile: '/l,og', logappend: true } })).toBe(
      'pty,id=c0,logfile=/l,,og,logappend=on',
    );
    expect(text({ type: 'file', data: { out: '/o', append: true } })).toBe(
      'file,id=c0,path=/o,append=on',
    );
    expect(text({ type: 'serial', data: { device: '/dev/ttyS0' } })).toBe(
      'serial,id=c0,path=/dev/ttyS0',
    );
    expect(text({ type: 'pipe', data: { device: '/run/p' } })).toBe('pipe,id=c0,path=/run/p');
    expect(text({ type: 'stdio', data: { signal: false } })).toBe('stdio,id=c0,signal=off');
    expect(text({ type: 'ringbuf', data: { size: 4096 } })).toBe('ringbuf,id=c0,size=4096');
    expect(text({ type: 'memory', data: {} })).toBe('memory,id=c0');
    expect(text({ type: 'vc', data: { cols: 80, rows: 25 } })).toBe('vc,id=c0,cols=80,rows=25');
    expect(text({ type: 'spicevmc', data: { type: 'vdagent' } })).toBe(
      'spicevmc,id=c0,name=vdagent',
    );
    expect(text({ type: 'spiceport', data: { fqdn: 'org.x' } })).toBe('spiceport,id=c0,name=org.x');
    expect(text({ type: 'qemu-vdagent', data: { mouse: true, clipboard: false } })).toBe(
      'qemu-vdagent,id=c0,mouse=on,clipboard=off',
    );
    expect(text({ type: 'dbus', data: { name: 'n' } })).toBe('dbus,id=c0,name=n');
    expect(text({ type: 'msmouse', data: {} })).toBe('msmouse,id=c0');
  });

  it('maps socket addresses and flags (nodelay is 7.2\'s inverse "delay")', () => {
    expect(
      text({
        type: 'socket',
        data: {
          addr: { type: 'inet', data: { host: '127.0.0.1', port: '4444', to: 4450, ipv4: true } },
          server: true,
          wait: false,
          nodelay: true,
          telnet: true,
          reconnect: 5,
          'tls-creds': 'tls0',
        },
      }),
    ).toBe(
      'socket,id=c0,host=127.0.0.1,port=4444,to=4450,ipv4=on,server=on,wait=off,delay=off,telnet=on,reconnect=5,tls-creds=tls0',
    );
    expect(
      text({
        type: 'socket',
        data: { addr: { type: 'unix', data: { path: '/r/s', abstract: true, tight: false } } },
      }),
    ).toBe('socket,id=c0,path=/r/s,abstract=on,tight=off');
    expect(
      text({ type: 'socket', data: { addr: { type: 'fd', data: { str: '3' } }, server: true } }),
    ).toBe('socket,id=c0,fd=3,server=on');
    expect(
      text({
        type: 'udp',
        data: {
          remote: { type: 'inet', data: { host: 'h', port: '1' } },
          local: { type: 'inet', data: { host: '0.0.0.0', port: '2' } },
        },
      }),
    ).toBe('udp,id=c0,host=h,port=1,localaddr=0.0.0.0,localport=2');
  });

  it('reports the members 7.2 has no key for', () => {
    expect(
      chardevCli('c', {
        type: 'socket',
        data: { addr: { type: 'vsock', data: { cid: '3', port: '1' } } },
      }),
    ).toEqual({
      ok: false,
      unsupported: [
        {
          field: 'data.addr.type',
          reason: "'vsock' addresses cannot be written on QEMU 7.2's -chardev socket command line",
        },
      ],
    });
    expect(
      chardevCli('c', {
        type: 'socket',
        data: {
          addr: { type: 'inet', data: { host: 'h', port: '1', numeric: true, mptcp: true } },
        },
      }),
    ).toEqual({
      ok: false,
      unsupported: [
        { field: 'data.addr.data.numeric', reason: 'has no -chardev socket option in QEMU 7.2' },
        { field: 'data.addr.data.mptcp', reason: 'has no -chardev socket option in QEMU 7.2' },
      ],
    });
    expect(
      chardevCli('c', { type: 'udp', data: { remote: { type: 'unix', data: { path: '/x' } } } }).ok,
    ).toBe(false);
    expect(chardevCli('c', { type: 'console', data: {} }).ok).toBe(false);
    expect(chardevCli('c', { type: 'mux', data: { chardev: 'x' } }).ok).toBe(false);
  });
});
