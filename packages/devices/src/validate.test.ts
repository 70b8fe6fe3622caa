import { describe, expect, it } from 'vitest';
import { ConfigValidationError, isConfigValidationError } from './errors.js';
import { MiB, type VmConfig } from './model.js';
import type { ConfigProblem } from './problems.js';
import { sampleConfig } from './sample.test-helper.js';
import { assertValid, validate } from './validate.js';

function base(extra: Partial<VmConfig> = {}): VmConfig {
  return {
    machine: { type: 'pc-i440fx-7.2' },
    memory: { size: 128 * MiB },
    blockdevs: [
      { driver: 'file', 'node-name': 'disk0-file', filename: '/d.qcow2' },
      { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' },
    ],
    devices: [{ driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0' }],
    ...extra,
  };
}

/** Validates a configuration that is not well-typed on purpose (as from JSON or plain JS). */
function validateUntyped(config: unknown): ConfigProblem[] {
  return validate(config as VmConfig);
}

function brief(problems: readonly ConfigProblem[]): string[] {
  return problems.map((p) => `${p.code} ${p.path}: ${p.message}`);
}

describe('validate', () => {
  it('accepts the sample configuration and a minimal one', () => {
    expect(validate(sampleConfig())).toEqual([]);
    expect(validate(base())).toEqual([]);
  });

  describe('dangling references', () => {
    it('a device whose drive names no node', () => {
      const p = validate(
        base({ devices: [{ driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk9' }] }),
      );
      expect(p).toEqual([
        {
          code: 'dangling-reference',
          subject: { kind: 'device', id: 'vd0' },
          field: 'drive',
          path: '$.devices[0].drive',
          message: "device 'vd0': drive 'disk9' names no block node",
        },
      ]);
    });

    it('a node whose file or backing names no node', () => {
      const p = validate(
        base({
          blockdevs: [{ driver: 'qcow2', 'node-name': 'disk0', file: 'nofile', backing: 'nobase' }],
        }),
      );
      expect(brief(p)).toEqual([
        "dangling-reference $.blockdevs[0].file: node 'disk0': file 'nofile' names no block node",
        "dangling-reference $.blockdevs[0].backing: node 'disk0': backing 'nobase' names no block node",
      ]);
    });

    it('children of quorum and other drivers come from the schema tables', () => {
      const p = validate(
        base({
          blockdevs: [
            ...(base().blockdevs ?? []),
            {
              driver: 'quorum',
              'node-name': 'q',
              children: ['disk0', 'ghost'],
              'vote-threshold': 1,
            },
          ],
        }),
      );
      expect(brief(p)).toEqual([
        "dangling-reference $.blockdevs[2].children[1]: node 'q': children[1] 'ghost' names no block node",
      ]);
    });

    it('netdev, chardev, iothread, throttle group, pflash and memory backend references', () => {
      const p = validate(
        base({
          machine: { type: 'pc-i440fx-7.2', pflash1: 'vars', 'memory-backend': 'ram' },
          blockdevs: [
            ...(base().blockdevs ?? []),
            { driver: 'throttle', 'node-name': 't', file: 'disk0', 'throttle-group': 'tg9' },
          ],
          devices: [
            { driver: 'virtio-blk-pci', id: 'vd0', drive: 't', iothread: 'io9' },
            { driver: 'virtio-net-pci', id: 'nic0', netdev: 'net9' },
            { driver: 'isa-serial', id: 'ser0', chardev: 'chr9' },
            { driver: 'virtio-rng-pci', id: 'rng0', props: { rng: 'rng9' } },
          ],
        }),
      );
      expect(brief(p)).toEqual([
        "dangling-reference $.machine.pflash1: machine: pflash1 'vars' names no block node",
        "dangling-reference $.machine.memory-backend: machine: memory-backend 'ram' names no object",
        "dangling-reference $.blockdevs[2].throttle-group: node 't': throttle-group 'tg9' names no throttle-group object",
        "dangling-reference $.devices[0].iothread: device 'vd0': iothread 'io9' names no iothread object",
        "dangling-reference $.devices[1].netdev: device 'nic0': netdev 'net9' names no netdev",
        "dangling-reference $.devices[2].chardev: device 'ser0': chardev 'chr9' names no chardev",
        "dangling-reference $.devices[3].props.rng: device 'rng0': props.rng 'rng9' names no object",
      ]);
    });

    it('references from generic devices by property name', () => {
      const p = validate(
        base({ devices: [{ driver: 'nvme', id: 'nv0', props: { drive: 'nope', serial: 'x' } }] }),
      );
      expect(brief(p)).toEqual([
        "dangling-reference $.devices[0].props.drive: device 'nv0': props.drive 'nope' names no block node",
      ]);
    });

    it('references between objects, chardevs and netdevs', () => {
      const p = validate(
        base({
          objects: [{ 'qom-type': 'filter-buffer', id: 'f0', netdev: 'net9', interval: 1000 }],
          chardevs: [
            {
              id: 'c0',
              backend: {
                type: 'socket',
                data: {
                  addr: { type: 'inet', data: { host: '::1', port: '0' } },
                  'tls-creds': 'tls9',
                },
              },
            },
          ],
          netdevs: [{ id: 'vu0', type: 'vhost-user', chardev: 'chr9' }],
        }),
      );
      expect(brief(p)).toEqual([
        "dangling-reference $.objects[0].netdev: object 'f0': netdev 'net9' names no netdev",
        "dangling-reference $.chardevs[0].backend.data.tls-creds: chardev 'c0': backend.data.tls-creds 'tls9' names no object",
        "dangling-reference $.netdevs[0].chardev: netdev 'vu0': chardev 'chr9' names no chardev",
      ]);
    });
  });

  it('a reference to an object of the wrong type', () => {
    const p = validate(
      base({
        objects: [{ 'qom-type': 'memory-backend-ram', id: 'mem0', size: 128 * MiB }],
        devices: [{ driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0', iothread: 'mem0' }],
      }),
    );
    expect(brief(p)).toEqual([
      "wrong-kind $.devices[0].iothread: device 'vd0': iothread 'mem0' is a memory-backend-ram object, expected qom-type iothread",
    ]);
  });

  it('duplicate ids, per namespace', () => {
    const p = validate(
      base({
        objects: [
          { 'qom-type': 'iothread', id: 'x' },
          { 'qom-type': 'iothread', id: 'x' },
        ],
        chardevs: [
          { id: 'x', backend: { type: 'null', data: {} } },
          { id: 'qmp0', backend: { type: 'null', data: {} } },
        ],
        netdevs: [{ id: 'x', type: 'user' }],
        blockdevs: [...(base().blockdevs ?? []), { driver: 'null-co', 'node-name': 'disk0' }],
        devices: [
          { driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0' },
          { driver: 'virtio-balloon-pci', id: 'vd0' },
          // The same name in another namespace is fine, as in QEMU.
          { driver: 'virtio-balloon-pci', id: 'x' },
        ],
        qmp: { chardev: 'qmp0' },
      }),
    );
    expect(brief(p)).toEqual([
      "duplicate-id $.objects[1].id: object 'x': id 'x' is already used by $.objects[0] (object names must be unique)",
      "duplicate-id $.blockdevs[2].node-name: node 'disk0': node-name 'disk0' is already used by $.blockdevs[1] (block node names must be unique)",
      "duplicate-id $.devices[1].id: device 'vd0': id 'vd0' is already used by $.devices[0] (device names must be unique)",
      "duplicate-id $.qmp.chardev: qmp: chardev 'qmp0' is reserved for the QMP monitor but $.chardevs[1] uses it too",
    ]);
  });

  it('ids QEMU would refuse', () => {
    const p = validate(
      base({
        blockdevs: [
          { driver: 'null-co', 'node-name': '0disk' },
          { driver: 'null-co', 'node-name': 'a-node-name-that-is-far-too-long' },
        ],
        devices: [{ driver: 'virtio-balloon-pci', id: 'bad id' }],
      }),
    );
    expect(brief(p)).toEqual([
      "invalid-id $.blockdevs[0].node-name: node '0disk': node-name '0disk' is not a valid id (a letter, then letters, digits, '-', '.', '_')",
      "invalid-id $.blockdevs[1].node-name: node 'a-node-name-that-is-far-too-long': node-name 'a-node-name-that-is-far-too-long' is longer than 31 characters",
      "invalid-id $.devices[0].id: device 'bad id': id 'bad id' is not a valid id (a letter, then letters, digits, '-', '.', '_')",
    ]);
  });

  describe('cycles', () => {
    it('a backing chain that loops', () => {
      const p = validate(
        base({
          blockdevs: [
            { driver: 'null-co', 'node-name': 'f' },
            { driver: 'qcow2', 'node-name': 'a', file: 'f', backing: 'b' },
            { driver: 'qcow2', 'node-name': 'b', file: 'f', backing: 'a' },
          ],
          devices: [],
        }),
      );
      expect(brief(p)).toEqual([
        "cycle $.blockdevs[1].backing: node 'a': backing makes the block graph loop: a → b → a",
      ]);
    });

    it('a node that is its own backing', () => {
      const p = validate(
        base({
          blockdevs: [
            { driver: 'null-co', 'node-name': 'f' },
            { driver: 'qcow2', 'node-name': 'a', file: 'f', backing: 'a' },
          ],
          devices: [],
        }),
      );
      expect(brief(p)).toEqual([
        "cycle $.blockdevs[1].backing: node 'a': backing makes the block graph loop: a → a",
      ]);
    });

    it('bridges behind each other', () => {
      const p = validate(
        base({
          devices: [
            { driver: 'pci-bridge', id: 'br0', chassis_nr: 1, bus: 'br1' },
            { driver: 'pci-bridge', id: 'br1', chassis_nr: 2, bus: 'br0' },
          ],
        }),
      );
      expect(brief(p)).toEqual([
        "cycle $.devices[0].bus: device 'br0': bus makes a dependency loop: br0 → br1 → br0",
      ]);
    });
  });

  it('a block child defined inline', () => {
    const p = validate(
      base({
        blockdevs: [
          { driver: 'qcow2', 'node-name': 'disk0', file: { driver: 'file', filename: '/d.qcow2' } },
        ],
      }),
    );
    expect(brief(p)).toEqual([
      "inline-node $.blockdevs[0].file: node 'disk0': file is defined inline; give the child its own block node and name it here (the block graph needs every node named)",
    ]);
  });

  describe('buses', () => {
    it('a bus that does not exist', () => {
      const p = validate(
        base({
          devices: [
            {
              driver: 'virtio-blk-pci',
              id: 'vd0',
              drive: 'disk0',
              bus: 'pcie.0',
              'share-rw': true,
            },
            { driver: 'virtio-scsi-pci', id: 'scsi0' },
            { driver: 'scsi-hd', id: 'sd0', drive: 'disk0', bus: 'scsi0', 'share-rw': true },
          ],
        }),
      );
      expect(brief(p).filter((l) => l.startsWith('unknown-bus'))).toEqual([
        "unknown-bus $.devices[0].bus: device 'vd0': bus 'pcie.0' names no bus (known: pci.0, ide.0, ide.1, isa.0, scsi0.0)",
        "unknown-bus $.devices[2].bus: device 'sd0': bus 'scsi0' is not a bus of device 'scsi0' (virtio-scsi-pci provides 'scsi0.0')",
      ]);
    });

    it('a bus named after a device that provides none', () => {
      const p = validate(
        base({
          devices: [
            { driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0' },
            { driver: 'virtconsole', id: 'c', chardev: 'x', bus: 'vd0.0' },
          ],
          chardevs: [{ id: 'x', backend: { type: 'null', data: {} } }],
        }),
      );
      expect(brief(p)).toEqual([
        "unknown-bus $.devices[1].bus: device 'c': bus 'vd0.0' names no bus: device 'vd0' (virtio-blk-pci) provides none",
      ]);
    });

    it('a bus of the wrong kind', () => {
      const p = validate(
        base({
          devices: [
            { driver: 'virtio-serial-pci', id: 'vser0' },
            { driver: 'scsi-hd', id: 'sd0', drive: 'disk0', bus: 'vser0.0' },
            { driver: 'ide-hd', id: 'ide9', drive: 'disk0', bus: 'pci.0', 'share-rw': true },
          ],
        }),
      );
      expect(brief(p).filter((l) => l.startsWith('bus-kind'))).toEqual([
        "bus-kind $.devices[1].bus: device 'sd0': bus 'vser0.0' is a virtio-serial bus, but scsi-hd plugs into a scsi bus",
        "bus-kind $.devices[2].bus: device 'ide9': bus 'pci.0' is a pci bus, but ide-hd plugs into an ide bus",
      ]);
    });

    it('no bus of the needed kind at all', () => {
      const p = validate(base({ devices: [{ driver: 'scsi-hd', id: 'sd0', drive: 'disk0' }] }));
      expect(brief(p)).toEqual([
        "no-bus $.devices[0].bus: device 'sd0': bus is not given and no scsi bus exists for scsi-hd (add a virtio-scsi-pci controller)",
      ]);
    });

    it('q35 has pcie.0 and six IDE buses; unknown machine types are not checked', () => {
      const q35 = base({
        machine: { type: 'pc-q35-7.2' },
        devices: [
          { driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0', bus: 'pcie.0' },
          { driver: 'ide-cd', id: 'cd', bus: 'ide.5' },
        ],
      });
      expect(validate(q35)).toEqual([]);
      expect(
        validate({
          ...q35,
          machine: { type: 'microvm' },
          devices: [{ driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0', bus: 'whatever.0' }],
        }),
      ).toEqual([]);
    });

    it('buses of generic controllers are not second-guessed', () => {
      const p = validate(
        base({
          devices: [
            { driver: 'lsi53c895a', id: 'lsi', props: {} },
            { driver: 'scsi-hd', id: 'sd0', drive: 'disk0', bus: 'lsi.0' },
          ],
        }),
      );
      expect(p).toEqual([]);
    });
  });

  describe('device properties', () => {
    it('wrong types, missing required properties and unknown properties', () => {
      const p = validateUntyped({
        ...base(),
        devices: [
          {
            driver: 'virtio-blk-pci',
            id: 'vd0',
            bootindex: '1',
            'write-cache': 'maybe',
            'num-queues': 70000,
          },
          { driver: 'virtio-net-pci', id: 'nic0', netdev: 'x', frobnicate: true },
          { driver: 'no-such-driver', id: 'x0' },
        ],
      });
      expect(brief(p)).toEqual([
        'property-type $.devices[0].bootindex: device \'vd0\': bootindex must be an integer in -2147483648..2147483647 (int32), not "1"',
        "property-type $.devices[0].write-cache: device 'vd0': write-cache must be one of 'on', 'off', 'auto', not \"maybe\"",
        "property-type $.devices[0].num-queues: device 'vd0': num-queues must be an integer in 0..65535 (uint16), not 70000",
        "property-type $.devices[0].drive: device 'vd0': drive is required by virtio-blk-pci (a string)",
        "unknown-property $.devices[1].frobnicate: device 'nic0': frobnicate is not a property of virtio-net-pci in this model; use the generic form { driver, id, props } for other properties",
        "unknown-property $.devices[2].driver: device 'x0': driver 'no-such-driver' is not a driver this model types; write the device as { driver, id, bus?, props: { … } }",
      ]);
    });

    it('the generic form: typed drivers keep their property types, identity stays outside props', () => {
      const p = validateUntyped({
        ...base(),
        devices: [
          {
            driver: 'virtio-blk-pci',
            id: 'vd0',
            props: { drive: 'disk0', bootindex: '1', 'x-extra': true },
          },
          { driver: 'virtio-net-pci', id: 'nic0', props: {} },
          {
            driver: 'e1000',
            id: 'e0',
            props: { id: 'other', bus: 'pci.0', mac: '52:54:00:00:00:01' },
          },
        ],
      });
      expect(brief(p)).toEqual([
        'property-type $.devices[0].props.bootindex: device \'vd0\': props.bootindex must be an integer in -2147483648..2147483647 (int32), not "1"',
        "property-type $.devices[1].props.netdev: device 'nic0': props.netdev is required by virtio-net-pci (a string)",
        "format $.devices[2].props.id: device 'e0': props.id belongs next to props, not inside them",
        "format $.devices[2].props.bus: device 'e0': props.bus belongs next to props, not inside them",
      ]);
    });
  });

  describe('values the schema rejects', () => {
    it('runs the generated validator on nodes, netdevs, chardevs and objects', () => {
      const p = validateUntyped({
        ...base(),
        objects: [{ 'qom-type': 'iothread', id: 'io0', 'poll-max-ns': 'fast' }],
        chardevs: [{ id: 'c0', backend: { type: 'file', data: {} } }],
        netdevs: [{ id: 'n0', type: 'user', restrict: 'yes' }],
        blockdevs: [
          {
            driver: 'file',
            'node-name': 'disk0-file',
            filename: '/d.qcow2',
            cache: { direct: 'yes' },
          },
          { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file', 'lazy-refcounts': 1 },
          { driver: 'qcow3', 'node-name': 'x' },
        ],
      });
      expect(brief(p)).toEqual([
        'schema $.objects[0].poll-max-ns: object \'io0\': poll-max-ns expected an integer, got "fast"',
        "schema $.chardevs[0].backend.data.out: chardev 'c0': backend.data.out missing required member 'out' (str)",
        'schema $.netdevs[0].restrict: netdev \'n0\': restrict expected a boolean, got "yes"',
        'schema $.blockdevs[0].cache.direct: node \'disk0-file\': cache.direct expected a boolean, got "yes"',
        "schema $.blockdevs[1].lazy-refcounts: node 'disk0': lazy-refcounts expected a boolean, got 1",
        expect.stringMatching(
          /^schema \$\.blockdevs\[2\]\.driver: node 'x': driver expected one of 'blkdebug' \| .* got 'qcow3' \(BlockdevDriver\)$/,
        ),
      ]);
      expect(p[0]?.detail).toMatchObject({ path: '$.poll-max-ns', kind: 'type' });
    });
  });

  it('chardevs 7.2 cannot write on the command line', () => {
    const p = validate(
      base({
        chardevs: [
          {
            id: 'c0',
            backend: {
              type: 'socket',
              data: { addr: { type: 'inet', data: { host: 'h', port: '1', 'keep-alive': true } } },
            },
          },
          { id: 'c1', backend: { type: 'file', data: { out: '/o', in: '/i' } } },
          { id: 'c2', backend: { type: 'mux', data: { chardev: 'c1' } } },
        ],
      }),
    );
    expect(brief(p)).toEqual([
      "unsupported-on-cli $.chardevs[0].backend.data.addr.data.keep-alive: chardev 'c0': backend.data.addr.data.keep-alive has no -chardev socket option in QEMU 7.2 (hot-plug it with chardev-add, or pass it in staticArgs)",
      "unsupported-on-cli $.chardevs[1].backend.data.in: chardev 'c1': backend.data.in has no -chardev file option in QEMU 7.2 (hot-plug it with chardev-add, or pass it in staticArgs)",
      "unsupported-on-cli $.chardevs[2].backend.type: chardev 'c2': backend.type 'mux' is not a -chardev backend on the command line (QEMU spells it mux=on on the muxed backend) (hot-plug it with chardev-add, or pass it in staticArgs)",
    ]);
    expect(
      validate(
        base({
          chardevs: [{ id: 'c1', backend: { type: 'file', data: { out: '/o', in: '/i' } } }],
        }),
        { hotplugOnly: true },
      ),
    ).toEqual([]);
  });

  describe('conflicts', () => {
    it('two disks on one IDE unit, one SCSI id, one PCI slot', () => {
      const p = validate(
        base({
          blockdevs: [
            ...(base().blockdevs ?? []),
            { driver: 'null-co', 'node-name': 'n1' },
            { driver: 'null-co', 'node-name': 'n2' },
          ],
          devices: [
            { driver: 'ide-hd', id: 'a', drive: 'disk0', bus: 'ide.0', unit: 1 },
            { driver: 'ide-hd', id: 'b', drive: 'n1', bus: 'ide.0', unit: 1 },
            { driver: 'virtio-scsi-pci', id: 's', addr: '0x5' },
            { driver: 'virtio-balloon-pci', id: 'bal', addr: '05.0' },
            { driver: 'scsi-hd', id: 'c', drive: 'n2', 'scsi-id': 3 },
            { driver: 'scsi-cd', id: 'd', 'scsi-id': 3 },
          ],
        }),
      );
      expect(brief(p)).toEqual([
        "conflict $.devices[1]: device 'b': unit takes the same bus address as device 'a'",
        "conflict $.devices[3]: device 'bal': addr takes the same bus address as device 's'",
        "conflict $.devices[5]: device 'd': scsi-id takes the same bus address as device 'c'",
      ]);
    });

    it('a writable node used by two devices, unless both share it', () => {
      const twice = base({
        devices: [
          { driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0' },
          { driver: 'virtio-blk-pci', id: 'vd1', drive: 'disk0' },
        ],
      });
      expect(brief(validate(twice))).toEqual([
        "conflict $.devices[1].drive: device 'vd1': drive 'disk0' is already the drive of device 'vd0' (QEMU refuses a second writer unless both set share-rw)",
      ]);
      const shared = base({
        devices: [
          { driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0', 'share-rw': true },
          { driver: 'virtio-blk-pci', id: 'vd1', drive: 'disk0', 'share-rw': true },
        ],
      });
      expect(validate(shared)).toEqual([]);
    });

    it('machine settings that contradict each other', () => {
      const p = validate(
        base({
          machine: {
            type: 'pc-i440fx-7.2',
            pflash1: 'disk0',
            'memory-backend': 'mem',
            props: { accel: 'kvm', type: 'q35' },
          },
          memory: { size: 128 * MiB, 'max-size': 64 * MiB },
          objects: [{ 'qom-type': 'memory-backend-ram', id: 'mem', size: 256 * MiB }],
        }),
      );
      expect(brief(p)).toEqual([
        "conflict $.machine.pflash1: machine: pflash1 'disk0' is also the drive of device 'vd0'",
        'conflict $.machine.props.accel: machine: props.accel cannot be combined with -accel (QEMU: \'The -accel and "-machine accel=" options are incompatible\'); use accel',
        'conflict $.machine.props.type: machine: props.type duplicates machine.type; set it there',
        'conflict $.memory.max-size: memory: max-size 67108864 is below size 134217728',
        "conflict $.machine.memory-backend: machine: memory-backend 'mem' has size 268435456 but memory.size is 134217728 (QEMU requires them equal)",
      ]);
    });
  });

  describe('invalid values', () => {
    it('names that would turn into option strings or help requests', () => {
      const p = validate(
        base({
          machine: { type: 'help' },
          accel: ['kvm', 'kvm', 'tcg,thread=multi'],
          cpu: 'host,+vmx',
        }),
      );
      expect(brief(p)).toEqual([
        "invalid-value $.machine.type: machine: type 'help' is not a machine type name",
        "duplicate-id $.accel[1]: accel[1]: type 'kvm' is listed twice",
        "invalid-value $.accel[2]: accel[2]: type 'tcg,thread=multi' is not an accelerator name",
        "invalid-value $.cpu: cpu: 'host,+vmx' is not a CPU model name (CPU properties go into staticArgs)",
      ]);
    });

    it('NUL bytes, a zero memory size, zero CPUs', () => {
      const p = validate(
        base({
          memory: { size: 0 },
          smp: { cpus: 0 },
          blockdevs: [
            { driver: 'file', 'node-name': 'disk0-file', filename: '/d\0.qcow2' },
            { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file' },
          ],
        }),
      );
      expect(brief(p)).toEqual([
        'invalid-value $.blockdevs[0].filename: config: blockdevs[0].filename contains a NUL byte',
        'invalid-value $.memory.size: memory: size must be positive, not 0',
        'invalid-value $.smp.cpus: smp: cpus must be at least 1, not 0',
      ]);
    });
  });

  describe('shape problems (from JSON or plain JavaScript)', () => {
    it('are reported alone, with paths', () => {
      const p = validateUntyped({
        machine: { type: 5, pflash0: ['x'] },
        memory: {},
        accel: 'kvm',
        display: 'gtk',
        blockdevs: [{ driver: 'file' }, 'x'],
        devices: [{ driver: 'virtio-blk-pci' }, { driver: 'x', id: 'y', props: { a: {} } }],
        turbo: true,
      });
      expect(brief(p)).toEqual([
        'format $.turbo: config: turbo is not a field of a VM configuration',
        'format $.machine.type: machine: type must be a string, not 5',
        'format $.machine.pflash0: machine: pflash0 must be a string, not an array',
        'format $.accel: config: accel must be an array, not "kvm"',
        'format $.memory.size: memory: size is missing (expected an integer)',
        'format $.display: config: display must be \'none\', not "gtk" (other displays go into staticArgs)',
        'format $.blockdevs[0].node-name: node[0]: node-name is missing (expected a string)',
        'format $.blockdevs[1]: node[1]: must be an object, not "x"',
        'format $.devices[0].id: device[0]: id is missing (expected a string)',
        'property-type $.devices[0].drive: device[0]: drive is required by virtio-blk-pci (a string)',
        "format $.devices[1].props.a: device 'y': props.a must be a string, number or boolean, not an object",
      ]);
    });

    it('a configuration that is not an object', () => {
      expect(brief(validateUntyped(null))).toEqual([
        'format $: config: must be an object, not null',
      ]);
    });
  });
});

describe('assertValid', () => {
  it('throws a ConfigValidationError listing every problem', () => {
    let error: unknown;
    try {
      assertValid(
        base({
          devices: [
            { driver: 'virtio-blk-pci', id: 'vd0', drive: 'a' },
            { driver: 'virtio-blk-pci', id: 'vd1', drive: 'b' },
          ],
        }),
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigValidationError);
    expect(isConfigValidationError(error)).toBe(true);
    const e = error as ConfigValidationError;
    expect(e.name).toBe('ConfigValidationError');
    expect(e.problems).toHaveLength(2);
    expect(e.message).toBe(
      "invalid VM configuration (2 problems):\n  - device 'vd0': drive 'a' names no block node\n  - device 'vd1': drive 'b' names no block node",
    );
  });

  it('the guard recognises a copy from another instance of the package by name', () => {
    const foreign = Object.assign(new Error('x'), { name: 'ConfigValidationError' });
    expect(isConfigValidationError(foreign)).toBe(true);
    expect(isConfigValidationError(new Error('x'))).toBe(false);
  });
});
