// The resident anonymous memory (RssAnon) of a running `modelseal up`, for the
// tests that check the server hands back what its jobs freed.
import { readFileSync } from 'node:fs';
import path from 'node:path';

// RssAnon, in bytes, of the `up` whose state directory is `state`.
export function upRssAnon(state) {
  const { pid } = JSON.parse(readFileSync(path.join(state, 'up.json'), 'utf8'));
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^RssAnon:\s+(\d+) kB/m);
  return Number(m[1]) * 1024;
}
