// Publish and load jobs: their steps, and the state the UI shows, built from
// the job's events (GET /ms/v1/jobs/{id}/events, server-sent events).
import { authHeaders, ApiError } from './api';
import { SseParser, textChunks } from './streams';
import type { ApiErrorBody, JobEvent, JobSummary } from './types';

export interface StepDef {
  id: string;
  label: string;
  help: string;
}

// Publish stages as the pipeline reports them.
export const PUBLISH_STEPS: StepDef[] = [
  { id: 'download', label: 'Download', help: 'fetch the GGUF (Hugging Face, upload or generated test model)' },
  { id: 'data-key', label: 'Data key', help: 'KMS GenerateDataKey under the model key' },
  { id: 'seal', label: 'Digest + seal', help: 'SHA-256 and SHA-384, chunked AES-256-GCM' },
  { id: 'upload', label: 'Upload', help: 'sealed object to the store' },
  { id: 'manifest', label: 'Manifest', help: 'written last: the model becomes visible' },
];

// Load stages, in order (pipeline::LoadSteps).
export const LOAD_STEPS: StepDef[] = [
  { id: 'header', label: 'Header', help: 'read the sealed header; check the expected SHA-384 and key' },
  { id: 'key-pair', label: 'Key pair', help: 'ephemeral RSA-2048 key, in memory' },
  { id: 'attestation', label: 'Attestation', help: 'TPM document carrying that public key' },
  { id: 'key-release', label: 'Attested key release', help: 'KMS Decrypt with Recipient: policy checks the PCRs' },
  { id: 'download', label: 'Download + unseal', help: 'decrypt chunk by chunk into memory only' },
  { id: 'measure', label: 'PCR15 extend', help: 'PCR15 ← SHA384(PCR15 ‖ SHA-384 of the model)' },
  { id: 'engine', label: 'Engine load', help: 'llama.cpp maps the in-memory model' },
];

export type StepStatus = 'pending' | 'running' | 'done' | 'failed' | 'skipped';

export interface StageProgress {
  done: number;
  total: number;
  unit: string;
  detail: string;
  finished: boolean;
  seconds?: number;
}

export interface JobView {
  id: string;
  kind: string;
  state: 'running' | 'succeeded' | 'failed' | 'cancelled';
  stages: Record<string, StageProgress>;
  order: string[]; // stages in the order first seen
  lastSeq: number;
  result?: unknown;
  error?: ApiErrorBody;
}

export function newJobView(id: string, kind: string): JobView {
  return { id, kind, state: 'running', stages: {}, order: [], lastSeq: 0 };
}

// Applies one event; returns a new view (events at or before lastSeq are ignored).
export function reduceJob(view: JobView, e: JobEvent): JobView {
  if (typeof e.seq === 'number' && e.seq <= view.lastSeq) return view;
  const next: JobView = { ...view, stages: { ...view.stages }, order: [...view.order], lastSeq: e.seq ?? view.lastSeq };
  switch (e.type) {
    case 'progress': {
      const stage = e.stage ?? 'work';
      if (!next.stages[stage]) next.order.push(stage);
      const prev = next.stages[stage];
      next.stages[stage] = {
        done: e.done ?? 0,
        total: e.total ?? 0,
        unit: e.unit ?? prev?.unit ?? 'bytes',
        detail: e.detail || prev?.detail || '',
        finished: Boolean(e.finished) || Boolean(prev?.finished),
        seconds: e.seconds ?? prev?.seconds,
      };
      break;
    }
    case 'succeeded':
      next.state = 'succeeded';
      next.result = e.result;
      break;
    case 'failed':
    case 'cancelled':
      next.state = e.type;
      next.error = e.error;
      break;
  }
  return next;
}

// The view of a job from its summary (GET /ms/v1/jobs/{id}), e.g. after a reload.
export function viewFromSummary(s: JobSummary): JobView {
  const v = newJobView(s.id, s.kind);
  v.state = s.state;
  v.lastSeq = 0; // events are replayed from the start by the caller
  if (s.result) v.result = s.result;
  if (s.error) v.error = s.error;
  return v;
}

// Status of each step of `defs` in a view. A step the job never reported is
// "done" when a later one started (it had nothing to do), "failed" when the
// job failed there, otherwise pending.
export function stepStatuses(view: JobView, defs: StepDef[]): Record<string, StepStatus> {
  const out: Record<string, StepStatus> = {};
  const failedStep = view.state === 'failed' || view.state === 'cancelled' ? failingStep(view, defs) : undefined;
  let laterStarted = false;
  for (let i = defs.length - 1; i >= 0; i--) {
    const id = defs[i].id;
    const st = view.stages[id];
    let s: StepStatus;
    if (failedStep === id) s = 'failed';
    else if (st?.finished) s = 'done';
    else if (st) s = view.state === 'succeeded' || laterStarted ? 'done' : view.state === 'running' ? 'running' : 'pending';
    else s = view.state === 'succeeded' || laterStarted ? 'skipped' : 'pending';
    if (st || s === 'failed') laterStarted = true;
    out[id] = s;
  }
  return out;
}

// The step a failed job stopped at: the one the server names, else the last
// stage that started and did not finish.
export function failingStep(view: JobView, defs: StepDef[]): string | undefined {
  if (view.error?.step) return view.error.step;
  for (let i = view.order.length - 1; i >= 0; i--) {
    const s = view.order[i];
    if (!view.stages[s].finished) return s;
  }
  // Nothing left open: the step after the last finished one.
  const ids = defs.map((d) => d.id);
  let last = -1;
  for (const s of view.order) last = Math.max(last, ids.indexOf(s));
  return ids[last + 1] ?? ids[ids.length - 1];
}

export function fraction(p?: StageProgress): number | undefined {
  if (!p) return 0;
  if (p.finished) return 1;
  if (!p.total) return undefined; // unknown: indeterminate
  return Math.max(0, Math.min(1, p.done / p.total));
}

// Follows a job's events until it is over, reconnecting (from the last event
// seen) when the stream drops. Resolves with the final view.
export async function followJob(
  id: string,
  kind: string,
  onView: (v: JobView) => void,
  signal?: AbortSignal,
): Promise<JobView> {
  let view = newJobView(id, kind);
  let failures = 0;
  while (view.state === 'running') {
    if (signal?.aborted) break;
    try {
      const res = await fetch(`/ms/v1/jobs/${encodeURIComponent(id)}/events?after=${view.lastSeq}`, {
        headers: { ...authHeaders(), Accept: 'text/event-stream', ...(view.lastSeq ? { 'Last-Event-ID': String(view.lastSeq) } : {}) },
        signal,
      });
      if (!res.ok || !res.body) {
        let body: ApiErrorBody = { code: 'http', module: 'server', reason: `http-${res.status}`, message: res.statusText };
        try {
          body = (await res.json()).error ?? body;
        } catch {
          /* not JSON */
        }
        throw new ApiError(res.status, body);
      }
      const parser = new SseParser();
      for await (const chunk of textChunks(res.body)) {
        for (const m of parser.push(chunk)) {
          const e = JSON.parse(m.data) as JobEvent;
          if (e.type === undefined && m.event) (e as JobEvent).type = m.event as JobEvent['type'];
          view = reduceJob(view, e);
        }
        onView(view);
        failures = 0;
      }
    } catch (e) {
      if ((e as Error).name === 'AbortError') break;
      if (e instanceof ApiError && e.status >= 400 && e.status < 500) throw e;
      if (++failures > 30) throw e;
      await new Promise((r) => setTimeout(r, Math.min(5000, 250 * failures)));
    }
  }
  return view;
}
