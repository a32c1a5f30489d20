import { Fragment, useEffect, useState } from 'react';
import { Empty, ErrorBox, OkBadge, Panel, ProgressBar, TabPanel, Tabs, useLoad } from '../components/ui';
import { get } from '../lib/api';
import { bytes, duration } from '../lib/format';
import type { EnvironmentReply, GpuReply, NetworkReply, SystemReply } from '../lib/types';
import { useSession } from '../session';

const SUBS = [
  { id: 'instance', label: 'Instance metadata' },
  { id: 'gpu', label: 'GPU' },
  { id: 'system', label: 'System' },
  { id: 'network', label: 'Network' },
] as const;
type Sub = (typeof SUBS)[number]['id'];

export function Environment({ sub }: { sub: string }) {
  const { go } = useSession();
  const s: Sub = SUBS.some((x) => x.id === sub) ? (sub as Sub) : 'instance';
  return (
    <>
      <Tabs tabs={[...SUBS]} value={s} onChange={(v) => go(`environment/${v}`)} label="Environment" idPrefix="env" />
      <TabPanel idPrefix="env" tab={s}>
        {s === 'instance' && <Instance />}
        {s === 'gpu' && <Gpu />}
        {s === 'system' && <System />}
        {s === 'network' && <Network />}
      </TabPanel>
    </>
  );
}

function Json({ value, label }: { value: unknown; label: string }) {
  // Focusable: it may scroll, and the keyboard must reach what it hides.
  return <pre className="json" tabIndex={0} aria-label={label}>{JSON.stringify(value, null, 2)}</pre>;
}

function Instance() {
  const env = useLoad((s) => get<EnvironmentReply>('/ms/v1/environment', s), []);
  const d = env.data;
  return (
    <Panel title="Instance metadata" actions={<button type="button" className="btn small" onClick={env.reload}>Refresh</button>}>
      <ErrorBox error={env.error} title="Could not read the environment" />
      {d && !d.on_ec2 && (
        <div data-testid="not-ec2">
          <div className="banner info" role="status"><b>Not running on EC2.</b> {d.note}</div>
          <p className="small muted">On an EC2 instance this shows the instance identity document (account, region, instance type, image) and the IAM instance profile, read from IMDSv2 at <code>{d.endpoint}</code>.</p>
        </div>
      )}
      {d && d.on_ec2 && (
        <div className="grid2">
          <div>
            <h3>Instance</h3>
            <dl className="kv small">{Object.entries(d.summary ?? {}).map(([k, v]) => <Fragment key={k}><dt>{k.replace(/_/g, ' ')}</dt><dd><code>{v || '—'}</code></dd></Fragment>)}</dl>
            <h3 style={{ marginTop: '1rem' }}>IAM</h3>
            <Json value={d.iam} label="IAM information" />
          </div>
          <div>
            <h3>Identity document</h3>
            <Json value={d.identity_document} label="Instance identity document" />
          </div>
        </div>
      )}
    </Panel>
  );
}

function Spark({ values, max, label }: { values: number[]; max: number; label: string }) {
  const w = 240, h = 48;
  const pts = values.map((v, i) => `${(i / Math.max(1, 59)) * w},${h - (Math.min(v, max) / (max || 1)) * (h - 4) - 2}`).join(' ');
  return (
    <svg className="spark" width={w} height={h} viewBox={`0 0 ${w} ${h}`} role="img" aria-label={`${label}: last ${values.length} samples, now ${values[values.length - 1] ?? 0}`}>
      <rect width={w} height={h} fill="#f8fafc" stroke="#d7dce3" />
      {values.length > 1 && <polyline points={pts} fill="none" stroke="#1d4ed8" strokeWidth={2} />}
    </svg>
  );
}

