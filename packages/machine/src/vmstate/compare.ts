/**
 * Compares a source and a destination `-dump-vmstate` dump: would the destination load what
 * the source sends? Pure. Asks the questions QEMU's `scripts/vmstate-static-checker.py` asks
 * (sections, versions, fields in wire order, sizes, nested structs, subsections, known
 * renames, `unused` padding, fields moved into a struct without changing the wire), and
 * names what kind of problem each one is.
 *
 * A static comparison over-reports: a subsection the source only sends when needed, or a
 * device the VM does not have, is flagged although a real migration may load fine. Callers
 * that know the VM's devices filter by section.
 */
import { VmstateArchitectureError } from './errors.js';
import type { VmstateDescription, VmstateDump, VmstateField, VmstateSection } from './model.js';
import { FIELD_RENAMES, renamedSection, sameName } from './renames.js';

export type VmstateProblemKind =
  /** The dumps were taken for different machine types: QEMU refuses the stream outright. */
  | 'machine-type'
  /** The destination has no such section. */
  | 'section-missing'
  /** The source's `version_id` is above the destination's `version_id`. */
  | 'version-too-new'
  /** The source's `version_id` is below the destination's `minimum_version_id`. */
  | 'version-too-old'
  /** A struct (or a section) has a description on the source but none on the destination. */
  | 'description-missing'
  /** The destination describes a struct under another name (not a known rename). */
  | 'description-renamed'
  /** A source field is not on the destination (at that place or at all). */
  | 'field-missing'
  /** The destination expects a field the source does not send at that place. */
  | 'field-added'
  /** The same slot carries a differently named field, neither name on the other side. */
  | 'field-renamed'
  /** Both fields exist on both sides, in another order. */
  | 'field-reordered'
  /** A field (not a struct) has another size on the wire. */
  | 'field-size'
  /** `unused` padding on one side does not add up to the fields on the other. */
  | 'unused-size'
  /** A subsection of the source is unknown to the destination. */
  | 'subsection-missing';

export interface VmstateProblem {
  /** The section (dump key, source side). */
  readonly section: string;
  /** The description (struct or subsection) inside the section, when the problem is in one. */
  readonly description?: string;
  /** The field concerned, when there is one. */
  readonly field?: string;
  readonly kind: VmstateProblemKind;
  readonly message: string;
}

export interface VmstateDiffOptions {
  /** Compare destination → source instead (the checker's `--reverse`). */
  readonly reverse?: boolean;
}

export interface VmstateDiff {
  readonly source: { readonly machine: string };
  readonly destination: { readonly machine: string };
  readonly problems: readonly VmstateProblem[];
}

/**
 * Every problem loading `source`'s stream into `destination` would meet, in source order.
 * Throws `VmstateArchitectureError` when the dumps are of different target architectures.
 */
export function diffVmstate(
  source: VmstateDump,
  destination: VmstateDump,
  options: VmstateDiffOptions = {},
): VmstateDiff {
  const [src, dst] = options.reverse ? [destination, source] : [source, destination];
  if (
    src.architecture !== undefined &&
    dst.architecture !== undefined &&
    src.architecture !== dst.architecture
  ) {
    throw new VmstateArchitectureError(
      src.architecture,
      dst.architecture,
      `machine types ${src.machine} and ${dst.machine}`,
    );
  }
  const problems: VmstateProblem[] = [];
  if (src.machine !== dst.machine) {
    problems.push({
      section: 'vmschkmachine',
      kind: 'machine-type',
      message: `machine type ${JSON.stringify(src.machine)} on the source, ${JSON.stringify(dst.machine)} on the destination: QEMU refuses a stream from another machine type`,
    });
  }
  for (const s of src.sections.values()) {
    const other = renamedSection(s.key);
    const d =
      dst.sections.get(s.key) ?? (other === undefined ? undefined : dst.sections.get(other));
    if (d === undefined) {
      problems.push({
        section: s.key,
        kind: 'section-missing',
        message: `section ${JSON.stringify(s.key)} does not exist on the destination`,
      });
      continue;
    }
    new SectionComparison(s.key, problems).compare(s, d);
  }
  return { source: { machine: src.machine }, destination: { machine: dst.machine }, problems };
}

