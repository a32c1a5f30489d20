// Shapes of the product API's replies (/ms/v1/...), as the server writes them.

export type RoleName = 'owner' | 'consumer' | 'viewer';

export interface ApiErrorBody {
  code: string;
  module: string;
  reason: string;
  message: string;
  // A failed load job adds these.
  step?: string;
  policy?: Verdict;
  development_attestation?: boolean;
}

export interface WhoAmI {
  role: RoleName;
  may: { read: boolean; publish: boolean; manage_keys: boolean; load: boolean; chat: boolean };
  store: string;
  key_id: string;
  owner_principal: string;
  consumer_principal: string;
  attestation: string;
  version: string;
}

export interface Manifest {
  format?: string;
  name: string;
  object: string;
  source: string;
  file_name?: string;
  plaintext_size: number;
  sealed_size: number;
  sha256: string;
  sha384: string;
  kms_key_id: string;
  encryption_context?: Record<string, string>;
  container_version?: number;
  chunk_size?: number;
  created: string;
  created_unix_ms?: number;
  pcr15_fresh_boot?: string;
  loaded?: boolean;
}

export interface PublishedList {
  store: string;
  models: Manifest[];
  legacy: { object: string; datakey: string; size: number }[];
  orphans: { object: string; size: number }[];
  problems: string[];
}

export interface LoadedModel {
  name: string;
  source: string;
  sha256: string;
  sha384: string;
  size: number;
  pcr15_after: string;
  measured: boolean;
  architecture?: string;
  file_type?: string;
  parameters?: number;
  context_length?: number;
  gpu_layers?: number;
  load_seconds?: number;
}

export interface VerdictCondition {
  key: string;
  op: string;
  wanted: string[];
  machine: string[]; // empty: the request has no such key
  matched: boolean;
}

export interface VerdictStatement {
  index: number;
  sid: string;
  effect: 'Allow' | 'Deny';
  applies_to_request: boolean;
  conditions: VerdictCondition[];
}

export interface Verdict {
  allowed: boolean;
  decision: string;
  principal: string;
  statements: VerdictStatement[];
  lines: string[];
}

// A key-service lint warning (kms/lint.h); older servers sent plain strings.
export interface LintWarning {
  statement: number | null;
  sid: string;
  code: string;
  message: string;
}

export interface PolicyReply {
  key_id: string;
  policy: unknown;
  text: string;
  warnings: (LintWarning | string)[];
  pcrs?: Record<string, string>;
}

export interface JobSummary {
  id: string;
  kind: string;
  state: 'running' | 'succeeded' | 'failed' | 'cancelled';
  created: string;
  finished: string | null;
  request: Record<string, unknown>;
  result: unknown;
  error: ApiErrorBody | null;
  last_seq: number;
  stages: Record<string, unknown>;
}

export interface JobEvent {
  seq: number;
  time: string;
  type: 'progress' | 'succeeded' | 'failed' | 'cancelled';
  stage?: string;
  done?: number;
  total?: number;
  unit?: string;
  detail?: string;
  finished?: boolean;
  started?: string; // when the stage's first event came
  seconds?: number; // the stage's time so far (all of it once finished)
  result?: unknown;
  error?: ApiErrorBody;
}

export interface PcrsReply {
  banks: Record<string, Record<string, string>>;
  highlighted: number[];
}

export interface Pcr15Log {
  entries: { model: string; sha384: string; pcr15_after: string; time: string; unloaded: string | null }[];
  replayed: string;
  live: string;
  matches: boolean;
  boot: { reset_count: number; restart_count: number };
  discarded_earlier_boot?: number | boolean;
}

export interface Certificate {
  role?: string;
  subject?: string;
  issuer?: string;
  not_before?: string;
  not_after?: string;
  sha256?: string;
  key?: string;
  is_ca?: boolean;
  error?: string;
}

export interface AttestationReply {
  document: string;
  source: string;
  development: boolean;
  note: string;
  verified: boolean;
  root: string;
  checks: { name: string; outcome: string; detail: string }[];
  fields: {
    module_id: string;
    digest: string;
    timestamp: string;
    timestamp_ms: number;
    pcrs: Record<string, string>;
    public_key: string | null;
    user_data: string | null;
    nonce: string | null;
  } | null;
  certificates: Certificate[];
}

export interface GpuReply {
  available: boolean;
  reason: string;
  driver_version: string;
  cuda_version: string;
  devices: {
    name: string;
    memory_total: number;
    memory_used: number;
    utilization_gpu: number;
    utilization_memory: number;
    temperature_c: number;
  }[];
}

export interface SystemReply {
  version: string;
  llama_cpp: string;
  hostname: string;
  uptime_seconds: number;
  process_uptime_seconds: number;
  attestation: string;
  services: Record<string, { ok: boolean; detail: string; [k: string]: unknown }>;
  memory?: { total: number; used?: number; available?: number; free?: number; shmem_huge_pages?: string };
  load_average?: number[];
  state_dir?: string;
  disk?: { path: string; total: number; available: number; used: number };
  logs?: Record<string, string[] | string>;
  processes?: ProcessInfo[];
  read_at?: string;
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  name: string;
  state: string;
  threads: number;
  rss: number;
  cpu_seconds: number;
  started: number;
  command: string;
  modelseal: boolean;
}

export interface NetworkReply {
  checks: { name: string; url: string; reachable: boolean; milliseconds?: number; detail?: string }[];
  interfaces?: { name: string; up: boolean; loopback: boolean; addresses: unknown[] }[];
  listening?: { protocol: string; port: number; service: string }[];
  read_at?: string;
}

export interface EnvironmentReply {
  on_ec2: boolean;
  endpoint: string;
  note?: string;
  identity_document?: unknown;
  summary?: Record<string, string>;
  iam?: Record<string, unknown>;
}
