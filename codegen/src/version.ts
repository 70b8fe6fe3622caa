/** Version of the generator, written into generated files. Bump with the package version. */
export const GENERATOR_VERSION = '0.1.0';