/** A stack of field lists: descend into a struct's fields, come back where we left off. */
class FieldCursor {
  private readonly frames: { fields: readonly VmstateField[]; index: number }[];

  constructor(fields: readonly VmstateField[]) {
    this.frames = [{ fields, index: 0 }];
  }

  /** The current field, leaving finished structs; `undefined` at the end. */
  current(): VmstateField | undefined {
    for (;;) {
      const top = this.frames.at(-1);
      if (top === undefined) return undefined;
      const field = top.fields[top.index];
      if (field !== undefined) return field;
      if (this.frames.length === 1) return undefined;
      this.frames.pop();
    }
  }

  advance(): void {
    this.current();
    const top = this.frames.at(-1);
    if (top !== undefined) top.index++;
  }

  /** Replaces the current (struct) field by its own fields. */
  descend(field: VmstateField): void {
    this.advance();
    this.frames.push({ fields: field.description?.fields ?? [], index: 0 });
  }

  /** Names of the fields after the current one, at this level and the levels above. */
  rest(): Set<string> {
    const names = new Set<string>();
    for (const frame of this.frames)
      for (const f of frame.fields.slice(frame.index + 1)) names.add(f.name);
    return names;
  }
}

/** The first field of `field`'s struct names `name` (a field moved into a struct). */
function structStartsWith(field: VmstateField, name: string): boolean {
  const desc = field.description;
  const first = desc?.fields?.[0];
  return (
    desc !== undefined &&
    first !== undefined &&
    sameName(FIELD_RENAMES, desc.name, first.name, name)
  );
}

class SectionComparison {
  constructor(
    private readonly key: string,
    private readonly problems: VmstateProblem[],
  ) {}

  private report(
    kind: VmstateProblemKind,
    message: string,
    at: { description?: string; field?: string } = {},
  ): void {
    this.problems.push({ section: this.key, ...at, kind, message });
  }

  compare(s: VmstateSection, d: VmstateSection): void {
    this.versions(s, d, {});
    if (s.description === undefined) return;
    if (d.description === undefined) {
      this.report('description-missing', 'the destination section has no description');
      return;
    }
    this.description(s.description, d.description);
  }

  private versions(
    s: { versionId: number },
    d: { versionId: number; minimumVersionId?: number },
    at: { description?: string; field?: string },
  ): void {
    const what =
      at.field !== undefined
        ? `field ${JSON.stringify(at.field)}`
        : at.description !== undefined
          ? `description ${JSON.stringify(at.description)}`
          : 'section';
    if (s.versionId > d.versionId)
      this.report(
        'version-too-new',
        `${what}: source version ${s.versionId} is above the destination's ${d.versionId}`,
        at,
      );
    if (d.minimumVersionId !== undefined && s.versionId < d.minimumVersionId)
      this.report(
        'version-too-old',
        `${what}: source version ${s.versionId} is below the destination's minimum ${d.minimumVersionId}`,
        at,
      );
  }

  description(s: VmstateDescription, d: VmstateDescription): void {
    const at = { description: s.name };
    this.versions(s, d, at);
    if (!sameName(FIELD_RENAMES, this.key, s.name, d.name)) {
      this.report(
        'description-renamed',
        `description ${JSON.stringify(s.name)} is ${JSON.stringify(d.name)} on the destination; not compared further`,
        at,
      );
      return;
    }
    if (s.fields !== undefined) this.fields(s.name, s.fields, d.fields ?? []);
    for (const sub of s.subsections ?? []) {
      const match = d.subsections?.find((x) => x.name === sub.name);
      if (match === undefined)
        this.report(
          'subsection-missing',
          `subsection ${JSON.stringify(sub.name)} is unknown to the destination (a load fails if the source sends it)`,
          at,
        );
      else this.description(sub, match);
    }
  }

