import type { ValidationProblem } from '@qmpkit/qapi/runtime-v1';

/** What kind of thing is wrong. */
export type ProblemCode =
  /** The value does not have the shape the model (or the stored format) requires. */
  | 'format'
  /** QEMU's schema rejects the value (the generated validator's problem is in `detail`). */
  | 'schema'
  /** An id or node name QEMU would refuse (must start with a letter; letters, digits, `-._`). */
  | 'invalid-id'
  /** Two objects of one namespace share an id (node names, devices, netdevs, chardevs, objects). */
  | 'duplicate-id'
  /** A reference names nothing. */
  | 'dangling-reference'
  /** A reference names something of the wrong kind (an iothread that is a memory backend). */
  | 'wrong-kind'
  /** A block child defined inline instead of by node name (the graph needs every node named). */
  | 'inline-node'
  /** References loop (a backing chain, a bridge behind itself). */
  | 'cycle'
  /** A `bus` that neither the machine nor any controller provides. */
  | 'unknown-bus'
  /** A bus of the wrong kind (a SCSI disk on a virtio-serial bus). */
  | 'bus-kind'
  /** No `bus` given and no bus of the needed kind exists. */
  | 'no-bus'
  /** A property of a typed device that its driver does not have in this model. */
  | 'unknown-property'
  /** A device property of the wrong type, or missing although required. */
  | 'property-type'
  /** Something QEMU 7.2's command line cannot express (e.g. a chardev backend option). */
  | 'unsupported-on-cli'
  /** Two settings that contradict each other (two disks on one IDE unit, sizes that differ). */
  | 'conflict'
  /** A value QEMU rejects for reasons other than the schema (empty, NUL byte, out of range). */
  | 'invalid-value'
  /** A device QEMU cannot add or remove while running (ISA, IDE, PCIe root ports). */
  | 'not-hotpluggable';

/** Which part of the configuration a problem is about. */
export type SubjectKind =
  | 'config'
  | 'machine'
  | 'accel'
  | 'cpu'
  | 'memory'
  | 'smp'
  | 'boot'
  | 'qmp'
  | 'object'
  | 'chardev'
  | 'netdev'
  | 'node'
  | 'device'
  | 'static';

export interface ProblemSubject {
  readonly kind: SubjectKind;
  /** The id / node name, or `[index]` when the item has no usable id; empty for singletons. */
  readonly id: string;
}

/** One thing wrong with a configuration. */
export interface ConfigProblem {
  readonly code: ProblemCode;
  readonly subject: ProblemSubject;
  /** The field of the subject, e.g. `drive`, `backing`, `backend.data.addr`; empty if none. */
  readonly field: string;
  /** JSONPath of the bad value inside the configuration, e.g. `$.devices[2].drive`. */
  readonly path: string;
  /** A full sentence naming subject and field: `device 'vd0': drive 'disk9' names no block node`. */
  readonly message: string;
  /** For `schema` problems: the generated validator's own problem. */
  readonly detail?: ValidationProblem;
}

export function subjectLabel(subject: ProblemSubject): string {
  if (subject.id === '') return subject.kind;
  if (subject.id.startsWith('[')) return `${subject.kind}${subject.id}`;
  return `${subject.kind} '${subject.id}'`;
}

export function problem(
  code: ProblemCode,
  subject: ProblemSubject,
  field: string,
  path: string,
  text: string,
  detail?: ValidationProblem,
): ConfigProblem {
  const message = `${subjectLabel(subject)}: ${field === '' ? '' : `${field} `}${text}`;
  return detail === undefined
    ? { code, subject, field, path, message }
    : { code, subject, field, path, message, detail };
}
