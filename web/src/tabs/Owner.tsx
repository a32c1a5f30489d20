import { useEffect, useMemo, useRef, useState } from 'react';
import { Action, Confirm, Digest, Empty, ErrorBox, Field, OkBadge, Panel, ProgressBar, StepList, TabPanel, Tabs, useLoad } from '../components/ui';
import { api, ApiError, errorOf, get, post, upload } from '../lib/api';
import { bytes, when } from '../lib/format';
import { followJob, PUBLISH_STEPS, type JobView } from '../lib/jobs';
import { usePersisted } from '../lib/persist';
import {
  buildStatement, draftFromStatement, emptyDraft, formatPolicy, KMS_ACTIONS, lintPolicy, parsePolicy, previewPcrs,
  removeStatement, statementPcrs, statementPrincipals, upsertStatement, validateDraft, type Lint, type Policy, type StatementDraft,
} from '../lib/policy';
import type { JobSummary, LintWarning, Manifest, PcrsReply, PolicyReply, PublishedList, Verdict } from '../lib/types';

function asLint(w: LintWarning | string): LintWarning {
  return typeof w === 'string' ? { statement: null, sid: '', code: '', message: w } : w;
}
import { useSession } from '../session';

const SUBS = [
  { id: 'manager', label: 'Model manager' },
  { id: 'seal', label: 'Seal model weights' },
  { id: 'published', label: 'Published models' },
] as const;
type Sub = (typeof SUBS)[number]['id'];

export function Owner({ sub }: { sub: string }) {
  const { go } = useSession();
  const s: Sub = SUBS.some((x) => x.id === sub) ? (sub as Sub) : 'manager';
  return (
    <>
      <Tabs tabs={[...SUBS]} value={s} onChange={(v) => go(`owner/${v}`)} label="Model owner" idPrefix="owner" />
      <TabPanel idPrefix="owner" tab={s}>
        {s === 'manager' && <ModelManager />}
        {s === 'seal' && <SealWeights />}
        {s === 'published' && <Published />}
      </TabPanel>
    </>
  );
}

// ---------------------------------------------------------------- Model manager

type SourceKind = 'test-model' | 'huggingface' | 'upload';

function useJob(storageKey: string, kind: string) {
  const [jobId, setJobId] = usePersisted<string>(storageKey, '');
  const [view, setView] = useState<JobView>();
  const [error, setError] = useState<unknown>();
  const ac = useRef<AbortController>(undefined);
  useEffect(() => {
    if (!jobId) return;
    const c = new AbortController();
    ac.current = c;
    setError(undefined);
    followJob(jobId, kind, setView, c.signal)
      .then((v) => !c.signal.aborted && setView(v))
      .catch((e) => {
        if (c.signal.aborted) return;
        // A job the server no longer knows (it restarted): forget it.
        if (errorOf(e).body?.code === 'not-found' || (e as { status?: number }).status === 404) setJobId('');
        else setError(e);
      });
    return () => c.abort();
  }, [jobId, kind, setJobId]);
  const start = (s: JobSummary) => {
    setView(undefined);
    setJobId(s.id);
  };
  const clear = () => {
    ac.current?.abort();
    setView(undefined);
    setJobId('');
  };
  return { jobId, view, error, start, clear };
}

