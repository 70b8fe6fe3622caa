/**
 * Errors of machine's compat module. A probe whose migration QEMU refuses is not an error
 * (it is the `refuse` verdict, with QEMU's reason); these are the cases where no verdict
 * could be reached.
 */

/**
 * - `fingerprint`: the binary's firmware search path could not be read;
 * - `scratch`: the scratch images for the probe could not be made;
 * - `source`: the saving binary did not start the configuration (its stderr says why);
 * - `timeout`: no verdict within the deadline (both QEMUs were ended).
 */
export type CompatProbeProblem = 'fingerprint' | 'scratch' | 'source' | 'timeout';

export class CompatProbeError extends Error {
  override readonly name = 'CompatProbeError' as const;
  readonly problem: CompatProbeProblem;

  constructor(problem: CompatProbeProblem, detail: string, init: { cause?: unknown } = {}) {
    super(`compatibility probe: ${detail}`, init.cause === undefined ? undefined : init);
    this.problem = problem;
  }
}

export function isCompatProbeError(value: unknown): value is CompatProbeError {
  return value instanceof Error && value.name === 'CompatProbeError';
}
