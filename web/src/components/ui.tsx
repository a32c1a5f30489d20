import { useCallback, useEffect, useId, useRef, useState, type ButtonHTMLAttributes, type ReactNode } from 'react';
import { errorOf } from '../lib/api';
import { fraction, stepStatuses, type JobView, type StepDef } from '../lib/jobs';
import { unitAmount } from '../lib/format';
import { useSession } from '../session';
import type { RoleName } from '../lib/types';

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  const copy = async () => {
    try {
      if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
      else {
        const ta = document.createElement('textarea');
        ta.value = text;
        ta.setAttribute('readonly', '');
        ta.style.position = 'fixed';
        ta.style.opacity = '0';
        document.body.appendChild(ta);
        ta.select();
        const ok = document.execCommand('copy');
        ta.remove();
        if (!ok) throw new Error('copy refused');
      }
      setState('copied');
    } catch {
      setState('failed');
    }
    setTimeout(() => setState('idle'), 1500);
  };
  return (
    <button type="button" className="copy" onClick={copy} aria-label={`Copy ${label}`} title={`Copy ${label}`}>
      {state === 'copied' ? 'Copied' : state === 'failed' ? 'Select it' : 'Copy'}
      <span className="sr-only" aria-live="polite">{state === 'copied' ? `${label} copied` : ''}</span>
    </button>
  );
}

// A digest (or any opaque value) in monospace with a copy button. `short` shows a
// shortened form; the full value is in the title and copied.
export function Digest({ value, label, short }: { value?: string | null; label: string; short?: boolean }) {
  if (!value) return <span className="muted">—</span>;
  const shown = short && value.length > 24 ? `${value.slice(0, 12)}…${value.slice(-8)}` : value;
  return (
    <span className="digest">
      <code title={value} data-value={value}>{shown}</code>
      <CopyButton text={value} label={label} />
    </span>
  );
}

export function roleReason(need: RoleName, have: RoleName | undefined): string {
  return `Needs the ${need} token — you are signed in as ${have ?? 'nobody'}.`;
}

// A button for an action a role may or may not take: when it may not, the
// button is disabled and the reason is shown beside it (and announced).
export function Action({
  need, busy, blocked, children, className = 'btn primary', ...rest
}: {
  need?: RoleName;
  busy?: boolean;
  blocked?: string; // another reason it cannot run now
} & ButtonHTMLAttributes<HTMLButtonElement>) {
  const { who } = useSession();
  const id = useId();
  const denied = need !== undefined && who?.role !== need;
  const reason = denied ? roleReason(need, who?.role) : blocked;
  return (
    <span className="action">
      <button
        type="button"
        className={className}
        {...rest}
        disabled={Boolean(reason) || busy || rest.disabled}
        aria-describedby={reason ? id : undefined}
        data-denied={denied ? 'true' : undefined}
      >
        {children}
      </button>
      {reason && (
        <span className="why" id={id} data-testid="disabled-reason">
          {reason}
        </span>
      )}
    </span>
  );
}

export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const e = errorOf(error);
  return (
    <div className="error" role="alert">
      <strong>{title ?? 'That did not work'}</strong>
      <div>{e.message}</div>
      <div className="hint"><b>What to do:</b> {e.hint}</div>
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <h3>{title}</h3>
      {children}
    </div>
  );
}

export function Panel({ title, level = 2, actions, children, id }: { title: ReactNode; level?: 2 | 3; actions?: ReactNode; children: ReactNode; id?: string }) {
  const H = level === 2 ? 'h2' : 'h3';
  const hid = useId();
  return (
    <section className="panel" aria-labelledby={hid} id={id}>
      <header>
        <H id={hid}>{title}</H>
        {actions && <div className="actions">{actions}</div>}
      </header>
      {children}
    </section>
  );
}

export function Field({ label, help, children, id }: { label: string; help?: ReactNode; children: (id: string, helpId?: string) => ReactNode; id?: string }) {
  const auto = useId();
  const fid = id ?? auto;
  const hid = help ? `${fid}-help` : undefined;
  return (
    <div className="field">
      <label htmlFor={fid}>{label}</label>
      {children(fid, hid)}
      {help && <div className="help" id={hid}>{help}</div>}
    </div>
  );
}

export function ProgressBar({ value, label, status }: { value: number | undefined; label: string; status?: string }) {
  const pct = value === undefined ? undefined : Math.round(value * 100);
  return (
    <div
      className={`bar ${value === undefined ? 'indeterminate' : ''} ${status ?? ''}`}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={pct}
    >
      <span style={{ width: `${pct ?? 0}%` }} />
    </div>
  );
}

// "3.1 MiB of 8.7 MiB", "2 of 5 steps"; nothing for a one-step stage.
function amount(p: { done: number; total: number; unit: string }): string {
  if (p.unit === 'bytes') return p.total ? `${unitAmount(p.done, p.unit)} of ${unitAmount(p.total, p.unit)}` : p.done ? unitAmount(p.done, p.unit) : '';
  if (p.total <= 1) return '';
  return `${p.done} of ${p.total} ${p.unit}`;
}