  private fields(desc: string, src: readonly VmstateField[], dst: readonly VmstateField[]): void {
    const s = new FieldCursor(src);
    const d = new FieldCursor(dst);
    for (;;) {
      const sf = s.current();
      if (sf === undefined) return;
      const df = d.current();
      if (df === undefined) {
        this.report(
          'field-missing',
          `field ${JSON.stringify(sf.name)} is sent, but the destination expects no further fields`,
          { description: desc, field: sf.name },
        );
        return;
      }
      if (!sameName(FIELD_RENAMES, desc, sf.name, df.name)) {
        // The same wire bytes, now inside (or no longer inside) a struct.
        if (structStartsWith(df, sf.name)) {
          d.descend(df);
          continue;
        }
        if (structStartsWith(sf, df.name)) {
          s.descend(sf);
          continue;
        }
        if (sf.name === 'unused' || df.name === 'unused') {
          if (!this.padding(desc, s, d)) return;
          continue;
        }
        this.mismatch(desc, sf, df, s.rest(), d.rest());
        return;
      }
      this.versions(sf, df, { description: desc, field: sf.name });
      if (sf.description === undefined) {
        if (sf.size !== df.size)
          this.report(
            'field-size',
            `field ${JSON.stringify(sf.name)} is ${sf.size} bytes on the source, ${df.size} on the destination`,
            { description: desc, field: sf.name },
          );
      } else if (df.description === undefined) {
        this.report(
          'description-missing',
          `field ${JSON.stringify(sf.name)} is a struct on the source but not on the destination`,
          { description: desc, field: sf.name },
        );
      } else {
        this.description(sf.description, df.description);
      }
      s.advance();
      d.advance();
    }
  }

  /**
   * `unused` padding on one side stands for fields on the other: consume fields there until
   * their sizes add up to the padding. Returns `false` (after reporting) when they do not.
   */
  private padding(desc: string, s: FieldCursor, d: FieldCursor): boolean {
    const sf = s.current();
    const df = d.current();
    if (sf === undefined || df === undefined) return false;
    const [pad, padSide, otherSide] = sf.name === 'unused' ? [sf, s, d] : [df, d, s];
    let remaining = pad.size;
    padSide.advance();
    while (remaining > 0) {
      const f = otherSide.current();
      if (f === undefined || f.size > remaining) {
        this.report(
          'unused-size',
          `${pad.size} bytes of "unused" padding on the ${padSide === s ? 'source' : 'destination'} do not match the fields on the other side${f === undefined ? '' : ` (near ${JSON.stringify(f.name)})`}`,
          { description: desc, field: f?.name ?? pad.name },
        );
        return false;
      }
      remaining -= f.size;
      otherSide.advance();
    }
    return true;
  }

  private mismatch(
    desc: string,
    sf: VmstateField,
    df: VmstateField,
    srcRest: Set<string>,
    dstRest: Set<string>,
  ): void {
    const srcLater = dstRest.has(sf.name);
    const dstLater = srcRest.has(df.name);
    const at = { description: desc, field: sf.name };
    const tail = '; the rest of this description is not compared';
    if (srcLater && dstLater)
      this.report(
        'field-reordered',
        `fields ${JSON.stringify(sf.name)} and ${JSON.stringify(df.name)} come in another order on the destination${tail}`,
        at,
      );
    else if (srcLater)
      this.report(
        'field-added',
        `the destination expects ${JSON.stringify(df.name)} before ${JSON.stringify(sf.name)}, and the source does not send it${tail}`,
        { description: desc, field: df.name },
      );
    else if (dstLater)
      this.report(
        'field-missing',
        `field ${JSON.stringify(sf.name)} is sent, but the destination has no such field (it expects ${JSON.stringify(df.name)} here)${tail}`,
        at,
      );
    else
      this.report(
        'field-renamed',
        `field ${JSON.stringify(sf.name)} is ${JSON.stringify(df.name)} on the destination (not a known rename)${tail}`,
        at,
      );
  }
}
