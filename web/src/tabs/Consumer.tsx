import { useEffect, useRef, useState } from 'react';
import { Action, Confirm, Digest, Empty, ErrorBox, Field, OkBadge, Panel, StepList, TabPanel, Tabs, useLoad } from '../components/ui';
import { api, ApiError, authHeaders, errorOf, get, post } from '../lib/api';
import { bytes, shortHex } from '../lib/format';
import { followJob, LOAD_STEPS, failingStep, type JobView } from '../lib/jobs';
import { usePersisted } from '../lib/persist';
import { NdjsonParser, textChunks } from '../lib/streams';
import type { JobSummary, LoadedModel, Pcr15Log, PcrsReply, PublishedList } from '../lib/types';
import { useSession } from '../session';
import { VerdictView } from './Owner';

const SUBS = [
  { id: 'loaded', label: 'Loaded models' },
  { id: 'loader', label: 'Model loader' },
  { id: 'chat', label: 'Chat' },
] as const;
type Sub = (typeof SUBS)[number]['id'];

export function Consumer({ sub }: { sub: string }) {
  const { go } = useSession();
  const s: Sub = SUBS.some((x) => x.id === sub) ? (sub as Sub) : 'loaded';
  return (
    <>
      <Tabs tabs={[...SUBS]} value={s} onChange={(v) => go(`consumer/${v}`)} label="Model consumer" idPrefix="consumer" />
      <TabPanel idPrefix="consumer" tab={s}>
        {s === 'loaded' && <Loaded />}
        {s === 'loader' && <Loader />}
        {s === 'chat' && <Chat />}
      </TabPanel>
    </>
  );
}

// ---------------------------------------------------------------- Loaded models

function Loaded() {
  const { go } = useSession();
  const list = useLoad((s) => get<{ models: LoadedModel[] }>('/ms/v1/models/loaded', s), []);
  const [victim, setVictim] = useState<string>();
  const [error, setError] = useState<unknown>();
  const unload = async (name: string) => {
    setVictim(undefined);
    try {
      await api('DELETE', `/ms/v1/models/loaded/${encodeURIComponent(name)}`);
      list.reload();
    } catch (e) {
      setError(e);
    }
  };
  const models = list.data?.models ?? [];
  return (
    <Panel title="Loaded models" actions={<button type="button" className="btn" onClick={list.reload} disabled={list.loading} data-testid="refresh-loaded">{list.loading ? 'Refreshing…' : 'Refresh'}</button>}>
      <ErrorBox error={list.error} title="Could not list the loaded models" />
      <ErrorBox error={error} title="Could not unload" />
      {list.data && models.length === 0 && (
        <Empty title="No model loaded">
          <p>Load a published model in the Model loader: the machine attests itself, gets the key, and measures the model into PCR15.</p>
          <button type="button" className="btn" onClick={() => go('consumer/loader')}>Open Model loader</button>
        </Empty>
      )}
      <div className="cards">
        {models.map((m) => (
          <article key={m.name} className="card" data-loaded={m.name} aria-label={`Loaded model ${m.name}`}>
            <h3>{m.name} {m.measured ? <span className="badge ok">measured</span> : <span className="badge warn">not measured</span>}</h3>
            <dl className="kv small">
              <dt>SHA-256</dt><dd><Digest value={m.sha256} label={`SHA-256 of ${m.name}`} short /></dd>
              <dt>SHA-384</dt><dd><Digest value={m.sha384} label={`SHA-384 of ${m.name}`} short /></dd>
              <dt>Size</dt><dd>{bytes(m.size)}</dd>
              <dt>PCR15 after</dt><dd><Digest value={m.pcr15_after} label={`PCR15 after loading ${m.name}`} short /></dd>
              {m.architecture && <><dt>Model</dt><dd>{m.architecture}{m.file_type ? ` · ${m.file_type}` : ''}{m.parameters ? ` · ${(m.parameters / 1e6).toFixed(1)}M params` : ''}</dd></>}
              {m.context_length !== undefined && <><dt>Context</dt><dd>{m.context_length} tokens{m.gpu_layers ? ` · ${m.gpu_layers} GPU layers` : ''}</dd></>}
              <dt>Source</dt><dd className="mono" style={{ overflowWrap: 'anywhere' }}>{m.source}</dd>
            </dl>
            <div className="row" style={{ marginTop: '0.6rem' }}>
              <button type="button" className="btn small" onClick={() => { localStorage.setItem('modelseal.ui.chat.model', JSON.stringify(m.name)); go('consumer/chat'); }}>Chat</button>
              <Action need="consumer" className="btn small danger" onClick={() => setVictim(m.name)} aria-label={`Unload ${m.name}`}>Unload</Action>
            </div>
          </article>
        ))}
      </div>
      <Confirm open={victim !== undefined} title={`Unload ${victim}?`} confirmLabel="Unload" onConfirm={() => victim && unload(victim)} onCancel={() => setVictim(undefined)}>
        <p>The model leaves memory. PCR15 keeps its measurement (a PCR can only be extended); the measurement log marks it unloaded.</p>
      </Confirm>
    </Panel>
  );
}

