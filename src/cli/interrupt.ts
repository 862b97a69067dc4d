// Ways a command is asked to end early, handled alike: Ctrl-C (SIGINT), SIGTERM, SIGHUP, and the reader of stdout
// going away (`pen status --watch | head -n 2`). A command that is running something subscribes with onInterrupt
// and stops it (for `pen run`: the pen is stopped first); with no subscriber a signal ends the process as it would
// without this module, and a closed stdout only discards what is printed after it closed.

export type InterruptCause = 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'stdout closed';

const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const listeners = new Set<(cause: InterruptCause) => void>();
let stdoutClosed = false;

/** What a person would call it, for "…: stopping the pen" lines. */
export function describeCause(cause: InterruptCause): string {
  return cause === 'SIGINT' ? 'Ctrl-C' : cause;
}

function dispatch(cause: InterruptCause): void {
  for (const listener of [...listeners]) listener(cause);
}

const signalHandlers = new Map(signals.map((signal) => [signal, (): void => dispatch(signal)]));

function installSignalHandlers(): void {
  for (const [signal, handler] of signalHandlers) process.on(signal, handler);
}

function removeSignalHandlers(): void {
  for (const [signal, handler] of signalHandlers) process.off(signal, handler);
}

/**
 * Calls listener on each interruption until the returned function is called. While anything listens, SIGINT,
 * SIGTERM and SIGHUP no longer end the process by themselves: the listener must bring the command to its end.
 */
export function onInterrupt(listener: (cause: InterruptCause) => void): () => void {
  if (listeners.size === 0) installSignalHandlers();
  listeners.add(listener);
  if (stdoutClosed) queueMicrotask(() => { if (listeners.has(listener)) listener('stdout closed'); });
  return () => {
    if (!listeners.delete(listener)) return;
    if (listeners.size === 0) removeSignalHandlers();
  };
}

/** Resolves with the first interruption. */
export function waitForInterrupt(): Promise<InterruptCause> {
  return new Promise((resolve) => {
    const unsubscribe = onInterrupt((cause) => {
      unsubscribe();
      resolve(cause);
    });
  });
}

/**
 * For the `pen` process (bin/pen.js), once: a write to a stdout or stderr whose reader has gone (EPIPE) becomes an
 * interruption instead of an uncaught error with a stack trace; later output is dropped.
 */
export function guardStandardStreams(): void {
  process.stdout.on('error', () => {
    if (stdoutClosed) return;
    stdoutClosed = true;
    dispatch('stdout closed');
  });
  process.stderr.on('error', () => {});  // nowhere left to say anything
}

/**
 * For the `pen` process, once main has finished: if anything still keeps the event loop alive after graceMs (a
 * handle someone forgot to close), say so on stderr and exit anyway, so that no command ever hangs at its end.
 */
export function exitWhenIdle(code: number, graceMs = 2000): void {
  process.exitCode = code;
  setTimeout(() => {
    process.stderr.write(`pen: still busy ${graceMs} ms after the command finished (an open handle); exiting\n`);
    process.exit(code);
  }, graceMs).unref();
}
