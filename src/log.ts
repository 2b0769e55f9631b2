import { Logger } from 'matrix-appservice-bridge';

export type Log = Logger;

/** One logger per module: `const log = logger('ScimRouter')`. Configured once by start(). */
export function logger(module: string): Log {
  return new Logger(module);
}

export function configureLogging(level: 'debug' | 'info' | 'warn' | 'error'): void {
  Logger.configure({ console: level });
}
