import { describe, expect, it } from 'vitest';
import { createFaultPoint, parseFaultPlan, type FaultAction } from './fault-point.js';

describe('parseFaultPlan', () => {
  it('reads points with an optional hit count and action', () => {
    expect(parseFaultPlan(undefined)).toBeUndefined();
    expect(parseFaultPlan(' ')).toBeUndefined();
    expect(parseFaultPlan('sender-after-2xx:3, ingest-after-write,sender-before-send:2:stop,x:kill')).toEqual(
      new Map([
        ['sender-after-2xx', { at: 3, action: 'kill' }],
        ['ingest-after-write', { at: 1, action: 'kill' }],
        ['sender-before-send', { at: 2, action: 'stop' }],
        ['x', { at: 1, action: 'kill' }],
      ]),
    );
  });

  it('lists every malformed entry', () => {
    expect(() => parseFaultPlan('a:0,b:x,ok:2,C,d:1:pause')).toThrow(/"a:0","b:x","C","d:1:pause"/);
  });
});

describe('createFaultPoint', () => {
  it('acts on the planned hit of the named point only, once', () => {
    const acted: [string, FaultAction][] = [];
    const point = createFaultPoint(parseFaultPlan('x:3,y:1:stop'), (name, action) => acted.push([name, action]));
    for (let i = 0; i < 5; i++) {
      point('y');
      point('x');
      point('z');
    }
    expect(acted).toEqual([
      ['y', 'stop'],
      ['x', 'kill'],
    ]);
  });

  it('does nothing without a plan', () => {
    const acted: string[] = [];
    const point = createFaultPoint(undefined, (name) => acted.push(name));
    point('x');
    expect(acted).toEqual([]);
  });
});
