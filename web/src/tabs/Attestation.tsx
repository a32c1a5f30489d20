import { useState } from 'react';
import { Digest, Empty, ErrorBox, Field, OkBadge, Panel, useLoad } from '../components/ui';
import { get, post } from '../lib/api';
import { randomHex, when } from '../lib/format';
import { usePersisted } from '../lib/persist';
import type { AttestationReply, Pcr15Log } from '../lib/types';

const PCR_MEANING: Record<number, string> = {
  0: 'firmware code',
  1: 'firmware configuration',
  2: 'option ROMs',
  3: 'option ROM configuration',
  4: 'boot loader / UKI — pin it',
  5: 'GPT and boot configuration',
  7: 'Secure Boot state — pin it',
  8: 'kernel command line (OS)',
  9: 'initrd (OS)',
  11: 'unified kernel image sections',
  12: 'kernel command line / config',
  15: 'models loaded (modelseal)',
};
const KEY_PCRS = [4, 7, 12, 15];

export function Attestation() {
  const [nonce, setNonce] = usePersisted('attest.nonce', '');
  const [doc, setDoc] = useState<AttestationReply>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const log = useLoad((s) => get<Pcr15Log>('/ms/v1/pcr15/log', s), []);
  const nonceBad = nonce !== '' && (!/^([0-9a-fA-F]{2})+$/.test(nonce) || nonce.length > 1024);

  const fetchDoc = async () => {
    setBusy(true);
    setError(undefined);
    try {
      setDoc(await post<AttestationReply>('/ms/v1/attestation', nonce ? { nonce } : {}));
      log.reload();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const download = () => {
    if (!doc) return;
    const bin = Uint8Array.from(atob(doc.document), (c) => c.charCodeAt(0));
    const url = URL.createObjectURL(new Blob([bin], { type: 'application/cbor' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `attestation-${doc.fields?.timestamp_ms ?? Date.now()}.cbor`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  const f = doc?.fields;
  return (
    <>
      <Panel title="Attestation document">
        <p className="muted small">A COSE_Sign1 document from this machine's TPM: its PCRs, signed by the attestation authority. Anyone may fetch and verify it.</p>
        <form className="row" onSubmit={(e) => { e.preventDefault(); if (!nonceBad) void fetchDoc(); }}>
          <Field label="Nonce (optional, hex)" help={nonceBad ? 'An even number of hex digits, at most 512 bytes.' : 'Empty: the server picks a random one. Your own nonce proves the document is fresh.'}>
            {(id, h) => <input id={id} className="mono" value={nonce} onChange={(e) => setNonce(e.target.value.trim())} aria-describedby={h} aria-invalid={nonceBad ? true : undefined} spellCheck={false} />}
          </Field>
          <button type="button" className="btn" onClick={() => setNonce(randomHex(32))}>Random nonce</button>
          <button type="submit" className="btn primary" disabled={busy || nonceBad} data-testid="fetch-attestation">{busy ? 'Fetching…' : 'Fetch attestation document'}</button>
          {doc && <button type="button" className="btn" onClick={download}>Download (.cbor)</button>}
        </form>
        <div style={{ marginTop: '0.75rem' }}><ErrorBox error={error} title="Could not get a document" /></div>
      </Panel>
      {!doc && !error && <Empty title="No document fetched yet">Fetch one to see its fields, PCRs 0–23, certificate chain and each verification step.</Empty>}
      {doc && (
        <div data-testid="attestation" data-verified={String(doc.verified)}>
          {doc.development && (
            <div className="banner dev" role="note" data-testid="dev-banner">
              <b>DEVELOPMENT document.</b> Signed by the local development authority, not by AWS Nitro: it proves nothing about real hardware. {doc.note}
            </div>
          )}
          <div className={`banner ${doc.verified ? 'ok' : 'bad'}`} role="status">
            <b>{doc.verified ? '✓ Verified' : '✕ Not verified'}</b> — {doc.verified ? `the chain ends at ${doc.root}, and every check that ran passed.` : 'at least one check failed (see below); do not trust its PCRs.'}
          </div>
          <div className="grid2">
            <Panel level={3} title="Verification">
              <ol className="steps" aria-label="Verification steps">
                {doc.checks.map((c) => {
                  // "passed", "failed", "not-run", "not-requested" (older servers:
                  // "FAILED", "not run", "not requested").
                  const outcome = c.outcome.toLowerCase().replace(/ /g, '-');
                  const ok = outcome === 'passed';
                  const skipped = outcome === 'not-requested';
                  return (
                    <li key={c.name} className={`step ${ok ? 'done' : skipped ? 'pending' : 'failed'}`} data-check={c.name} data-outcome={c.outcome}>
                      <span className="icon" aria-hidden="true">{ok ? '✓' : skipped ? '–' : '✕'}</span>
                      <div>
                        <div className="title"><strong>{c.name}</strong> <span className={`badge ${ok ? 'ok' : skipped ? 'neutral' : 'bad'}`}>{outcome.replace(/-/g, ' ')}</span></div>
                        {c.detail && <div className="small muted">{c.detail}</div>}
                      </div>
                    </li>
                  );
                })}
              </ol>
            </Panel>
            <Panel level={3} title="Fields">
              {f ? (
                <dl className="kv small">
                  <dt>Source</dt><dd>{doc.source}</dd>
                  <dt>module_id</dt><dd><code>{f.module_id}</code></dd>
                  <dt>digest</dt><dd><code>{f.digest}</code></dd>
                  <dt>timestamp</dt><dd>{when(f.timestamp)} <span className="muted">({f.timestamp_ms})</span></dd>
                  <dt>nonce</dt><dd><Digest value={f.nonce} label="nonce" short /></dd>
                  <dt>public_key</dt><dd><Digest value={f.public_key} label="public key" short /></dd>
                  <dt>user_data</dt><dd><Digest value={f.user_data} label="user data" short /></dd>
                  <dt>Root</dt><dd>{doc.root || '—'}</dd>
                </dl>
              ) : <p>The document could not be parsed.</p>}
            </Panel>
          </div>
          {f && (
            <Panel level={3} title="PCRs (SHA-384)">
              <div className="table-wrap">
                <table aria-label="PCRs">
                  <thead><tr><th>PCR</th><th>Measures</th><th>Value</th></tr></thead>
                  <tbody>
                    {Array.from({ length: 24 }, (_, i) => i).map((i) => {
                      const v = f.pcrs[String(i)];
                      return (
                        <tr key={i} className={KEY_PCRS.includes(i) ? 'hl' : ''} data-pcr={i}>
                          <td className="nowrap"><b>PCR{i}</b>{KEY_PCRS.includes(i) && <span className="sr-only"> (key PCR)</span>}</td>
                          <td className="small">{PCR_MEANING[i] ?? ''}</td>
                          <td>{v ? <Digest value={v} label={`PCR${i}`} /> : <span className="muted">not in document</span>}</td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </div>
            </Panel>
          )}
          <Panel level={3} title="Certificate chain">
            <div className="table-wrap">
              <table aria-label="Certificates">
                <thead><tr><th>Role</th><th>Subject</th><th>Issuer</th><th>Valid</th><th>SHA-256 fingerprint</th></tr></thead>
                <tbody>
                  {doc.certificates.map((c, i) => (
                    <tr key={i}>
                      <td><span className="badge neutral">{c.role}</span></td>
                      <td className="small"><code>{c.subject ?? c.error}</code></td>
                      <td className="small"><code>{c.issuer}</code></td>
                      <td className="small nowrap">{c.not_before}<br />{c.not_after}</td>
                      <td><Digest value={c.sha256} label={`fingerprint of ${c.role} certificate`} short /></td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </Panel>
        </div>
      )}
      <Panel level={3} title="PCR15 measurement log" actions={<button type="button" className="btn small" onClick={log.reload}>Refresh</button>}>
        <ErrorBox error={log.error} title="Could not read the log" />
        {log.data && (
          <>
            <p>
              <OkBadge ok={log.data.matches} yes="the log replays to the live PCR15" no="the log does NOT replay to the live PCR15" />{' '}
              <span className="small muted">boot {log.data.boot.reset_count}/{log.data.boot.restart_count}</span>
            </p>
            <dl className="kv small">
              <dt>Live PCR15</dt><dd><Digest value={log.data.live} label="live PCR15" /></dd>
              <dt>Replayed</dt><dd><Digest value={log.data.replayed} label="replayed PCR15" /></dd>
            </dl>
            {log.data.entries.length === 0 ? (
              <p className="muted small" style={{ marginTop: '0.5rem' }}>No model measured since boot: PCR15 is still zero.</p>
            ) : (
              <div className="table-wrap" style={{ marginTop: '0.5rem' }}>
                <table aria-label="Measurement log">
                  <thead><tr><th>#</th><th>Model</th><th>SHA-384</th><th>PCR15 after</th><th>Loaded</th><th>Unloaded</th></tr></thead>
                  <tbody>{log.data.entries.map((e, i) => (
                    <tr key={i}><td>{i + 1}</td><td>{e.model}</td><td><Digest value={e.sha384} label={`SHA-384 of ${e.model}`} short /></td><td><Digest value={e.pcr15_after} label="PCR15 after" short /></td><td className="small">{when(e.time)}</td><td className="small">{e.unloaded ? when(e.unloaded) : '—'}</td></tr>
                  ))}</tbody>
                </table>
              </div>
            )}
          </>
        )}
      </Panel>
    </>
  );
}
