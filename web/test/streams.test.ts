import { describe, expect, it } from 'vitest';
import { NdjsonParser, SseParser } from '../src/lib/streams';

describe('SseParser', () => {
  it('parses events split across chunks, with ids, types, comments and CRLF', () => {
    const p = new SseParser();
    expect(p.push(': still running\n\nid: 1\nevent: progress\nda')).toEqual([]);
    expect(p.push('ta: {"seq":1}\n\nid: 2\r\nevent: succeeded\r\ndata: {"seq":2}\r\n\r\n')).toEqual([
      { id: '1', event: 'progress', data: '{"seq":1}' },
      { id: '2', event: 'succeeded', data: '{"seq":2}' },
    ]);
  });
  it('joins multi-line data and defaults the event type', () => {
    expect(new SseParser().push('data: a\ndata: b\n\ndata: [DONE]\n\n')).toEqual([
      { event: 'message', data: 'a\nb' },
      { event: 'message', data: '[DONE]' },
    ]);
  });
});

describe('NdjsonParser', () => {
  it('parses lines split across chunks and flushes the last', () => {
    const p = new NdjsonParser();
    expect(p.push('{"a":1}\n{"b"')).toEqual([{ a: 1 }]);
    expect(p.push(':2}\n\n{"c":3}')).toEqual([{ b: 2 }]);
    expect(p.flush()).toEqual([{ c: 3 }]);
  });
});
