import { describe, expect, it } from 'vitest';
import { chardevArg, deviceArguments, qmpMonitorArgs, toArgv } from './argv.js';
import { isConfigValidationError, isModelError } from './errors.js';
import { GiB, MiB, type VmConfig } from './model.js';
import { sampleConfig } from './sample.test-helper.js';

const stdio = { backend: { type: 'stdio', data: {} } } as const;

function minimal(extra: Partial<VmConfig> = {}): VmConfig {
  return { machine: { type: 'pc-i440fx-7.2' }, memory: { size: 128 * MiB }, ...extra };
}

describe('toArgv', () => {
  it('writes a complex configuration in the documented order', () => {
    expect(toArgv(sampleConfig(), { qmp: stdio })).toMatchInlineSnapshot(`
      [
        "-nodefaults",
        "-machine",
        "type=pc-i440fx-7.2,pflash0=fw-code,pflash1=fw-vars",
        "-accel",
        "kvm",
        "-accel",
        "tcg,thread=single",
        "-cpu",
        "qemu64",
        "-m",
        "size=256M",
        "-smp",
        "cpus=2,sockets=1,cores=2,threads=1",
        "-boot",
        "menu=off,strict=on",
        "-display",
        "none",
        "-S",
        "-incoming",
        "defer",
        "-chardev",
        "stdio,id=qmp0",
        "-mon",
        "chardev=qmp0,mode=control",
        "-object",
        "{"qom-type":"iothread","id":"io0"}",
        "-object",
        "{"qom-type":"throttle-group","id":"tg0","limits":{"iops-total":1000}}",
        "-chardev",
        "file,id=ser0,path=/var/log/vm,,1/serial=0.log",
        "-chardev",
        "ringbuf,id=con0,size=65536",
        "-netdev",
        "{"type":"user","id":"net0","hostfwd":[{"str":"tcp:127.0.0.1:2222-:22"}]}",
        "-blockdev",
        "{"driver":"file","node-name":"disk0-file","filename":"/images/disk0.qcow2"}",
        "-blockdev",
        "{"driver":"file","node-name":"base-file","filename":"/images/base.qcow2","read-only":true}",
        "-blockdev",
        "{"driver":"qcow2","node-name":"base","file":"base-file","backing":null,"read-only":true}",
        "-blockdev",
        "{"driver":"qcow2","node-name":"disk0","file":"disk0-file","backing":"base"}",
        "-blockdev",
        "{"driver":"file","node-name":"data-file","filename":"/images/data.qcow2"}",
        "-blockdev",
        "{"driver":"qcow2","node-name":"data","file":"data-file"}",
        "-blockdev",
        "{"driver":"throttle","node-name":"data-throttle","file":"data","throttle-group":"tg0"}",
        "-blockdev",
        "{"driver":"file","node-name":"scratch-file","filename":"/images/scratch.raw"}",
        "-blockdev",
        "{"driver":"raw","node-name":"scratch","file":"scratch-file"}",
        "-blockdev",
        "{"driver":"file","node-name":"fw-code-file","filename":"/fw/code.fd","read-only":true}",
        "-blockdev",
        "{"driver":"raw","node-name":"fw-code","file":"fw-code-file","read-only":true}",
        "-blockdev",
        "{"driver":"file","node-name":"fw-vars-file","filename":"/fw/vars.fd"}",
        "-blockdev",
        "{"driver":"raw","node-name":"fw-vars","file":"fw-vars-file"}",
        "-device",
        "{"driver":"virtio-blk-pci","id":"vd0","drive":"disk0","iothread":"io0","bootindex":1}",
        "-device",
        "{"driver":"virtio-scsi-pci","id":"scsi0","iothread":"io0"}",
        "-device",
        "{"driver":"scsi-hd","id":"sd0","bus":"scsi0.0","drive":"data-throttle","scsi-id":0}",
        "-device",
        "{"driver":"ide-hd","id":"ide0","bus":"ide.0","drive":"scratch","unit":0}",
        "-device",
        "{"driver":"virtio-net-pci","id":"nic0","netdev":"net0","mac":"52:54:00:12:34:56"}",
        "-device",
        "{"driver":"isa-serial","id":"serial0","chardev":"ser0"}",
        "-device",
        "{"driver":"virtio-serial-pci","id":"vser0"}",
        "-device",
        "{"driver":"virtconsole","id":"vcon0","bus":"vser0.0","chardev":"con0"}",
        "-device",
        "{"driver":"pvpanic","id":"panic0","ioport":1285}",
        "-name",
        "guest=sample,debug-threads=on",
      ]
    `);
  });

  it('is deterministic', () => {
    expect(toArgv(sampleConfig(), { qmp: stdio })).toEqual(toArgv(sampleConfig(), { qmp: stdio }));
  });

  it('writes a minimal configuration', () => {
    expect(toArgv(minimal())).toEqual([
      '-nodefaults',
      '-machine',
      'type=pc-i440fx-7.2',
      '-m',
      'size=128M',
      '-display',
      'none',
    ]);
    expect(toArgv(minimal({ nodefaults: false }))).not.toContain('-nodefaults');
  });

  it('escapes commas in every key=value option and leaves = in values alone', () => {
    const argv = toArgv(
      minimal({
        machine: {
          type: 'pc-i440fx-7.2',
          props: { 'dump-guest-core': false, 'kernel-cmdline': 'a=b,c' },
        },
        accel: [{ type: 'tcg', props: { 'tb-size': 64 } }],
        boot: { order: 'c,d' },
        chardevs: [
          {
            id: 'c0',
            backend: {
              type: 'socket',
              data: {
                addr: { type: 'unix', data: { path: '/run/a,b=c,,d.sock' } },
                server: true,
                wait: false,
              },
            },
          },
        ],
      }),
    );
    expect(argv).toContain('type=pc-i440fx-7.2,dump-guest-core=off,kernel-cmdline=a=b,,c');
    expect(argv).toContain('tcg,tb-size=64');
    expect(argv).toContain('order=c,,d');
    expect(argv).toContain('socket,id=c0,path=/run/a,,b=c,,,,d.sock,server=on,wait=off');
  });

  it('leaves commas alone in JSON options', () => {
    const argv = toArgv(
      minimal({
        blockdevs: [{ driver: 'file', 'node-name': 'f', filename: '/a,b=c.img' }],
        devices: [{ driver: 'ide-hd', id: 'd', drive: 'f', serial: 'x,y' }],
      }),
    );
    expect(argv).toContain('{"driver":"file","node-name":"f","filename":"/a,b=c.img"}');
    expect(argv).toContain('{"driver":"ide-hd","id":"d","drive":"f","serial":"x,y"}');
  });

  it('writes memory sizes with the largest exact suffix', () => {
    const m = (memory: VmConfig['memory']) => {
      const argv = toArgv(minimal({ memory }));
      return argv[argv.indexOf('-m') + 1];
    };
    expect(m({ size: 2 * GiB })).toBe('size=2G');
    expect(m({ size: 1536 * MiB })).toBe('size=1536M');
    expect(m({ size: 64 * MiB + 4096 })).toBe('size=65540K');
    expect(m({ size: 1000 })).toBe('size=1000B');
    expect(m({ size: GiB, slots: 4, 'max-size': 4 * GiB })).toBe('size=1G,slots=4,maxmem=4G');
  });

  it('passes static arguments through untouched, last', () => {
    const argv = toArgv(minimal({ staticArgs: ['-vnc', 'none,,odd', '--'] }));
    expect(argv.slice(-3)).toEqual(['-vnc', 'none,,odd', '--']);
  });

  it('injects the QMP monitor after the global options', () => {
    const config = minimal({ qmp: { chardev: 'mon' }, paused: true });
    const fd = toArgv(config, {
      qmp: {
        backend: {
          type: 'socket',
          data: { addr: { type: 'fd', data: { str: '3' } }, server: true, wait: false },
        },
      },
    });
    expect(fd.slice(fd.indexOf('-S') + 1)).toEqual([
      '-chardev',
      'socket,id=mon,fd=3,server=on,wait=off',
      '-mon',
      'chardev=mon,mode=control',
    ]);
    const raw = toArgv(config, { qmp: { args: ['-qmp', 'unix:/run/q.sock,server=on,wait=off'] } });
    expect(raw.slice(-2)).toEqual(['-qmp', 'unix:/run/q.sock,server=on,wait=off']);
  });

  it('requires the QMP channel exactly when the configuration reserves one', () => {
    const missing = (() => {
      try {
        toArgv(minimal({ qmp: { chardev: 'qmp0' } }));
      } catch (e) {
        return e;
      }
    })();
    expect(isModelError(missing)).toBe(true);
    expect(String(missing)).toContain("reserves a QMP monitor (chardev 'qmp0')");
    expect(() => toArgv(minimal(), { qmp: stdio })).toThrow(/no QMP slot/);
  });

  it('refuses an invalid configuration with every problem listed', () => {
    let error: unknown;
    try {
      toArgv(minimal({ devices: [{ driver: 'virtio-blk-pci', id: 'vd0', drive: 'nope' }] }));
    } catch (e) {
      error = e;
    }
    expect(isConfigValidationError(error)).toBe(true);
    expect(String(error)).toContain("device 'vd0': drive 'nope' names no block node");
  });
});

