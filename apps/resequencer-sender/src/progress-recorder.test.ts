import type { AdvanceOutcome, AdvanceStep } from '@reseq/store';
import { describe, expect, it } from 'vitest';
import { ProgressRecorder } from './progress-recorder.js';

const step = (destination: string, sequence: number): AdvanceStep => ({
  destination,
  leaseValue: 's|1',
  from: sequence,
  to: sequence,
});

/** A writer that records what it was given, in order, and answers `answer` for each step. */
function writer(answer: (s: AdvanceStep) => AdvanceOutcome | Error = () => 'recorded') {
  const batches: AdvanceStep[][] = [];
  let releaseNext: (() => void) | undefined;
  const write = (steps: AdvanceStep[]): Promise<AdvanceOutcome[]> => {
    batches.push(steps);
    return new Promise((resolve, reject) => {
      releaseNext = () => {
        const answers = steps.map(answer);
        const failure = answers.find((a): a is Error => a instanceof Error);
        if (failure) reject(failure);
        else resolve(answers as AdvanceOutcome[]);
      };
    });
  };
  return { batches, write, reply: () => releaseNext?.() };
}

describe('ProgressRecorder.send', () => {
  it('tells the lane its step left the process as soon as the batch is written, before the reply', async () => {
    const w = writer();
    const recorder = new ProgressRecorder(w.write, undefined, () => true);
    const sent = recorder.send(step('a', 1));
    let answered = false;
    void sent.outcome.then(() => (answered = true));

    expect(await sent.left).toBe(true);
    expect(w.batches).toEqual([[step('a', 1)]]);
    expect(answered).toBe(false);
    w.reply();
    expect(await sent.outcome).toBe('recorded');
  });

  it('says a step did not leave where the connection holds writes back, so the lane waits for the reply', async () => {
    const w = writer();
    const recorder = new ProgressRecorder(w.write, undefined, () => false);
    const sent = recorder.send(step('a', 1));
    expect(await sent.left).toBe(false);
    w.reply();
    expect(await sent.outcome).toBe('recorded');
  });

  it('counts nothing as left without a check (the default)', async () => {
    const w = writer();
    const sent = new ProgressRecorder(w.write).send(step('a', 1));
    expect(await sent.left).toBe(false);
    w.reply();
    await sent.outcome;
  });

  it('sends the steps of one turn as one batch, in the order they came, each with its own answer', async () => {
    const w = writer((s) => (s.destination === 'b' ? 'fenced' : 'recorded'));
    const recorder = new ProgressRecorder(w.write, undefined, () => true);
    const a = recorder.send(step('a', 7));
    const b = recorder.send(step('b', 3));
    const c = recorder.record(step('c', 1));
    expect(await Promise.all([a.left, b.left])).toEqual([true, true]);
    expect(w.batches).toEqual([[step('a', 7), step('b', 3), step('c', 1)]]);
    w.reply();
    expect(await Promise.all([a.outcome, b.outcome, c])).toEqual(['recorded', 'fenced', 'recorded']);
  });

  it('rejects the outcome of a failed write, so the lane records the step again', async () => {
    const w = writer(() => new Error('Connection is closed.'));
    const recorder = new ProgressRecorder(w.write, undefined, () => true);
    const sent = recorder.send(step('a', 1));
    expect(await sent.left).toBe(true);
    w.reply();
    await expect(sent.outcome).rejects.toThrow('Connection is closed.');
  });

  it('says a step did not leave when the writer threw before writing anything', async () => {
    const recorder = new ProgressRecorder(
      () => {
        throw new Error('script not defined');
      },
      undefined,
      () => true,
    );
    const sent = recorder.send(step('a', 1));
    expect(await sent.left).toBe(false);
    await expect(sent.outcome).rejects.toThrow('script not defined');
  });
});
