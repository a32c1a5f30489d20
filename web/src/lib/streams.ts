// Incremental parsers for the two streaming formats the UI reads: server-sent
// events (job progress, OpenAI chat) and NDJSON (Ollama chat).

export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

// Feeds text into an SSE parser; returns complete messages and keeps the rest.
export class SseParser {
  private buf = '';
  push(chunk: string): SseMessage[] {
    this.buf += chunk.replace(/\r\n?/g, '\n');
    const out: SseMessage[] = [];
    let end: number;
    while ((end = this.buf.indexOf('\n\n')) >= 0) {
      const block = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      const msg: SseMessage = { event: 'message', data: '' };
      const data: string[] = [];
      let any = false;
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') {
          data.push(value);
          any = true;
        } else if (field === 'event') {
          msg.event = value;
        } else if (field === 'id') {
          msg.id = value;
        }
      }
      if (!any) continue;
      msg.data = data.join('\n');
      out.push(msg);
    }
    return out;
  }
}

// Feeds text into an NDJSON parser; returns the complete lines' values.
export class NdjsonParser {
  private buf = '';
  push(chunk: string): unknown[] {
    this.buf += chunk;
    const out: unknown[] = [];
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) out.push(JSON.parse(line));
    }
    return out;
  }
  flush(): unknown[] {
    const line = this.buf.trim();
    this.buf = '';
    return line ? [JSON.parse(line)] : [];
  }
}

// Reads a fetch body as text chunks.
export async function* textChunks(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const dec = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield dec.decode(value, { stream: true });
    }
    const tail = dec.decode();
    if (tail) yield tail;
  } finally {
    reader.releaseLock();
  }
}
