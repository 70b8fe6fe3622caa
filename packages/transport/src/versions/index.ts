/**
 * `@qmpkit/transport/versions`: clients typed for a range of QEMU versions and typed capability
 * checks that narrow them (`supports`, `supportsValue`, `supportsFeature`), over the merged
 * view of every version `@qmpkit/qapi` carries. Apart from the root export so that
 * `import { connect } from '@qmpkit/transport'` type-checks one version only.
 */
export type {
  AnyCommandName,
  AnyEventName,
  ArgsIn,
  ArgumentKey,
  ArgumentValueKey,
  CommandsFor,
  EventsFor,
  FeatureNarrow,
  FeatureOf,
  FeatureSubject,
  HasName,
  HasSubject,
  NarrowVersions,
  QemuVersion,
  QmpClientFor,
  VersionedClient,
} from '../client/versions.js';
export { connect, supports, supportsFeature, supportsValue } from '../client/versions.js';