// 0.004 -> "4 ms", 1.234 -> "1.2 s", 75 -> "75 s".
function seconds(s: number): string {
  if (s < 1) return `${Math.max(0, Math.round(s * 1000))} ms`;
  return s < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}

const ICON: Record<string, string> = { pending: '', running: '…', done: '✓', skipped: '✓', failed: '✕' };

export function StepList({ view, defs, label }: { view: JobView; defs: StepDef[]; label: string }) {
  const st = stepStatuses(view, defs);
  const extra = view.order.filter((s) => !defs.some((d) => d.id === s));
  const all = [...defs, ...extra.map((id) => ({ id, label: id, help: '' }))];
  return (
    <ol className="steps" aria-label={label}>
      {all.map((d, i) => {
        const s = st[d.id] ?? (view.stages[d.id]?.finished ? 'done' : 'running');
        const p = view.stages[d.id];
        return (
          <li key={d.id} className={`step ${s}`} data-step={d.id} data-status={s}>
            <span className="icon" aria-hidden="true">{ICON[s] || i + 1}</span>
            <div>
              <div className="title">
                <strong>{d.label}</strong>
                <span className="sr-only">: {s}</span>
                <span className="muted small">{d.help}</span>
                {p?.finished && typeof p.seconds === 'number' && (
                  <span className="muted small nowrap" data-testid="step-seconds">{seconds(p.seconds)}</span>
                )}
              </div>
              {p && (p.total > 0 || s === 'running') && (
                <>
                  <ProgressBar value={s === 'done' ? 1 : fraction(p)} label={`${d.label} progress`} status={s} />
                  <div className="muted small detail">{[amount(p), p.detail].filter(Boolean).join(' · ')}</div>
                </>
              )}
              {p && !(p.total > 0 || s === 'running') && p.detail && <div className="muted small detail">{p.detail}</div>}
            </div>
          </li>
        );
      })}
    </ol>
  );
}

// ARIA tabs with arrow-key navigation.
export function Tabs<T extends string>({
  tabs, value, onChange, label, className = 'subtabs', idPrefix,
}: {
  tabs: { id: T; label: string }[];
  value: T;
  onChange: (v: T) => void;
  label: string;
  className?: string;
  idPrefix: string;
}) {
  const refs = useRef<(HTMLButtonElement | null)[]>([]);
  const onKey = (e: React.KeyboardEvent, i: number) => {
    let j = -1;
    if (e.key === 'ArrowRight') j = (i + 1) % tabs.length;
    if (e.key === 'ArrowLeft') j = (i - 1 + tabs.length) % tabs.length;
    if (e.key === 'Home') j = 0;
    if (e.key === 'End') j = tabs.length - 1;
    if (j >= 0) {
      e.preventDefault();
      onChange(tabs[j].id);
      refs.current[j]?.focus();
    }
  };
  return (
    <div role="tablist" aria-label={label} className={className}>
      {tabs.map((t, i) => (
        <button
          key={t.id}
          ref={(el) => {
            refs.current[i] = el;
          }}
          role="tab"
          type="button"
          id={`${idPrefix}-tab-${t.id}`}
          aria-selected={value === t.id}
          aria-controls={`${idPrefix}-panel`}
          tabIndex={value === t.id ? 0 : -1}
          onClick={() => onChange(t.id)}
          onKeyDown={(e) => onKey(e, i)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

export function TabPanel({ idPrefix, tab, children }: { idPrefix: string; tab: string; children: ReactNode }) {
  return (
    <div role="tabpanel" id={`${idPrefix}-panel`} aria-labelledby={`${idPrefix}-tab-${tab}`}>
      {children}
    </div>
  );
}

// Runs an async loader; gives data, error, loading and a reload function.
export function useLoad<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | undefined>();
  const [error, setError] = useState<unknown>();
  const [loading, setLoading] = useState(false);
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    const ac = new AbortController();
    setLoading(true);
    fnRef
      .current(ac.signal)
      .then((d) => {
        if (!ac.signal.aborted) {
          setData(d);
          setError(undefined);
        }
      })
      .catch((e) => {
        if (!ac.signal.aborted && (e as Error).name !== 'AbortError') setError(e);
      })
      .finally(() => {
        if (!ac.signal.aborted) setLoading(false);
      });
    return () => ac.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload, setData };
}

export function Confirm({ open, title, children, confirmLabel, onConfirm, onCancel }: { open: boolean; title: string; children: ReactNode; confirmLabel: string; onConfirm: () => void; onCancel: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const hid = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} aria-labelledby={hid} onCancel={(e) => { e.preventDefault(); onCancel(); }}>
      <h2 id={hid}>{title}</h2>
      <div style={{ marginBottom: '1rem' }}>{children}</div>
      <div className="row" style={{ justifyContent: 'flex-end' }}>
        <button type="button" className="btn" onClick={onCancel} autoFocus>Cancel</button>
        <button type="button" className="btn danger solid" onClick={onConfirm}>{confirmLabel}</button>
      </div>
    </dialog>
  );
}

export function OkBadge({ ok, yes = 'pass', no = 'fail' }: { ok: boolean; yes?: string; no?: string }) {
  return <span className={`badge ${ok ? 'ok' : 'bad'}`}>{ok ? `✓ ${yes}` : `✕ ${no}`}</span>;
}