function ModelManager() {
  const { who } = useSession();
  const [name, setName] = usePersisted('publish.name', 'tinyllama');
  const [source, setSource] = usePersisted<SourceKind>('publish.source', 'test-model');
  const [repo, setRepo] = usePersisted('publish.repo', 'TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF');
  const [file, setFile] = usePersisted('publish.file', 'tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf');
  const [revision, setRevision] = usePersisted('publish.revision', 'main');
  const [layers, setLayers] = usePersisted('publish.layers', 2);
  const [dim, setDim] = usePersisted('publish.dim', 64);
  const [keyId, setKeyId] = usePersisted('publish.key', '');
  const [replace, setReplace] = usePersisted('publish.replace', false);
  const [gguf, setGguf] = useState<File | null>(null);
  const [uploadProgress, setUploadProgress] = useState<[number, number]>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const job = useJob('publish.job', 'publish');
  const key = keyId || who?.key_id || '';

  const nameError = name && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name) ? 'Letters, digits, ".", "_" and "-"; starting with a letter or digit.' : '';
  const blocked = !name ? 'Enter a model name first.' : nameError ? 'Fix the model name first.' : source === 'upload' && !gguf ? 'Choose a GGUF file first.' : source === 'huggingface' && (!repo || !file) ? 'Enter the repository and file.' : job.view?.state === 'running' ? 'A publish is running.' : undefined;

  const submit = async () => {
    setBusy(true);
    setError(undefined);
    try {
      let src: Record<string, unknown>;
      if (source === 'test-model') src = { type: 'test-model', layers, dim };
      else if (source === 'huggingface') src = { type: 'huggingface', repo, file, ...(revision ? { revision } : {}) };
      else {
        setUploadProgress([0, gguf!.size]);
        const up = await upload<{ upload_id: string }>(`/ms/v1/uploads?file_name=${encodeURIComponent(gguf!.name)}`, gguf!, (d, t) => setUploadProgress([d, t]));
        src = { type: 'upload', upload_id: up.upload_id };
      }
      const r = await post<{ job: JobSummary }>('/ms/v1/models/publish', { name, key_id: keyId || undefined, replace, source: src });
      job.start(r.job);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const manifest = (job.view?.result as { manifest?: Manifest } | undefined)?.manifest;
  return (
    <div className="grid2">
      <Panel title="Model manager">
        <p className="muted small">Seal a GGUF model under the model key and publish it to the store. The consumer can load it only where the key policy allows.</p>
        <form className="form" onSubmit={(e) => { e.preventDefault(); if (!blocked) void submit(); }}>
          <Field label="Model name" help={nameError || 'The name consumers load it by; also bound to its data key.'}>
            {(id, h) => <input id={id} value={name} onChange={(e) => setName(e.target.value)} aria-describedby={h} aria-invalid={nameError ? true : undefined} required />}
          </Field>
          <fieldset>
            <legend>Source</legend>
            <div className="choices">
              {([['test-model', 'Generated test model'], ['huggingface', 'Hugging Face'], ['upload', 'Upload a GGUF']] as const).map(([v, l]) => (
                <label key={v} className="choice"><input type="radio" name="source" value={v} checked={source === v} onChange={() => setSource(v)} /> {l}</label>
              ))}
            </div>
            {source === 'huggingface' && (
              <div className="row" style={{ marginTop: '0.6rem' }}>
                <Field label="Repository">{(id) => <input id={id} value={repo} onChange={(e) => setRepo(e.target.value)} spellCheck={false} />}</Field>
                <Field label="File">{(id) => <input id={id} value={file} onChange={(e) => setFile(e.target.value)} spellCheck={false} />}</Field>
                <Field label="Revision">{(id) => <input id={id} value={revision} onChange={(e) => setRevision(e.target.value)} spellCheck={false} />}</Field>
              </div>
            )}
            {source === 'test-model' && (
              <div className="row" style={{ marginTop: '0.6rem' }}>
                <Field label="Layers" help="1–64">{(id, h) => <input id={id} type="number" min={1} max={64} value={layers} onChange={(e) => setLayers(Number(e.target.value))} aria-describedby={h} />}</Field>
                <Field label="Width" help="a multiple of 32">{(id, h) => <input id={id} type="number" min={32} max={4096} step={32} value={dim} onChange={(e) => setDim(Number(e.target.value))} aria-describedby={h} />}</Field>
              </div>
            )}
            {source === 'upload' && (
              <div style={{ marginTop: '0.6rem' }}>
                <Field label="GGUF file" help={gguf ? `${gguf.name}, ${bytes(gguf.size)}` : 'Only .gguf files can be sealed. The file is sent to the server, never stored in the browser.'}>
                  {(id, h) => <input id={id} type="file" accept=".gguf" onChange={(e) => setGguf(e.target.files?.[0] ?? null)} aria-describedby={h} />}
                </Field>
                {uploadProgress && <ProgressBar value={uploadProgress[1] ? uploadProgress[0] / uploadProgress[1] : undefined} label="Upload to server" />}
              </div>
            )}
          </fieldset>
          <div className="row">
            <Field label="KMS key" help={`Empty: the server's model key${who?.key_id ? ` (${who.key_id})` : ''}.`}>
              {(id, h) => <input id={id} value={keyId} placeholder={who?.key_id || 'alias/modelseal'} onChange={(e) => setKeyId(e.target.value)} aria-describedby={h} spellCheck={false} />}
            </Field>
            <Field label="Store" help="Set by the server's configuration.">
              {(id, h) => <input id={id} value={who?.store ?? ''} readOnly aria-describedby={h} />}
            </Field>
          </div>
          <label className="choice"><input type="checkbox" checked={replace} onChange={(e) => setReplace(e.target.checked)} /> Replace a published model of the same name</label>
          <div>
            <Action need="owner" busy={busy} blocked={blocked} type="submit" data-testid="process-model">{busy ? 'Starting…' : 'Process model'}</Action>
          </div>
          <ErrorBox error={error} title="The publish did not start" />
        </form>
      </Panel>
      <Panel
        title="Progress"
        actions={job.view && job.view.state !== 'running' ? <button type="button" className="btn small" onClick={job.clear}>Clear</button> : job.view ? (
          <button type="button" className="btn small" onClick={() => void post(`/ms/v1/jobs/${job.view!.id}/cancel`, {})}>Cancel</button>
        ) : null}
      >
        {!job.view && !job.jobId && <Empty title="Nothing running">Processing a model shows each step here: download, data key, digest + seal, upload, manifest.</Empty>}
        {job.jobId && !job.view && <p className="muted">Connecting to job {job.jobId}…</p>}
        {job.view && (
          <div data-testid="publish-job" data-state={job.view.state}>
            <p className="small muted">Job <code>{job.view.id}</code> for {key ? <code>{key}</code> : 'the default key'}: <b>{job.view.state}</b></p>
            <StepList view={job.view} defs={PUBLISH_STEPS} label="Publish steps" />
            {job.view.state === 'succeeded' && manifest && (
              <div className="banner ok" style={{ marginTop: '1rem' }} role="status">
                <b>Published {manifest.name}.</b>
                <dl className="kv small" style={{ marginTop: '0.5rem' }}>
                  <dt>Sealed object</dt><dd><Digest value={manifest.object} label="sealed object name" /></dd>
                  <dt>Manifest</dt><dd><Digest value={`${manifest.name}.manifest.json`} label="manifest name" /></dd>
                  <dt>Size</dt><dd>{bytes(manifest.plaintext_size)} (sealed {bytes(manifest.sealed_size)})</dd>
                  <dt>SHA-384</dt><dd><Digest value={manifest.sha384} label="SHA-384" /></dd>
                  <dt>Key</dt><dd><code>{manifest.kms_key_id}</code></dd>
                </dl>
                <p className="small" style={{ marginTop: '0.5rem', marginBottom: 0 }}>Give the consumer the SHA-384 so that they can load it with “Expected SHA-384”.</p>
              </div>
            )}
            {(job.view.state === 'failed' || job.view.state === 'cancelled') && job.view.error && (
              <div style={{ marginTop: '1rem' }}>
                <ErrorBox error={new ApiError(500, job.view.error)} title={job.view.state === 'cancelled' ? 'Cancelled' : 'The publish failed; nothing was left behind'} />
              </div>
            )}
          </div>
        )}
        <ErrorBox error={job.error} title="Lost track of the job" />
      </Panel>
    </div>
  );
}

// ---------------------------------------------------------------- Seal model weights

function SealWeights() {
  const { who } = useSession();
  const [keyInput, setKeyInput] = usePersisted('seal.key', '');
  const key = keyInput || who?.key_id || 'alias/modelseal';
  const policy = useLoad((s) => get<PolicyReply>(`/ms/v1/keys/${encodeURIComponent(key)}/policy`, s), [key]);
  const pcrs = useLoad((s) => get<PcrsReply>('/ms/v1/pcrs', s), []);
  const machine = pcrs.data?.banks?.sha384 ?? {};
  const [draftText, setDraftText] = usePersisted<string | null>(`seal.draft.${key}`, null);
  const [builder, setBuilder] = usePersisted<StatementDraft>('seal.builder', emptyDraft(who?.consumer_principal ?? ''));
  const [saving, setSaving] = useState(false);
  const [saveError, setSaveError] = useState<unknown>();
  const [saved, setSaved] = useState('');
  const [verdict, setVerdict] = useState<Verdict>();
  const [checking, setChecking] = useState(false);
  const [checkError, setCheckError] = useState<unknown>();
  // The key service's lint of the draft (null: this server offers none).
  const [serverLint, setServerLint] = useState<LintWarning[] | null>(null);
  const [pcrToAdd, setPcrToAdd] = useState(4);

  useEffect(() => {
    if (!builder.principal && who?.consumer_principal) setBuilder({ ...builder, principal: who.consumer_principal });
  }, [who, builder, setBuilder]);

  const serverText = policy.data ? formatPolicy(policy.data.policy as Policy) : '';
  const text = draftText ?? serverText;
  const parsed = useMemo(() => (text ? parsePolicy(text) : undefined), [text]);
  const dirty = draftText !== null && draftText !== serverText;
  const lints: Lint[] = parsed?.ok ? lintPolicy(parsed.policy, who?.consumer_principal) : [];
  const draftErrors = validateDraft(builder);
  const preview = previewPcrs(builder, machine);

  useEffect(() => {
    if (!parsed?.ok) return;
    const ac = new AbortController();
    const t = setTimeout(() => {
      api<{ warnings?: (LintWarning | string)[] }>('POST', '/ms/v1/policy/lint', { policy: parsed.policy }, ac.signal)
        .then((r) => setServerLint((r.warnings ?? []).map(asLint)))
        .catch((e) => {
          if ((e as Error).name !== 'AbortError') setServerLint(null); // not offered by every server
        });
    }, 400);
    return () => {
      clearTimeout(t);
      ac.abort();
    };
  }, [parsed]);

  const setPcr = (i: number, value: string) => setBuilder({ ...builder, pcrs: builder.pcrs.map((p) => (p.index === i ? { ...p, value } : p)) });
  const addPcr = (index: number) => {
    if (builder.pcrs.some((p) => p.index === index)) return;
    setBuilder({ ...builder, pcrs: [...builder.pcrs, { index, value: machine[String(index)] ?? '' }] });
  };
  const addStatement = () => {
    if (!parsed?.ok) return;
    setDraftText(formatPolicy(upsertStatement(parsed.policy, buildStatement(builder))));
    setSaved('');
  };
  const update = async () => {
    if (!parsed?.ok) return;
    setSaving(true);
    setSaveError(undefined);
    try {
      const r = await api<PolicyReply>('PUT', `/ms/v1/keys/${encodeURIComponent(key)}/policy`, { policy: parsed.policy });
      policy.setData(r);
      setDraftText(null);
      setSaved(`Policy of ${key} updated.`);
      setVerdict(undefined);
    } catch (e) {
      setSaveError(e);
    } finally {
      setSaving(false);
    }
  };
  const check = async () => {
    setChecking(true);
    setCheckError(undefined);
    try {
      setVerdict(await post<Verdict>(`/ms/v1/keys/${encodeURIComponent(key)}/policy/check`, {}));
    } catch (e) {
      setCheckError(e);
    } finally {
      setChecking(false);
    }
  };

  return (
    <>
      <Panel title="Seal model weights" actions={<button type="button" className="btn small" onClick={() => { policy.reload(); pcrs.reload(); }}>Reload</button>}>
        <div className="row">
          <Field label="KMS key" help="The key that seals the models; its policy decides which machines get the data key.">
            {(id, h) => <input id={id} value={keyInput} placeholder={who?.key_id || 'alias/modelseal'} onChange={(e) => setKeyInput(e.target.value)} aria-describedby={h} spellCheck={false} />}
          </Field>
        </div>
      </Panel>
      <div className="grid2">
        <Panel level={3} title={<>Key policy {dirty && <span className="badge warn">unsaved changes</span>}</>} actions={dirty ? <button type="button" className="btn small" onClick={() => setDraftText(null)}>Discard changes</button> : null}>
          <ErrorBox error={policy.error} title="Could not read the key policy" />
          {policy.loading && !policy.data && <p className="muted">Reading the policy…</p>}
          {(policy.data || draftText !== null) && (
            <div className="form">
              <div className="field">
                <label htmlFor="policy-json">Policy JSON (you may edit it directly)</label>
                <textarea id="policy-json" className="policy" spellCheck={false} value={text} onChange={(e) => setDraftText(e.target.value)} aria-invalid={parsed && !parsed.ok ? true : undefined} aria-describedby="policy-parse" />
                <div id="policy-parse" className="help">{parsed && !parsed.ok ? <span style={{ color: 'var(--bad)' }}>{parsed.error}</span> : `${parsed?.ok ? parsed.policy.Statement.length : 0} statements · ${new TextEncoder().encode(text).length} of 32768 bytes`}</div>
              </div>
              {parsed?.ok && (
                <div className="table-wrap">
                  <table aria-label="Statements">
                    <thead><tr><th>Statement</th><th>Principal</th><th>Action</th><th>PCRs</th><th><span className="sr-only">Edit</span></th></tr></thead>
                    <tbody>
                      {parsed.policy.Statement.map((s, i) => (
                        <tr key={i}>
                          <td><code style={{ overflowWrap: 'anywhere' }}>{s.Sid ?? '—'}</code><br /><span className={`badge ${s.Effect === 'Allow' ? 'ok' : 'bad'}`}>{s.Effect}</span></td>
                          <td className="small"><code>{statementPrincipals(s).map((p) => p.replace(/^arn:aws:iam::\d+:/, '')).join(', ')}</code></td>
                          <td className="small">{s.NotAction !== undefined && <span className="muted">all but </span>}<code>{([] as string[]).concat(s.Action ?? s.NotAction ?? []).join(', ')}</code></td>
                          <td className="small">{statementPcrs(s).map((p) => `PCR${p.index}`).join(' ') || '—'}</td>
                          <td><div className="stack">
                            <button type="button" className="btn small" onClick={() => setBuilder(draftFromStatement(s))} aria-label={`Edit statement ${s.Sid ?? i + 1}`}>Edit</button>
                            <button type="button" className="btn small danger" onClick={() => setDraftText(formatPolicy(removeStatement(parsed.policy, i)))} aria-label={`Remove statement ${s.Sid ?? i + 1}`}>Remove</button>
                          </div></td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
              <div>
                <h4>Lint</h4>
                {(() => {
                  // Errors found here block the update; the warnings are the key
                  // service's own lint when it offers one, else this page's.
                  const errors = lints.filter((l) => l.level === 'error');
                  const shown = serverLint ?? lints.filter((l) => l.level === 'warning').map((l) => ({ statement: null, sid: l.sid, code: '', message: l.message }));
                  if (errors.length === 0 && shown.length === 0) return <p className="small" style={{ color: 'var(--ok)' }}>✓ No warnings.</p>;
                  return (
                    <ul className="lints" aria-label="Policy warnings" data-testid="lint">
                      {errors.map((l, i) => <li key={`e${i}`} className="error"><b>{l.sid}</b>: {l.message}</li>)}
                      {shown.map((w, i) => <li key={`w${i}`} className="warning" data-code={w.code}>{w.sid && <b>{w.sid}: </b>}{w.message}</li>)}
                    </ul>
                  );
                })()}
                {serverLint !== null && <p className="small muted">Warnings from the key service's lint; errors found on this page block “Update policy”.</p>}
              </div>
              <div className="row">
                <Action need="owner" busy={saving} blocked={!parsed?.ok ? 'Fix the policy JSON first.' : !dirty ? 'No changes to save.' : lints.some((l) => l.level === 'error') ? 'Fix the errors the lint shows first.' : undefined} onClick={update} data-testid="update-policy">
                  {saving ? 'Updating…' : 'Update policy'}
                </Action>
              </div>
              {saved && <div className="banner ok" role="status">{saved}</div>}
              <ErrorBox error={saveError} title="The key service refused the policy" />
            </div>
          )}
        </Panel>
        <div>
          <Panel level={3} title="Statement builder">
            <div className="form">
              <div className="row">
                <Field label="Sid" help="A statement with the same Sid is replaced.">{(id, h) => <input id={id} value={builder.sid} onChange={(e) => setBuilder({ ...builder, sid: e.target.value })} aria-describedby={h} />}</Field>
                <Field label="Effect">{(id) => (
                  <select id={id} value={builder.effect} onChange={(e) => setBuilder({ ...builder, effect: e.target.value as 'Allow' | 'Deny' })}>
                    <option>Allow</option><option>Deny</option>
                  </select>
                )}</Field>
              </div>
              <Field label="Principal ARN" help={who?.consumer_principal ? `The consumer's role on this server is ${who.consumer_principal}.` : 'The IAM role of the machine that loads the model.'}>
                {(id, h) => <input id={id} value={builder.principal} onChange={(e) => setBuilder({ ...builder, principal: e.target.value })} aria-describedby={h} spellCheck={false} />}
              </Field>
              <fieldset>
                <legend>Actions</legend>
                <div className="choices">
                  {KMS_ACTIONS.map((a) => (
                    <label key={a} className="choice"><input type="checkbox" checked={builder.actions.includes(a)} onChange={(e) => setBuilder({ ...builder, actions: e.target.checked ? [...builder.actions, a] : builder.actions.filter((x) => x !== a) })} /> <code>{a}</code></label>
                  ))}
                </div>
              </fieldset>
              <fieldset>
                <legend>PCR conditions</legend>
                <p className="small muted">Values are pre-filled with this machine's current SHA-384 PCRs. PCR4 (boot loader) and PCR7 (Secure Boot) are the usual pair; PCR15 changes with every model loaded.</p>
                {builder.pcrs.length === 0 && <p className="small">No condition yet: the statement would release the key to any machine.</p>}
                {builder.pcrs.map((p) => (
                  <div key={p.index} className="row" style={{ alignItems: 'center', marginBottom: '0.4rem' }}>
                    <label htmlFor={`pcr-${p.index}`} style={{ fontWeight: 600, width: '4rem' }}>PCR{p.index}</label>
                    <input id={`pcr-${p.index}`} value={p.value} onChange={(e) => setPcr(p.index, e.target.value.trim())} className="mono" spellCheck={false} style={{ flex: 1 }} aria-invalid={/^[0-9a-fA-F]{96}$/.test(p.value) ? undefined : true} />
                    <button type="button" className="btn small" onClick={() => setPcr(p.index, machine[String(p.index)] ?? '')} disabled={!machine[String(p.index)]}>This machine</button>
                    <button type="button" className="btn small danger" onClick={() => setBuilder({ ...builder, pcrs: builder.pcrs.filter((x) => x.index !== p.index) })} aria-label={`Remove PCR${p.index} condition`}>Remove</button>
                  </div>
                ))}
                <div className="row" style={{ alignItems: 'center' }}>
                  <label htmlFor="pcr-pick" className="sr-only">PCR to add</label>
                  <select id="pcr-pick" value={pcrToAdd} onChange={(e) => setPcrToAdd(Number(e.target.value))} style={{ width: 'auto' }}>
                    {Array.from({ length: 24 }, (_, i) => <option key={i} value={i} disabled={builder.pcrs.some((p) => p.index === i)}>PCR{i}{[4, 7, 12, 15].includes(i) ? ' ★' : ''}</option>)}
                  </select>
                  <button type="button" className="btn small" onClick={() => addPcr(pcrToAdd)}>+ Add condition</button>
                  <button type="button" className="btn small" onClick={() => setBuilder({ ...builder, pcrs: [4, 7].map((i) => builder.pcrs.find((p) => p.index === i) ?? { index: i, value: machine[String(i)] ?? '' }).concat(builder.pcrs.filter((p) => p.index !== 4 && p.index !== 7)) })}>PCR4 + PCR7</button>
                </div>
                <ErrorBox error={pcrs.error} title="Could not read this machine's PCRs" />
              </fieldset>
              {preview.length > 0 && (
                <div className="table-wrap">
                  <table aria-label="This draft against this machine">
                    <caption className="small muted" style={{ textAlign: 'left' }}>This draft against this machine</caption>
                    <thead><tr><th>PCR</th><th>Wanted</th><th>This machine</th><th>Match</th></tr></thead>
                    <tbody>{preview.map((r) => (
                      <tr key={r.index}><td>PCR{r.index}</td><td><Digest value={r.wanted} label={`wanted PCR${r.index}`} short /></td><td><Digest value={r.machine} label={`machine PCR${r.index}`} short /></td><td><OkBadge ok={r.matched} yes="match" no="differs" /></td></tr>
                    ))}</tbody>
                  </table>
                </div>
              )}
              {draftErrors.length > 0 && <ul className="lints" aria-label="Statement problems">{draftErrors.map((e) => <li key={e} className="error">{e}</li>)}</ul>}
              <div className="row">
                <button type="button" className="btn" onClick={addStatement} disabled={draftErrors.length > 0 || !parsed?.ok} data-testid="add-statement">Add statement to policy</button>
                <button type="button" className="btn small" onClick={() => setBuilder(emptyDraft(who?.consumer_principal ?? ''))}>Reset builder</button>
              </div>
              <p className="small muted">Adding changes the policy on the left only; “Update policy” sends it to the key service.</p>
            </div>
          </Panel>
          <Panel level={3} title="Would this machine be allowed?" actions={<button type="button" className="btn small primary" onClick={check} disabled={checking} data-testid="check-policy">{checking ? 'Checking…' : 'Check'}</button>}>
            <p className="small muted">Evaluates the <b>saved</b> policy for a Decrypt by the consumer from this machine, with its current PCRs.</p>
            <ErrorBox error={checkError} title="Could not check the policy" />
            {verdict ? <VerdictView verdict={verdict} /> : !checkError && <Empty title="Not checked yet">Press Check after updating the policy.</Empty>}
          </Panel>
        </div>
      </div>
    </>
  );
}

function Values({ values, label }: { values: string[] | string; label: string }) {
  const list = Array.isArray(values) ? values : [values];
  if (list.length === 0) return <span className="muted small">absent</span>;
  return (
    <div className="stack">
      {list.map((v, i) => (/^[0-9a-fA-F]{32,}$/.test(v) ? <Digest key={i} value={v} label={label} short /> : <code key={i}>{v}</code>))}
    </div>
  );
}

export function VerdictView({ verdict }: { verdict: Verdict }) {
  return (
    <div data-testid="verdict" data-allowed={String(verdict.allowed)}>
      <div className={`banner ${verdict.allowed ? 'ok' : 'bad'}`} role="status">
        <b>{verdict.allowed ? '✓ Allowed' : '✕ Denied'}</b> — {verdict.decision}
        <div className="small">Principal <code>{verdict.principal}</code></div>
      </div>
      {verdict.statements.filter((s) => s.conditions.length > 0 || s.applies_to_request).map((s) => (
        <div key={s.index} style={{ marginBottom: '0.75rem' }}>
          <h4>
            {s.sid || `Statement ${s.index + 1}`} <span className={`badge ${s.effect === 'Allow' ? 'ok' : 'bad'}`}>{s.effect}</span>{' '}
            {s.applies_to_request ? <span className="badge neutral">applies</span> : <span className="badge neutral">does not apply</span>}
          </h4>
          {s.effect === 'Deny' && s.conditions.length > 0 && <p className="small muted">A Deny applies only when all its conditions match: “differs” here means it does not block this machine.</p>}
          {s.conditions.length > 0 && (
            <div className="table-wrap">
              <table aria-label={`Conditions of ${s.sid || `statement ${s.index + 1}`}`}>
                <thead><tr><th>Condition</th><th>Wanted</th><th>This machine</th><th>Result</th></tr></thead>
                <tbody>
                  {s.conditions.map((c, i) => (
                    <tr key={i} data-pcr-condition={c.key}>
                      <td className="small"><code>{c.key.replace('kms:RecipientAttestation:NitroTPM', '')}</code> <span className="muted">{c.op}</span></td>
                      <td><Values values={c.wanted} label="wanted value" /></td>
                      <td><Values values={c.machine} label="this machine's value" /></td>
                      <td><OkBadge ok={c.matched} yes="match" no="differs" /></td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
      ))}
      {verdict.lines.length > 0 && <pre className="json wrap" tabIndex={0} aria-label="The key service's explanation">{verdict.lines.join('\n')}</pre>}
    </div>
  );
}

// ---------------------------------------------------------------- Published models

function Published() {
  const { who, go } = useSession();
  const list = useLoad((s) => get<PublishedList>('/ms/v1/models/published', s), []);
  const [victim, setVictim] = useState<string>();
  const [deleteError, setDeleteError] = useState<unknown>();
  const [notice, setNotice] = useState('');
  const del = async (name: string) => {
    setVictim(undefined);
    setDeleteError(undefined);
    try {
      await api('DELETE', `/ms/v1/models/published/${encodeURIComponent(name)}`);
      setNotice(`Deleted ${name}.`);
      list.reload();
    } catch (e) {
      setDeleteError(e);
    }
  };
  const d = list.data;
  return (
    <Panel title="Published models" actions={<button type="button" className="btn" onClick={() => { setNotice(''); list.reload(); }} disabled={list.loading} data-testid="refresh-published">{list.loading ? 'Refreshing…' : 'Refresh'}</button>}>
      {d && <p className="small muted">Store <code>{d.store}</code></p>}
      <ErrorBox error={list.error} title="Could not list the published models" />
      <ErrorBox error={deleteError} title="Could not delete" />
      {notice && <div className="banner ok" role="status">{notice}</div>}
      {d && d.models.length === 0 && d.legacy.length === 0 && (
        <Empty title="No model published yet">
          <p>Seal one in the Model manager: the generated test model takes a few seconds.</p>
          <button type="button" className="btn" onClick={() => go('owner/manager')}>Open Model manager</button>
        </Empty>
      )}
      {d && d.models.length > 0 && (
        <div className="table-wrap">
          <table aria-label="Published models" data-testid="published-table">
            <thead><tr><th>Name</th><th>Size</th><th>Digests</th><th>Key</th><th>Published</th><th>Actions</th></tr></thead>
            <tbody>
              {d.models.map((m) => (
                <tr key={m.name} data-model={m.name}>
                  <td><b>{m.name}</b>{m.loaded && <> <span className="badge ok">loaded</span></>}<div className="small muted">{m.source}</div><div className="small"><Digest value={m.object} label={`object name of ${m.name}`} short /></div></td>
                  <td className="nowrap">{bytes(m.plaintext_size)}<div className="small muted">sealed {bytes(m.sealed_size)}</div></td>
                  <td className="small">
                    <div>SHA-256 <Digest value={m.sha256} label={`SHA-256 of ${m.name}`} short /></div>
                    <div>SHA-384 <Digest value={m.sha384} label={`SHA-384 of ${m.name}`} short /></div>
                  </td>
                  <td className="small"><code>{m.kms_key_id.replace(/^arn:aws:kms:[^:]*:\d+:/, '')}</code></td>
                  <td className="small nowrap">{when(m.created)}</td>
                  <td>
                    <div className="row">
                      <button type="button" className="btn small" onClick={() => {
                        localStorage.setItem('modelseal.ui.load.mode', JSON.stringify('published'));
                        localStorage.setItem('modelseal.ui.load.published', JSON.stringify(m.name));
                        go('consumer/loader');
                      }}>Load…</button>
                      <Action need="owner" className="btn small danger" onClick={() => setVictim(m.name)} aria-label={`Delete ${m.name}`}>Delete</Action>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {d && d.legacy.length > 0 && (
        <>
          <h3 style={{ marginTop: '1rem' }}>Original sample layout (.gguf.enc + .gguf.datakey.enc)</h3>
          <table aria-label="Legacy objects">
            <thead><tr><th>Encrypted model</th><th>Data key</th><th>Size</th></tr></thead>
            <tbody>{d.legacy.map((l) => <tr key={l.object}><td><Digest value={l.object} label="object name" /></td><td><Digest value={l.datakey} label="data key object name" /></td><td>{bytes(l.size)}</td></tr>)}</tbody>
          </table>
        </>
      )}
      {d && d.orphans.length > 0 && (
        <div className="banner info" style={{ marginTop: '1rem' }}>
          <b>Orphaned sealed objects</b> (a publish stopped before its manifest): {d.orphans.map((o) => <code key={o.object}>{o.object} </code>)}
        </div>
      )}
      {d && d.problems.length > 0 && <ul className="lints">{d.problems.map((p) => <li key={p} className="warning">{p}</li>)}</ul>}
      <Confirm open={victim !== undefined} title={`Delete ${victim}?`} confirmLabel="Delete" onConfirm={() => victim && del(victim)} onCancel={() => setVictim(undefined)}>
        <p>This removes the sealed object and its manifest from <code>{who?.store}</code>. Machines that already loaded it keep running it; nobody can load it again.</p>
      </Confirm>
    </Panel>
  );
}
