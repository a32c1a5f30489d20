import { describe, expect, it } from 'vitest';
import { ApiError, errorOf, hintFor } from '../src/lib/api';

describe('hintFor: every error says what to do', () => {
  it('names the fix for the usual failures', () => {
    expect(hintFor(0, {})).toMatch(/modelseal up/);
    expect(hintFor(401, { module: 'server', reason: 'unauthorized' })).toMatch(/Change token/);
    expect(hintFor(403, { module: 'server', reason: 'forbidden' })).toMatch(/token of the role/);
    expect(hintFor(500, { module: 'kms', reason: 'AccessDeniedException', step: 'key-release' })).toMatch(/Seal model weights/);
    expect(hintFor(400, { module: 'server', reason: 'not-gguf' })).toMatch(/\.gguf/);
    expect(hintFor(503, { module: 'store', reason: 'io' })).toMatch(/Environment/);
  });
  it('never leaves a hint empty', () => {
    for (const status of [0, 400, 401, 403, 404, 409, 422, 500, 503, 418]) expect(hintFor(status, {}).length).toBeGreaterThan(10);
  });
});

describe('errorOf', () => {
  it('shows the module and message of an API error', () => {
    const e = errorOf(new ApiError(404, { code: 'not-found', module: 'store', reason: 'not-found', message: 'no object x' }));
    expect(e.message).toBe('store: no object x');
    expect(e.hint).toMatch(/refresh/);
  });
  it('copes with plain errors', () => {
    expect(errorOf(new Error('boom')).message).toBe('boom');
  });
});
