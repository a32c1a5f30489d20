import { describe, expect, it } from 'vitest';
import { LOAD_STEPS, PUBLISH_STEPS, failingStep, fraction, newJobView, reduceJob, stepStatuses } from '../src/lib/jobs';
import type { JobEvent } from '../src/lib/types';

let seq = 0;
const prog = (stage: string, done: number, total: number, finished = false): JobEvent => ({ seq: ++seq, time: '', type: 'progress', stage, done, total, unit: 'bytes', detail: '', finished });

describe('reduceJob', () => {
  it('tracks stages in order, ignores replayed events and records the result', () => {
    seq = 0;
    let v = newJobView('publish-1', 'publish');
    const events = [prog('download', 0, 0), prog('download', 10, 10, true), prog('data-key', 1, 1, true), prog('seal', 5, 10)];
    for (const e of events) v = reduceJob(v, e);
    const again = reduceJob(v, events[1]);
    expect(again).toBe(v);
    expect(v.order).toEqual(['download', 'data-key', 'seal']);
    expect(fraction(v.stages.seal)).toBe(0.5);
    expect(fraction(v.stages.download)).toBe(1);
    expect(fraction({ done: 3, total: 0, unit: 'bytes', detail: '', finished: false })).toBeUndefined();
    expect(stepStatuses(v, PUBLISH_STEPS)).toEqual({ download: 'done', 'data-key': 'done', seal: 'running', upload: 'pending', manifest: 'pending' });
    v = reduceJob(v, { seq: ++seq, time: '', type: 'succeeded', result: { manifest: { name: 'tiny' } } });
    expect(v.state).toBe('succeeded');
    expect(stepStatuses(v, PUBLISH_STEPS).seal).toBe('done');
    expect(stepStatuses(v, PUBLISH_STEPS).manifest).toBe('skipped');
  });

  it('names the failing step of a load and marks earlier steps done', () => {
    seq = 0;
    let v = newJobView('load-1', 'load');
    for (const e of [prog('header', 1, 1, true), prog('key-pair', 1, 1, true), prog('attestation', 1, 1, true), prog('key-release', 0, 1)]) v = reduceJob(v, e);
    v = reduceJob(v, { seq: ++seq, time: '', type: 'failed', error: { code: 'permission-denied', module: 'kms', reason: 'AccessDeniedException', message: 'denied', step: 'key-release' } });
    expect(v.state).toBe('failed');
    expect(failingStep(v, LOAD_STEPS)).toBe('key-release');
    const st = stepStatuses(v, LOAD_STEPS);
    expect(st).toEqual({ header: 'done', 'key-pair': 'done', attestation: 'done', 'key-release': 'failed', download: 'pending', measure: 'pending', engine: 'pending' });
  });

  it('without a named step, the failing step is the one left open', () => {
    seq = 0;
    let v = newJobView('load-2', 'load');
    for (const e of [prog('header', 1, 1, true), prog('download', 3, 10)]) v = reduceJob(v, e);
    v = reduceJob(v, { seq: ++seq, time: '', type: 'failed', error: { code: 'io', module: 'store', reason: 'io', message: 'x' } });
    expect(failingStep(v, LOAD_STEPS)).toBe('download');
    expect(stepStatuses(v, LOAD_STEPS)['key-release']).toBe('skipped');
  });
});
