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

/** The `code` of a Node system error (ECONNREFUSED, ENOENT, ...) or an undici error, if it is a string. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  return typeof err.code === 'string' ? err.code : undefined;
}

/** What was thrown, as a message: an Error's own, anything else in its string form. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The first line of a (possibly multi-line) message, e.g. yaml's or dlopen's errors. */
export function firstLine(message: string): string {
  const nl = message.indexOf('\n');
  return nl === -1 ? message : message.slice(0, nl);
}