function Gpu() {
  const [data, setData] = useState<GpuReply>();
  const [error, setError] = useState<unknown>();
  const [history, setHistory] = useState<Record<number, { util: number[]; mem: number[] }>>({});
  useEffect(() => {
    let stop = false;
    const tick = async () => {
      try {
        const g = await get<GpuReply>('/ms/v1/gpu');
        if (stop) return;
        setData(g);
        setError(undefined);
        setHistory((h) => {
          const n: typeof h = {};
          g.devices.forEach((d, i) => {
            const p = h[i] ?? { util: [], mem: [] };
            n[i] = { util: [...p.util, d.utilization_gpu].slice(-60), mem: [...p.mem, d.memory_total ? (100 * d.memory_used) / d.memory_total : 0].slice(-60) };
          });
          return n;
        });
      } catch (e) {
        if (!stop) setError(e);
      }
    };
    void tick();
    const t = setInterval(tick, 3000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, []);
  return (
    <Panel title="GPU">
      <ErrorBox error={error} title="Could not read the GPUs" />
      {data && !data.available && (
        <Empty title="No GPU available">
          <p data-testid="gpu-reason">{data.reason || 'NVML is not available on this machine.'} Inference runs on the CPU.</p>
        </Empty>
      )}
      {data && data.available && (
        <>
          <p className="small muted">Driver {data.driver_version || '—'} · CUDA {data.cuda_version || '—'} · sampled every 3 s</p>
          <div className="cards">
            {data.devices.map((d, i) => (
              <div key={i} className="card" data-testid="gpu-device">
                <h3>{i}: {d.name}</h3>
                <div className="meter">
                  <span className="small">Memory {bytes(d.memory_used)} of {bytes(d.memory_total)}</span>
                  <ProgressBar value={d.memory_total ? d.memory_used / d.memory_total : 0} label={`GPU ${i} memory used`} />
                  <Spark values={history[i]?.mem ?? []} max={100} label={`GPU ${i} memory use, percent`} />
                </div>
                <div className="meter" style={{ marginTop: '0.6rem' }}>
                  <span className="small">Utilisation {d.utilization_gpu}% · memory bus {d.utilization_memory}% · {d.temperature_c} °C</span>
                  <Spark values={history[i]?.util ?? []} max={100} label={`GPU ${i} utilisation, percent`} />
                </div>
              </div>
            ))}
          </div>
        </>
      )}
    </Panel>
  );
}

function System() {
  const sys = useLoad((s) => get<SystemReply>('/ms/v1/system', s), []);
  const d = sys.data;
  return (
    <Panel title="System" actions={<button type="button" className="btn small" onClick={sys.reload}>Refresh</button>}>
      <ErrorBox error={sys.error} title="Could not read the system state" />
      {d && (
        <div className="grid2">
          <div>
            <h3>Services</h3>
            <table aria-label="Services" data-testid="services">
              <thead><tr><th>Service</th><th>State</th><th>Detail</th></tr></thead>
              <tbody>{Object.entries(d.services).map(([k, v]) => (
                <tr key={k} data-service={k}>
                  <td><b>{k}</b>{typeof v.version === 'string' && v.version && <div className="small muted">{v.version}</div>}</td>
                  <td><OkBadge ok={v.ok} yes="up" no="down" /></td>
                  <td className="small mono" style={{ overflowWrap: 'anywhere' }}>{v.detail}</td>
                </tr>
              ))}</tbody>
            </table>
          </div>
          <div>
            <h3>Versions and host</h3>
            <dl className="kv small">
              <dt>modelseal</dt><dd><code>{d.version}</code></dd>
              <dt>llama.cpp</dt><dd><code>{d.llama_cpp}</code></dd>
              <dt>Host</dt><dd><code>{d.hostname}</code></dd>
              <dt>Attestation</dt><dd>{d.attestation === 'development' ? <span className="badge dev">development</span> : d.attestation}</dd>
              <dt>Machine up</dt><dd>{duration(d.uptime_seconds)}</dd>
              <dt>Server up</dt><dd>{duration(d.process_uptime_seconds)}</dd>
              {d.memory && <><dt>Memory</dt><dd>{bytes(d.memory.used ?? d.memory.total - (d.memory.available ?? d.memory.free ?? 0))} used of {bytes(d.memory.total)}</dd></>}
              {d.memory?.shmem_huge_pages !== undefined && <><dt>Shared memory huge pages</dt><dd data-testid="shmem-huge-pages"><code>{d.memory.shmem_huge_pages || 'unknown'}</code></dd></>}
              {d.disk && <><dt>Disk (state)</dt><dd>{bytes(d.disk.used)} used of {bytes(d.disk.total)}, {bytes(d.disk.available)} free</dd></>}
              {d.load_average && <><dt>Load</dt><dd>{d.load_average.map((x) => x.toFixed(2)).join(' · ')}</dd></>}
              {d.state_dir && <><dt>State</dt><dd><code>{d.state_dir}</code></dd></>}
            </dl>
            {!d.state_dir && <p className="small muted" style={{ marginTop: '0.5rem' }}>Load, disk, the state directory, the processes and the logs are shown to the owner token only.</p>}
            {d.read_at && <p className="small muted" style={{ marginTop: '0.5rem' }}>Read at {d.read_at}</p>}
          </div>
        </div>
      )}
      {d?.processes && (
        <>
          <h3 style={{ marginTop: '1rem' }}>Processes</h3>
          <p className="small muted">modelseal's own processes first, then the largest others by resident memory.</p>
          <div className="table-wrap">
            <table aria-label="Processes" data-testid="processes">
              <thead><tr><th>PID</th><th>Name</th><th>State</th><th>Memory</th><th>CPU</th><th>Threads</th><th>Command</th></tr></thead>
              <tbody>{d.processes.map((p) => (
                <tr key={p.pid} data-pid={p.pid} className={p.modelseal ? 'hl' : undefined}>
                  <td className="mono">{p.pid}</td>
                  <td><code>{p.name}</code>{p.modelseal && <> <span className="badge neutral">modelseal</span></>}</td>
                  <td>{p.state}</td>
                  <td className="nowrap">{bytes(p.rss)}</td>
                  <td className="nowrap">{p.cpu_seconds.toFixed(1)} s</td>
                  <td>{p.threads}</td>
                  <td className="small mono" style={{ overflowWrap: 'anywhere' }}>{p.command}</td>
                </tr>
              ))}</tbody>
            </table>
          </div>
        </>
      )}
      {d?.logs && Object.keys(d.logs).length > 0 && (
        <>
          <h3 style={{ marginTop: '1rem' }}>Recent log lines</h3>
          {Object.entries(d.logs).map(([name, lines]) => (
            <details key={name}>
              <summary><code>{name}</code></summary>
              <pre className="json wrap" tabIndex={0} aria-label={`Recent lines of the ${name} log`}>{Array.isArray(lines) ? lines.join('\n') : String(lines)}</pre>
            </details>
          ))}
        </>
      )}
    </Panel>
  );
}

function Network() {
  const net = useLoad((s) => get<NetworkReply>('/ms/v1/network', s), []);
  const d = net.data;
  return (
    <Panel title="Network" actions={<button type="button" className="btn small" onClick={net.reload} disabled={net.loading}>{net.loading ? 'Checking…' : 'Check again'}</button>}>
      <p className="small muted">Whether this server reaches what it depends on (a TCP connection to each endpoint).</p>
      <ErrorBox error={net.error} title="Could not check the network" />
      {d && (
        <>
          <table aria-label="Reachability" data-testid="network-checks">
            <thead><tr><th>Endpoint</th><th>State</th><th>Time</th><th>Detail</th></tr></thead>
            <tbody>{d.checks.map((c) => (
              <tr key={c.name} data-check={c.name}>
                <td><b>{c.name}</b><div className="small mono" style={{ overflowWrap: 'anywhere' }}>{c.url}</div></td>
                <td><OkBadge ok={c.reachable} yes="reachable" no="unreachable" /></td>
                <td className="small nowrap">{c.milliseconds !== undefined ? `${c.milliseconds} ms` : '—'}</td>
                <td className="small" style={{ overflowWrap: 'anywhere' }}>{c.detail}</td>
              </tr>
            ))}</tbody>
          </table>
          {d.interfaces && (
            <div className="grid2" style={{ marginTop: '1rem' }}>
              <div>
                <h3>Interfaces</h3>
                <table aria-label="Interfaces">
                  <thead><tr><th>Name</th><th>State</th><th>Addresses</th></tr></thead>
                  <tbody>{d.interfaces.map((i) => (
                    <tr key={i.name}><td><code>{i.name}</code></td><td>{i.up ? 'up' : 'down'}{i.loopback ? ' · loopback' : ''}</td><td className="small mono" style={{ overflowWrap: 'anywhere' }}>{i.addresses.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(', ') || '—'}</td></tr>
                  ))}</tbody>
                </table>
              </div>
              <div>
                <h3>Listening</h3>
                <table aria-label="Listening sockets">
                  <thead><tr><th>Protocol</th><th>Port</th><th>Service</th></tr></thead>
                  <tbody>{(d.listening ?? []).map((l, i) => <tr key={i}><td>{l.protocol}</td><td>{l.port}</td><td className="small">{l.service}</td></tr>)}</tbody>
                </table>
              </div>
            </div>
          )}
          {!d.interfaces && <p className="small muted" style={{ marginTop: '0.5rem' }}>Interfaces and listening sockets are shown to the owner token only.</p>}
        </>
      )}
    </Panel>
  );
}
