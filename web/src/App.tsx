import { useCallback, useEffect, useState } from 'react';
import { ApiError, clearToken, errorOf, get, loadToken, saveToken, setApiToken } from './lib/api';
import type { WhoAmI } from './lib/types';
import { SessionContext } from './session';
import { TabPanel, Tabs } from './components/ui';
import { About } from './tabs/About';
import { Owner } from './tabs/Owner';
import { Consumer } from './tabs/Consumer';
import { Attestation } from './tabs/Attestation';
import { Environment } from './tabs/Environment';

const TABS = [
  { id: 'about', label: 'About' },
  { id: 'owner', label: 'Model owner' },
  { id: 'consumer', label: 'Model consumer' },
  { id: 'attestation', label: 'Attestation' },
  { id: 'environment', label: 'Environment' },
] as const;
type TabId = (typeof TABS)[number]['id'];

function parseHash(): { tab: TabId; sub: string } {
  const [, tab, sub] = (location.hash.replace(/^#/, '') || '/about').split('/');
  const t = TABS.some((x) => x.id === tab) ? (tab as TabId) : 'about';
  return { tab: t, sub: sub ?? '' };
}

function useRoute() {
  const [route, setRoute] = useState(parseHash);
  useEffect(() => {
    const on = () => setRoute(parseHash());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  const go = useCallback((r: string) => {
    location.hash = `/${r}`;
  }, []);
  return { ...route, go };
}

export function App() {
  const { tab, sub, go } = useRoute();
  const [token, setToken] = useState(loadToken);
  const [who, setWho] = useState<WhoAmI>();
  const [authError, setAuthError] = useState<unknown>();
  const [checking, setChecking] = useState(false);
  const [asking, setAsking] = useState(!token);

  const check = useCallback(async (t: string, remember: boolean | null) => {
    setChecking(true);
    setApiToken(t);
    try {
      const w = await get<WhoAmI>('/ms/v1/whoami');
      setWho(w);
      setAuthError(undefined);
      if (remember !== null) saveToken(t, remember);
      setToken(t);
      setAsking(false);
    } catch (e) {
      setAuthError(e);
      if (e instanceof ApiError && e.status === 401) {
        setWho(undefined);
        setAsking(true);
      }
    } finally {
      setChecking(false);
    }
  }, []);

  useEffect(() => {
    if (token) void check(token, null);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const signOut = () => {
    clearToken();
    setApiToken('');
    setToken('');
    setWho(undefined);
    setAsking(true);
  };

  const gate = asking || (!who && !authError);
  const current = TABS.find((t) => t.id === tab)!;
  useEffect(() => {
    document.title = `${current.label} · modelseal`;
  }, [current]);

  return (
    <SessionContext.Provider value={{ who, go }}>
      <header className="topbar">
        <div className="brand">
          <svg width="22" height="22" viewBox="0 0 16 16" aria-hidden="true"><rect width="16" height="16" rx="3" fill="#2563eb" /><path d="M5 7V5a3 3 0 0 1 6 0v2h1v6H4V7zm2 0h2V5a1 1 0 0 0-2 0z" fill="#fff" /></svg>
          modelseal <small>attested model sharing{who?.version ? ` · ${who.version}` : ''}</small>
        </div>
        <div className="spacer" />
        {who && (
          <div className="who">
            {who.attestation === 'development' && <span className="badge dev" title="Documents are signed by the local development authority, not AWS">DEVELOPMENT attestation</span>}
            <span>Signed in as</span>
            <span className={`badge role-${who.role}`} data-testid="role">{who.role}</span>
            <button type="button" className="link" onClick={() => setAsking(true)}>Change token</button>
            <button type="button" className="link" onClick={signOut}>Forget token</button>
          </div>
        )}
      </header>
      {gate ? (
        <main>
          <TokenGate busy={checking} error={authError} onSubmit={(t, r) => check(t, r)} onCancel={who ? () => setAsking(false) : undefined} />
        </main>
      ) : (
        <>
          <nav aria-label="Sections">
            <Tabs tabs={[...TABS]} value={tab} onChange={(t) => go(t)} label="Sections" className="tabs" idPrefix="main" />
          </nav>
          <main>
            {authError !== undefined && !who && (
              <div className="error" role="alert">
                <strong>Could not reach the server</strong>
                {errorOf(authError).message}
                <div className="hint"><b>What to do:</b> {errorOf(authError).hint}</div>
                <button type="button" className="btn" onClick={() => check(token, null)}>Try again</button>
              </div>
            )}
            <h1 className="sr-only">{current.label}</h1>
            <TabPanel idPrefix="main" tab={tab}>
              {tab === 'about' && <About />}
              {tab === 'owner' && <Owner sub={sub} />}
              {tab === 'consumer' && <Consumer sub={sub} />}
              {tab === 'attestation' && <Attestation />}
              {tab === 'environment' && <Environment sub={sub} />}
            </TabPanel>
          </main>
        </>
      )}
    </SessionContext.Provider>
  );
}

function TokenGate({ busy, error, onSubmit, onCancel }: { busy: boolean; error: unknown; onSubmit: (t: string, remember: boolean) => void; onCancel?: () => void }) {
  const [value, setValue] = useState('');
  const [show, setShow] = useState(false);
  const [remember, setRemember] = useState(false);
  const e = error ? errorOf(error) : undefined;
  return (
    <section className="panel gate" aria-labelledby="gate-title">
      <h1 id="gate-title" style={{ fontSize: '1.35rem' }}>Sign in with an API token</h1>
      <p className="muted">
        Each role has its own token: <b>owner</b> (publish models, set key policies), <b>consumer</b> (load models, chat) and{' '}
        <b>viewer</b> (read only). <code>modelseal up</code> prints them at first start; <code>modelseal token show</code> prints them again.
      </p>
      <form
        className="form"
        onSubmit={(ev) => {
          ev.preventDefault();
          if (value.trim()) onSubmit(value.trim(), remember);
        }}
      >
        <div className="field">
          <label htmlFor="token">API token</label>
          <div className="row" style={{ alignItems: 'center', flexWrap: 'nowrap' }}>
            <input id="token" type={show ? 'text' : 'password'} autoComplete="off" spellCheck={false} placeholder="ms_owner_…" value={value} onChange={(ev) => setValue(ev.target.value)} aria-invalid={e ? true : undefined} aria-describedby={e ? 'token-error' : undefined} autoFocus />
            <button type="button" className="btn small" onClick={() => setShow(!show)} aria-pressed={show}>{show ? 'Hide' : 'Show'}</button>
          </div>
        </div>
        <label className="choice">
          <input type="checkbox" checked={remember} onChange={(ev) => setRemember(ev.target.checked)} /> Remember on this browser (otherwise it is forgotten when the tab closes)
        </label>
        {e && (
          <div className="error" role="alert" id="token-error">
            <strong>{e.message}</strong>
            <div className="hint"><b>What to do:</b> {e.hint}</div>
          </div>
        )}
        <div className="row">
          <button type="submit" className="btn primary" disabled={busy || !value.trim()}>{busy ? 'Checking…' : 'Continue'}</button>
          {onCancel && <button type="button" className="btn" onClick={onCancel}>Cancel</button>}
        </div>
      </form>
    </section>
  );
}
