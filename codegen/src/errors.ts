/** The generator's errors are the schema model's (one class per kind across the toolkit). */
export { CodegenError, isCodegenError, isSchemaError, SchemaError } from '@qmpkit/schema';
