/**
 * Waiting for work that may never settle (a read queued on a connection that was closed), until
 * a long-lived signal aborts.
 *
 * `Promise.race([work, stopped])` with one `stopped` promise for a loop's whole life is a leak:
 * every race adds a reaction to `stopped` that lives as long as it does and holds the race's own
 * promise, and with it the work's result. A reader's loop that races each read that way keeps
 * every batch it ever read (in the sender, about a megabyte a second at 1,000 messages/s, and
 * old-generation collections that grow from 25 to 90 ms within a minute). This listens on the
 * signal only while the work is under way.
 */

/**
 * Resolves with the work's value (or rejects with its error), or with undefined as soon as
 * `signal` aborts, whichever comes first. The listener it adds to `signal` is removed once the
 * work settles, so a loop may call it for every step with one signal.
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) {
    // Nobody waits for it any more; its failure is no one's to report.
    work.catch(() => undefined);
    return Promise.resolve(undefined);
  }
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    work.finally(() => signal.removeEventListener('abort', onAbort)).then(resolve, reject);
  });
}
