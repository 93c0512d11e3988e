import type { LoggerService } from '@nestjs/common';
import type { LogConfig } from '../config/sidecar-config';

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
type Level = keyof typeof LEVELS;

const FRAMEWORK_CONTEXTS = new Set(['NestFactory', 'InstanceLoader', 'RoutesResolver', 'RouterExplorer', 'NestApplication']);

/** Header names whose values never reach a log line. */
const SECRET_HEADER =
  /^(authorization|proxy-authorization|cookie|set-cookie|x-hub-signature(-256)?|x-gitlab-token|x-api-key|x-auth-token)$|signature|token|secret/i;

/** A copy of `headers` with secret values replaced, safe to log. */
export function redactHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers)) out[k] = SECRET_HEADER.test(k) ? '[redacted]' : v;
  return out;
}

/**
 * One line per event on stdout: JSON (time, level, msg, context, fields) for log
 * collectors, or a short human form with LOG_FORMAT=pretty. Implements Nest's
 * LoggerService so that the framework's own lines come out the same way.
 */
export class JsonLogger implements LoggerService {
  private readonly min: number;

  constructor(
    private readonly config: LogConfig,
    private readonly write: (line: string) => void = (line) => process.stdout.write(line),
  ) {
    this.min = LEVELS[config.level];
  }

  isEnabled(level: Level): boolean {
    return LEVELS[level] >= this.min;
  }

  log(message: unknown, ...rest: unknown[]): void {
    // Nest's own start-up chatter (modules loaded, routes mapped) is debug detail here.
    const context = rest[rest.length - 1];
    this.emit(typeof context === 'string' && FRAMEWORK_CONTEXTS.has(context) ? 'debug' : 'info', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.emit('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.emit('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.emit('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.emit('debug', message, rest);
  }

  /** Nest calls log(message, context) and error(message, stack, context); fields come as a plain object. */
  private emit(level: Level, message: unknown, rest: unknown[]): void {
    if (LEVELS[level] < this.min) return;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level };
    const context = rest.length > 0 && typeof rest[rest.length - 1] === 'string' ? (rest.pop() as string) : undefined;
    if (context) entry.context = context;
    if (message instanceof Error) {
      entry.msg = message.message;
      entry.stack = message.stack;
    } else if (typeof message === 'object' && message !== null) {
      Object.assign(entry, message);
    } else {
      entry.msg = String(message);
    }
    for (const extra of rest) {
      if (typeof extra === 'string' && level === 'error') entry.stack = extra;
      else if (typeof extra === 'object' && extra !== null) Object.assign(entry, extra);
    }
    this.write(this.config.format === 'json' ? `${JSON.stringify(entry)}\n` : pretty(entry));
  }
}

function asText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function pretty(entry: Record<string, unknown>): string {
  const { time, level, msg, context, ...fields } = entry;
  const extra = Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
  return `${String(time)} ${String(level).toUpperCase().padEnd(5)} ${context ? `[${asText(context)}] ` : ''}${asText(msg ?? '')}${extra}\n`;
}
