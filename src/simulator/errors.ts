/** An `error` event body as OpenAI sends it. Thrown only inside the simulator's validators. */
export class SimError {
  constructor(
    readonly code: string | null,
    readonly message: string,
    readonly param: string | null = null,
    readonly type: string = 'invalid_request_error',
  ) {}
}

export function unknownParameter(path: string): SimError {
  return new SimError('unknown_parameter', `Unknown parameter: '${path}'.`, path);
}

export function missingParameter(path: string): SimError {
  return new SimError('missing_required_parameter', `Missing required parameter: '${path}'.`, path);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a decimal';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'boolean') return 'a boolean';
  return `a ${typeof value}`;
}

export function invalidType(path: string, expected: string, got: unknown): SimError {
  return new SimError(
    'invalid_type',
    `Invalid type for '${path}': expected ${expected}, but got ${describe(got)} instead.`,
    path,
  );
}

export function quoteList(values: readonly string[]): string {
  const quoted = values.map((v) => `'${v}'`);
  if (quoted.length <= 1) return quoted.join('');
  return `${quoted.slice(0, -1).join(', ')}, and ${quoted[quoted.length - 1]}`;
}

export function invalidValue(path: string, value: unknown, supported: readonly string[]): SimError {
  return new SimError(
    'invalid_value',
    `Invalid value: '${String(value)}'. Supported values are: ${quoteList(supported)}.`,
    path,
  );
}

export function outOfRange(path: string, value: number, min: number, max: number): SimError {
  const kind = Number.isInteger(value) && Number.isInteger(min) ? 'integer' : 'decimal';
  const below = value < min;
  return new SimError(
    `${kind}_${below ? 'below_min' : 'above_max'}_value`,
    below
      ? `Invalid '${path}': ${kind} below minimum value. Expected a value >= ${min}, but got ${value} instead.`
      : `Invalid '${path}': ${kind} above maximum value. Expected a value <= ${max}, but got ${value} instead.`,
    path,
  );
}