describe('pieces', () => {
  it('deviceArguments flattens both device forms for device_add', () => {
    expect(
      deviceArguments({ driver: 'virtio-net-pci', id: 'n', netdev: 'x', bus: 'pci.0' }),
    ).toEqual({
      driver: 'virtio-net-pci',
      id: 'n',
      bus: 'pci.0',
      netdev: 'x',
    });
    expect(
      deviceArguments({ driver: 'usb-tablet', id: 't', bus: 'usb.0', props: { port: '1' } }),
    ).toEqual({
      driver: 'usb-tablet',
      id: 't',
      bus: 'usb.0',
      port: '1',
    });
  });

  it('qmpMonitorArgs builds -chardev + -mon', () => {
    expect(
      qmpMonitorArgs('q', {
        type: 'socket',
        data: { addr: { type: 'unix', data: { path: '/r/q,1' } }, server: true, wait: false },
      }),
    ).toEqual([
      '-chardev',
      'socket,id=q,path=/r/q,,1,server=on,wait=off',
      '-mon',
      'chardev=q,mode=control',
    ]);
  });

  it('chardevArg throws for what 7.2 cannot write', () => {
    expect(() => chardevArg({ id: 'm', backend: { type: 'mux', data: { chardev: 'x' } } })).toThrow(
      /chardev 'm': backend.type 'mux'/,
    );
  });
});
