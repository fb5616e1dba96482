import { describe, expect, it } from 'vitest';
import { createFaultPoint, parseFaultPlan } from './fault-point.js';

describe('parseFaultPlan', () => {
  it('reads points with an optional hit count', () => {
    expect(parseFaultPlan(undefined)).toBeUndefined();
    expect(parseFaultPlan(' ')).toBeUndefined();
    expect(parseFaultPlan('sender-after-2xx:3, ingest-after-write')).toEqual(
      new Map([
        ['sender-after-2xx', 3],
        ['ingest-after-write', 1],
      ]),
    );
  });

  it('lists every malformed entry', () => {
    expect(() => parseFaultPlan('a:0,b:x,ok:2,C')).toThrow(/"a:0","b:x","C"/);
  });
});

describe('createFaultPoint', () => {
  it('kills on the planned hit of the named point only, once', () => {
    const killed: string[] = [];
    const point = createFaultPoint(parseFaultPlan('x:3'), (name) => killed.push(name));
    for (let i = 0; i < 5; i++) {
      point('y');
      point('x');
    }
    expect(killed).toEqual(['x']);
  });

  it('does nothing without a plan', () => {
    const killed: string[] = [];
    const point = createFaultPoint(undefined, (name) => killed.push(name));
    point('x');
    expect(killed).toEqual([]);
  });
});
