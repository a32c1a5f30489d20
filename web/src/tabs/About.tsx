import { Panel } from '../components/ui';
import { useSession } from '../session';

// The owner → key service → consumer flow, with the tab that performs each step.
function FlowDiagram() {
  const box = (x: number, y: number, w: number, h: number, title: string, lines: string[], fill: string, stroke: string) => (
    <g>
      <rect x={x} y={y} width={w} height={h} rx={10} fill={fill} stroke={stroke} strokeWidth={1.5} />
      <text x={x + w / 2} y={y + 24} textAnchor="middle" fontWeight={700} fontSize={15} fill="#111827">{title}</text>
      {lines.map((l, i) => (
        <text key={i} x={x + w / 2} y={y + 46 + i * 18} textAnchor="middle" fontSize={12.5} fill="#374151">{l}</text>
      ))}
    </g>
  );
  const step = (x: number, y: number, n: number, text: string, tab: string) => (
    <g>
      <circle cx={x} cy={y} r={10} fill="#1d4ed8" />
      <text x={x} y={y + 4} textAnchor="middle" fontSize={11} fontWeight={700} fill="#fff">{n}</text>
      <text x={x} y={y + 24} textAnchor="middle" fontSize={12.5} fill="#111827">{text}</text>
      <text x={x} y={y + 40} textAnchor="middle" fontSize={11.5} fill="#1d4ed8" fontStyle="italic">{tab}</text>
    </g>
  );
  const arrow = (x1: number, y1: number, x2: number, y2: number, dashed = false) => (
    <line x1={x1} y1={y1} x2={x2} y2={y2} stroke="#475569" strokeWidth={2} strokeDasharray={dashed ? '6 4' : undefined} markerEnd="url(#arrow)" />
  );
  return (
    <svg viewBox="0 0 1100 440" role="img" aria-labelledby="flow-title flow-desc">
      <title id="flow-title">How a sealed model travels from owner to consumer</title>
      <desc id="flow-desc">
        The owner seals the model and uploads it to the object store, and sets a key policy on the key service. The consumer's machine
        downloads the sealed model, gets an attestation document from its TPM, asks the key service for the data key, which releases it
        only if the PCRs match the policy, unseals the model in memory, extends PCR15 with its SHA-384 and serves chat. Anyone can verify
        the attestation.
      </desc>
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">
          <path d="M0 0 L10 5 L0 10 z" fill="#475569" />
        </marker>
      </defs>
      {box(20, 150, 220, 120, 'Model owner', ['GGUF model (HF, upload, test)', 'holds the KMS key', 'writes the key policy'], '#ede9fe', '#7c3aed')}
      {box(440, 20, 220, 110, 'Key service (KMS)', ['key policy: PCR conditions', 'releases the data key only', 'to a matching machine'], '#fef3c7', '#d97706')}
      {box(440, 300, 220, 110, 'Object store', ['sealed model (.msealed)', 'manifest: sizes, digests'], '#e0f2fe', '#0284c7')}
      {box(860, 150, 220, 130, 'Consumer machine', ['TPM: PCR4 · PCR7 · PCR12', 'PCR15 ← model SHA-384', 'model in memory only', 'chat (Ollama / OpenAI APIs)'], '#ccfbf1', '#0d9488')}
      {arrow(240, 175, 436, 80)}
      {step(290, 66, 2, 'set key policy', 'Seal model weights')}
      {arrow(240, 250, 436, 345)}
      {step(300, 326, 1, 'seal + publish', 'Model manager')}
      {arrow(660, 355, 856, 262)}
      {step(800, 360, 3, 'download sealed model', 'Model loader')}
      {arrow(860, 168, 664, 92)}
      {step(760, 58, 4, 'attestation + Decrypt', 'Model loader')}
      {arrow(660, 116, 856, 194, true)}
      {step(760, 196, 5, 'data key for this machine', 'only if the PCRs match')}
      {step(970, 306, 6, 'unseal · PCR15 · chat', 'Chat')}
      <rect x={20} y={340} width={220} height={70} rx={10} fill="#f8fafc" stroke="#64748b" strokeDasharray="5 4" />
      <text x={130} y={366} textAnchor="middle" fontWeight={700} fontSize={14} fill="#111827">Anyone</text>
      <text x={130} y={386} textAnchor="middle" fontSize={12.5} fill="#374151">verifies document + PCRs</text>
      <text x={130} y={402} textAnchor="middle" fontSize={11.5} fill="#1d4ed8" fontStyle="italic">Attestation tab</text>
    </svg>
  );
}

export function About() {
  const { who, go } = useSession();
  return (
    <>
      <Panel title="Share model weights with a machine you can verify">
        <p>
          modelseal lets a <b>model owner</b> hand LLM weights to a <b>model consumer</b> they do not trust. The owner seals the GGUF
          model under a KMS key and publishes it; the key policy releases the data key only to machines whose TPM measurements (PCRs)
          match. The consumer loads the model on such a machine: its TPM signs an attestation document, the key service checks it
          against the policy, the model is decrypted into memory only, and PCR15 is extended with the model's SHA-384 so that anyone can
          see which model the machine runs.
        </p>
        <div className="flow"><FlowDiagram /></div>
      </Panel>
      <div className="cards">
        <div className="card">
          <h3>1 · Model owner</h3>
          <p className="small">Seal and publish a model (<i>Model manager</i>), decide which machines get its key (<i>Seal model weights</i>), manage what is published.</p>
          <button type="button" className="btn small" onClick={() => go('owner/manager')}>Open Model owner</button>
        </div>
        <div className="card">
          <h3>2 · Model consumer</h3>
          <p className="small">Load a published model with attested key release (<i>Model loader</i>), see what is loaded and its PCR15, chat with it.</p>
          <button type="button" className="btn small" onClick={() => go('consumer/loader')}>Open Model consumer</button>
        </div>
        <div className="card">
          <h3>3 · Anyone</h3>
          <p className="small">Fetch the machine's attestation document, check every signature and certificate, read the PCRs and the PCR15 log.</p>
          <button type="button" className="btn small" onClick={() => go('attestation')}>Open Attestation</button>
        </div>
        <div className="card">
          <h3>Your role</h3>
          <p className="small">
            This token is <b>{who?.role ?? '—'}</b>: {who?.role === 'owner' ? 'you may publish models and change key policies.' : who?.role === 'consumer' ? 'you may load models and chat.' : 'you may look at everything but change nothing.'}{' '}
            Actions for other roles are shown disabled with the reason.
          </p>
          {who && (
            <dl className="kv small">
              <dt>Key</dt><dd><code>{who.key_id || '—'}</code></dd>
              <dt>Store</dt><dd><code>{who.store || '—'}</code></dd>
              <dt>Attestation</dt><dd>{who.attestation}</dd>
            </dl>
          )}
        </div>
      </div>
    </>
  );
}
