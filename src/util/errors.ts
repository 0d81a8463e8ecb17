/**
 * Errors that cross module boundaries carry a stable `code` (like fastify's FST_ERR_*), so logs,
 * tests and operators can match on it instead of on message text.
 */
export class PortcullisError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'PortcullisError';
  }
}

export function isPortcullisError(err: unknown): err is PortcullisError {
  return err instanceof PortcullisError;
}
