/** What a source (bullmq-source.ts, kue-source.ts) returns for one tenure of its lease. */
export interface SourceConsumer {
  /** Stops taking jobs; resolves once the job in hand was completed or left to the next holder. */
  stop(): Promise<void>;
}
