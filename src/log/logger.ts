import pino from 'pino';
import type { LogConfig } from '../config/types.js';

export type Logger = pino.Logger;

export interface LoggerHandle {
  logger: Logger;
  /** Write out anything buffered: call before process exit. */
  flush: () => void;
}

/**
 * JSON logs to stdout through sonic-boom's asynchronous buffer: the proxy's hot path must not
 * block on a write(2) per access record. Secrets that can reach a log record are redacted by path.
 */
export function createLogger(config: Pick<LogConfig, 'level'>, opts: { dest?: number | string; sharedStdout?: boolean } = {}): LoggerHandle {
  // Asynchronous (writes batched per event-loop turn) but with no minimum, so lines appear
  // promptly. When several processes share one stdout pipe (cluster mode), a batched write larger
  // than PIPE_BUF could interleave with another process's lines: write each line in one write(2).
  const stream = pino.destination({ dest: opts.dest ?? 1, sync: opts.sharedStdout === true });
  const logger = pino(
    {
      level: config.level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ['headers.authorization', 'headers["proxy-authorization"]', 'token', '*.token', 'password', '*.password'],
        censor: '[redacted]',
      },
    },
    stream,
  );
  return {
    logger,
    flush() {
      try {
        stream.flushSync();
      } catch {
        // flushSync throws if the stream is not ready yet (nothing written): nothing to flush.
      }
    },
  };
}