// ---------------------------------------------------------------- Model loader

type Mode = 'published' | 'object' | 'legacy';

function Loader() {
  const { who, go } = useSession();
  const published = useLoad((s) => get<PublishedList>('/ms/v1/models/published', s), []);
  const [mode, setMode] = usePersisted<Mode>('load.mode', 'published');
  const [pub, setPub] = usePersisted('load.published', '');
  const [object, setObject] = usePersisted('load.object', '');
  const [legacyObject, setLegacyObject] = usePersisted('load.legacy_object', 'models/model.gguf.enc');
  const [legacyDatakey, setLegacyDatakey] = usePersisted('load.legacy_datakey', 'models/model.gguf.datakey.enc');
  const [keyId, setKeyId] = usePersisted('load.key', '');
  const [name, setName] = usePersisted('load.name', '');
  const [expect, setExpect] = usePersisted('load.expect', '');
  const [rehash, setRehash] = usePersisted('load.rehash', false);
  const [jobId, setJobId] = usePersisted('load.job', '');
  const [view, setView] = useState<JobView>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  const models = published.data?.models ?? [];
  useEffect(() => {
    if (mode === 'published' && !pub && models.length) setPub(models[0].name);
  }, [mode, pub, models, setPub]);
  useEffect(() => {
    if (!jobId) return;
    const ac = new AbortController();
    followJob(jobId, 'load', setView, ac.signal).then((v) => !ac.signal.aborted && setView(v)).catch((e) => {
      if (ac.signal.aborted) return;
      if ((e as ApiError).status === 404) setJobId('');
      else setError(e);
    });
    return () => ac.abort();
  }, [jobId, setJobId]);

  const chosen = models.find((m) => m.name === pub);
  const expectBad = expect !== '' && !/^[0-9a-fA-F]{96}$/.test(expect);
  const blocked = expectBad ? 'The expected SHA-384 must be 96 hex digits.'
    : mode === 'published' && !pub ? 'Choose a published model.'
    : mode === 'object' && !object ? 'Enter the sealed object name.'
    : mode === 'legacy' && (!legacyObject || !legacyDatakey || !keyId) ? 'The original layout needs both object names and the key.'
    : view?.state === 'running' ? 'A load is running.' : undefined;

  const submit = async () => {
    setBusy(true);
    setError(undefined);
    const body: Record<string, unknown> = { key_id: keyId || undefined, name: name || undefined, expect_sha384: expect || undefined, rehash: rehash || undefined };
    if (mode === 'published') body.published = pub;
    if (mode === 'object') body.object = object;
    if (mode === 'legacy') Object.assign(body, { legacy_object: legacyObject, legacy_datakey: legacyDatakey });
    try {
      const r = await post<{ job: JobSummary }>('/ms/v1/models/load', body);
      setView(undefined);
      setJobId(r.job.id);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const result = view?.result as { model?: LoadedModel; pcr15_after?: string; key_arn?: string; development_attestation?: boolean; attestation_module_id?: string } | undefined;
  const failed = view && (view.state === 'failed' || view.state === 'cancelled');
  const failStep = failed ? failingStep(view, LOAD_STEPS) : undefined;
  return (
    <div className="grid2">
      <Panel title="Model loader">
        <form className="form" onSubmit={(e) => { e.preventDefault(); if (!blocked) void submit(); }}>
          <fieldset>
            <legend>What to load</legend>
            <div className="choices">
              {([['published', 'A published model'], ['object', 'A sealed object'], ['legacy', 'Original sample layout']] as const).map(([v, l]) => (
                <label key={v} className="choice"><input type="radio" name="load-mode" checked={mode === v} onChange={() => setMode(v)} /> {l}</label>
              ))}
            </div>
            {mode === 'published' && (
              <div style={{ marginTop: '0.6rem' }}>
                <Field label="Published model" help={published.error ? errorOf(published.error).message : models.length === 0 && published.data ? 'Nothing is published yet: ask the owner to publish a model.' : chosen ? `${bytes(chosen.plaintext_size)} · SHA-384 ${shortHex(chosen.sha384)}` : undefined}>
                  {(id, h) => (
                    <select id={id} value={pub} onChange={(e) => setPub(e.target.value)} aria-describedby={h}>
                      {!pub && <option value="">Choose…</option>}
                      {pub && !chosen && <option value={pub}>{pub}</option>}
                      {models.map((m) => <option key={m.name} value={m.name}>{m.name}</option>)}
                    </select>
                  )}
                </Field>
                <button type="button" className="btn small" onClick={published.reload} style={{ marginTop: '0.4rem' }}>Refresh list</button>
              </div>
            )}
            {mode === 'object' && (
              <div style={{ marginTop: '0.6rem' }}>
                <Field label="Sealed object" help="NAME.<random>.msealed, as Published models shows it.">{(id, h) => <input id={id} value={object} onChange={(e) => setObject(e.target.value)} aria-describedby={h} spellCheck={false} />}</Field>
              </div>
            )}
            {mode === 'legacy' && (
              <div className="form" style={{ marginTop: '0.6rem' }}>
                <Field label="Encrypted model (.gguf.enc)">{(id) => <input id={id} value={legacyObject} onChange={(e) => setLegacyObject(e.target.value)} spellCheck={false} />}</Field>
                <Field label="Encrypted data key (.gguf.datakey.enc)">{(id) => <input id={id} value={legacyDatakey} onChange={(e) => setLegacyDatakey(e.target.value)} spellCheck={false} />}</Field>
              </div>
            )}
          </fieldset>
          <div className="row">
            <Field label="KMS key" help={mode === 'legacy' ? 'Required for the original layout.' : 'Optional: pins the key the model must be sealed under.'}>
              {(id, h) => <input id={id} value={keyId} placeholder={who?.key_id || ''} onChange={(e) => setKeyId(e.target.value)} aria-describedby={h} spellCheck={false} />}
            </Field>
            <Field label="Model name" help="How chat refers to it; empty: the published name.">
              {(id, h) => <input id={id} value={name} placeholder={mode === 'published' ? pub : ''} onChange={(e) => setName(e.target.value)} aria-describedby={h} spellCheck={false} />}
            </Field>
          </div>
          <Field label="Expected SHA-384 (optional)" help={expectBad ? '96 hex digits.' : 'The digest the owner gave you: checked before any key is requested (--expect-sha384).'}>
            {(id, h) => (
              <div className="row" style={{ flexWrap: 'nowrap' }}>
                <input id={id} className="mono" value={expect} onChange={(e) => setExpect(e.target.value.trim())} aria-describedby={h} aria-invalid={expectBad ? true : undefined} spellCheck={false} />
                {chosen && <button type="button" className="btn small" onClick={() => setExpect(chosen.sha384)}>Use published</button>}
              </div>
            )}
          </Field>
          <label className="choice"><input type="checkbox" checked={rehash} onChange={(e) => setRehash(e.target.checked)} /> Re-hash the decrypted model and compare with the sealed header</label>
          <div><Action need="consumer" busy={busy} blocked={blocked} type="submit" data-testid="load-model">{busy ? 'Starting…' : 'Load secure model'}</Action></div>
          <ErrorBox error={error} title="The load did not start" />
        </form>
      </Panel>
      <Panel title="Load progress" actions={view && view.state !== 'running' ? <button type="button" className="btn small" onClick={() => { setJobId(''); setView(undefined); }}>Clear</button> : view ? <button type="button" className="btn small" onClick={() => void post(`/ms/v1/jobs/${view.id}/cancel`, {})}>Cancel</button> : null}>
        {!view && !jobId && <Empty title="Nothing loading">Each step shows here: header, key pair, attestation, attested key release, download + unseal, PCR15 extend, engine load.</Empty>}
        {jobId && !view && <p className="muted">Connecting to job {jobId}…</p>}
        {view && (
          <div data-testid="load-job" data-state={view.state} data-failed-step={failStep ?? ''}>
            <p className="small muted">Job <code>{view.id}</code>: <b>{view.state}</b></p>
            <StepList view={view} defs={LOAD_STEPS} label="Load steps" />
            {view.state === 'succeeded' && result?.model && (
              <div className="banner ok" style={{ marginTop: '1rem' }} role="status">
                <b>{result.model.name} is loaded and measured.</b>
                <dl className="kv small" style={{ marginTop: '0.5rem' }}>
                  <dt>SHA-384</dt><dd><Digest value={result.model.sha384} label="model SHA-384" /></dd>
                  <dt>PCR15 now</dt><dd><Digest value={result.pcr15_after} label="PCR15" /></dd>
                  <dt>Key</dt><dd><code>{result.key_arn}</code></dd>
                  <dt>Attested by</dt><dd>{result.attestation_module_id}{result.development_attestation && <> <span className="badge dev">DEVELOPMENT</span></>}</dd>
                </dl>
                <div className="row" style={{ marginTop: '0.5rem' }}>
                  <button type="button" className="btn small" onClick={() => { localStorage.setItem('modelseal.ui.chat.model', JSON.stringify(result.model!.name)); go('consumer/chat'); }}>Chat with it</button>
                  <button type="button" className="btn small" onClick={() => go('consumer/loaded')}>Loaded models</button>
                </div>
              </div>
            )}
            {failed && view.error && (
              <div style={{ marginTop: '1rem' }} data-testid="load-failure">
                <div className="error" role="alert">
                  <strong>{view.state === 'cancelled' ? 'Cancelled' : `Failed at step: ${LOAD_STEPS.find((s) => s.id === failStep)?.label ?? failStep}`}</strong>
                  <div>{view.error.module}: {view.error.message}</div>
                  <div className="hint"><b>What to do:</b> {new ApiError(500, view.error).hint}</div>
                  <div className="small">Nothing was registered; the in-memory copy and the data key were wiped.</div>
                </div>
                {view.error.policy && (
                  <div style={{ marginTop: '0.75rem' }}>
                    <h3>Why the key policy refused, PCR by PCR</h3>
                    <VerdictView verdict={view.error.policy} />
                  </div>
                )}
              </div>
            )}
          </div>
        )}
        <ErrorBox error={error && view ? error : undefined} title="Lost track of the job" />
      </Panel>
    </div>
  );
}

// ---------------------------------------------------------------- Chat

interface Message {
  role: 'user' | 'assistant' | 'system';
  content: string;
  pieces?: number; // streamed pieces received (assistant)
}

function Chat() {
  const { go } = useSession();
  const loaded = useLoad((s) => get<{ models: LoadedModel[] }>('/ms/v1/models/loaded', s), []);
  const pcrs = useLoad((s) => get<PcrsReply>('/ms/v1/pcrs', s), []);
  const log = useLoad((s) => get<Pcr15Log>('/ms/v1/pcr15/log', s), []);
  const [model, setModel] = usePersisted('chat.model', '');
  const [system, setSystem] = usePersisted('chat.system', '');
  const [input, setInput] = usePersisted('chat.input', '');
  const [maxTokens, setMaxTokens] = usePersisted('chat.max_tokens', 256);
  const [history, setHistory] = usePersisted<Record<string, Message[]>>('chat.history', {});
  const [streaming, setStreaming] = useState(false);
  const [error, setError] = useState<unknown>();
  const ac = useRef<AbortController>(undefined);
  const bottom = useRef<HTMLDivElement>(null);
  const models = loaded.data?.models ?? [];
  const current = models.find((m) => m.name === model);
  const messages = history[model] ?? [];

  useEffect(() => {
    if (models.length && !current) setModel(models[0].name);
  }, [models, current, setModel]);
  useEffect(() => {
    bottom.current?.scrollIntoView?.({ block: 'nearest' });
  }, [messages]);

  const setMessages = (f: (m: Message[]) => Message[]) => setHistory((h) => ({ ...h, [model]: f(h[model] ?? []) }));

  const send = async () => {
    const text = input.trim();
    if (!text || !model) return;
    setError(undefined);
    setInput('');
    const convo: Message[] = [...messages, { role: 'user', content: text }];
    setMessages(() => [...convo, { role: 'assistant', content: '' }]);
    setStreaming(true);
    const c = new AbortController();
    ac.current = c;
    try {
      const res = await fetch('/api/chat', {
        method: 'POST',
        headers: { ...authHeaders(), 'Content-Type': 'application/json' },
        body: JSON.stringify({ model, stream: true, options: { num_predict: maxTokens > 0 ? maxTokens : -1 }, messages: [...(system ? [{ role: 'system', content: system }] : []), ...convo] }),
        signal: c.signal,
      });
      if (!res.ok || !res.body) {
        let msg = res.statusText;
        try {
          const j = await res.json();
          msg = typeof j.error === 'string' ? j.error : j.error?.message ?? msg;
        } catch {
          /* not JSON */
        }
        throw new ApiError(res.status, { code: 'http', module: 'chat', reason: `http-${res.status}`, message: msg });
      }
      const parser = new NdjsonParser();
      const apply = (items: unknown[]) => {
        for (const it of items as { message?: { content?: string }; error?: string; done?: boolean }[]) {
          if (it.error) throw new ApiError(500, { code: 'internal', module: 'chat', reason: 'stream', message: it.error });
          const piece = it.message?.content ?? '';
          if (piece) setMessages((m) => m.map((x, i) => (i === m.length - 1 ? { ...x, content: x.content + piece, pieces: (x.pieces ?? 0) + 1 } : x)));
        }
      };
      for await (const chunk of textChunks(res.body)) apply(parser.push(chunk));
      apply(parser.flush());
    } catch (e) {
      if ((e as Error).name !== 'AbortError') setError(e);
    } finally {
      setStreaming(false);
      ac.current = undefined;
      log.reload();
    }
  };

  const pcr15 = pcrs.data?.banks?.sha384?.['15'];
  return (
    <div className="grid-side">
      <Panel title="Chat" actions={
        <>
          <label htmlFor="chat-model" className="sr-only">Model</label>
          <select id="chat-model" value={model} onChange={(e) => setModel(e.target.value)} style={{ width: 'auto' }} disabled={!models.length}>
            {models.map((m) => <option key={m.name} value={m.name}>{m.name}</option>)}
          </select>
          <button type="button" className="btn small" onClick={() => setMessages(() => [])} disabled={!messages.length || streaming}>New chat</button>
        </>
      }>
        <ErrorBox error={loaded.error} title="Could not list the loaded models" />
        {loaded.data && models.length === 0 ? (
          <Empty title="No model loaded">
            <p>Chat needs a model loaded on this machine.</p>
            <button type="button" className="btn" onClick={() => go('consumer/loader')}>Open Model loader</button>
          </Empty>
        ) : (
          <div className="chat">
            <details>
              <summary className="small">Settings: system prompt, answer length</summary>
              <div className="form" style={{ marginTop: '0.5rem' }}>
                <div className="field">
                  <label htmlFor="chat-system">System prompt</label>
                  <textarea id="chat-system" value={system} onChange={(e) => setSystem(e.target.value)} rows={2} />
                </div>
                <div className="field" style={{ maxWidth: '14rem' }}>
                  <label htmlFor="chat-max">Longest answer (tokens; 0: no limit)</label>
                  <input id="chat-max" type="number" min={0} value={maxTokens} onChange={(e) => setMaxTokens(Math.max(0, Number(e.target.value) || 0))} />
                </div>
              </div>
            </details>
            <div className="messages" aria-live="polite" aria-label="Conversation" data-testid="messages" data-streaming={String(streaming)} role="log">
              {messages.length === 0 && <p className="muted small">Ask something. The answer streams in token by token; Stop ends it.</p>}
              {messages.map((m, i) => (
                <div key={i} className={`msg ${m.role}`} data-role={m.role} data-pieces={m.pieces}>
                  <span className="who">{m.role === 'user' ? 'You' : model}</span>
                  {m.content || (streaming && i === messages.length - 1 ? '…' : '')}
                </div>
              ))}
              <div ref={bottom} />
            </div>
            <ErrorBox error={error} title="The answer stopped" />
            <form className="composer" onSubmit={(e) => { e.preventDefault(); if (!streaming) void send(); }}>
              <div className="field">
                <label htmlFor="chat-input" className="sr-only">Message</label>
                <textarea id="chat-input" placeholder="Message (Enter sends, Shift+Enter for a new line)" value={input} onChange={(e) => setInput(e.target.value)}
                  onKeyDown={(e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); if (!streaming) void send(); } }} />
              </div>
              {streaming ? (
                <button type="button" className="btn danger" onClick={() => ac.current?.abort()} data-testid="stop">Stop</button>
              ) : (
                <Action need="consumer" type="submit" blocked={!model ? 'Choose a model.' : !input.trim() ? undefined : undefined} disabled={!input.trim()} data-testid="send">Send</Action>
              )}
            </form>
          </div>
        )}
      </Panel>
      <Panel level={3} title="Integrity" actions={<button type="button" className="btn small" onClick={() => { pcrs.reload(); log.reload(); }}>Refresh</button>}>
        <dl className="kv small">
          <dt>Model</dt><dd>{current?.name ?? '—'}</dd>
          <dt>SHA-384</dt><dd><Digest value={current?.sha384} label="model SHA-384" short /></dd>
          <dt>PCR15 after its load</dt><dd><Digest value={current?.pcr15_after} label="PCR15 after load" short /></dd>
          <dt>PCR15 now</dt><dd><Digest value={pcr15} label="current PCR15" short /></dd>
          <dt>Measurement log</dt>
          <dd data-testid="log-replay">
            {log.data ? <OkBadge ok={log.data.matches} yes="replays to PCR15" no="does not replay" /> : <ErrorBox error={log.error} />}
          </dd>
        </dl>
        {log.data && log.data.entries.length > 0 && (
          <ol className="small" style={{ paddingLeft: '1.2rem', marginTop: '0.6rem' }} aria-label="Models measured since boot">
            {log.data.entries.map((e, i) => (
              <li key={i}><b>{e.model}</b> <code title={e.sha384}>{shortHex(e.sha384, 8)}</code>{e.unloaded ? <span className="muted"> (unloaded)</span> : ''}</li>
            ))}
          </ol>
        )}
        <p className="small muted" style={{ marginTop: '0.6rem' }}>PCR15 starts at zero at boot and is extended with the SHA-384 of each model loaded; replaying the log must give the live value.</p>
      </Panel>
    </div>
  );
}
