// The key-policy statement builder: statements that release the model key to
// attested machines (PCR conditions), added to a policy without touching the
// statements it does not name. Also a local lint of a policy.

export const PCR_KEY_PREFIX = 'kms:RecipientAttestation:NitroTPMPCR';
export const PCR_OPERATOR = 'StringEqualsIgnoreCase';
export const MAX_POLICY_BYTES = 32 * 1024;
export const KMS_ACTIONS = ['kms:Decrypt', 'kms:GenerateDataKey', 'kms:DescribeKey', 'kms:GetKeyPolicy', 'kms:*'] as const;

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal: Json;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
  [k: string]: unknown;
}

export interface Policy {
  Version?: string;
  Id?: string;
  Statement: Statement[];
  [k: string]: unknown;
}

export interface PcrCondition {
  index: number;
  value: string; // 96 hex digits (SHA-384)
}

export interface StatementDraft {
  sid: string;
  principal: string;
  effect: 'Allow' | 'Deny';
  actions: string[];
  pcrs: PcrCondition[];
}

export function emptyDraft(principal = ''): StatementDraft {
  return { sid: 'AttestedDecrypt', principal, effect: 'Allow', actions: ['kms:Decrypt'], pcrs: [] };
}

const HEX96 = /^[0-9a-fA-F]{96}$/;

// Problems that make a draft unusable; empty when it can be added.
export function validateDraft(d: StatementDraft): string[] {
  const errs: string[] = [];
  if (!/^[A-Za-z0-9]*$/.test(d.sid)) errs.push('Sid: letters and digits only.');
  if (!d.principal.trim()) errs.push('Principal ARN is required (e.g. arn:aws:iam::111122223333:role/modelseal-consumer).');
  else if (d.principal.trim() !== '*' && !/^arn:aws[a-z-]*:(iam|sts)::\d{12}:\S+$/.test(d.principal.trim()) && !/^\d{12}$/.test(d.principal.trim()))
    errs.push('Principal must be an IAM ARN (arn:aws:iam::ACCOUNT:role/NAME), an account id or *.');
  if (d.actions.length === 0) errs.push('Choose at least one action.');
  const seen = new Set<number>();
  for (const p of d.pcrs) {
    if (!Number.isInteger(p.index) || p.index < 0 || p.index > 23) errs.push(`PCR ${p.index}: the index must be 0 to 23.`);
    if (seen.has(p.index)) errs.push(`PCR ${p.index} appears twice.`);
    seen.add(p.index);
    if (!HEX96.test(p.value)) errs.push(`PCR ${p.index}: the value must be 96 hex digits (SHA-384).`);
  }
  return errs;
}

// The statement a draft describes.
export function buildStatement(d: StatementDraft): Statement {
  const s: Statement = {
    Effect: d.effect,
    Principal: d.principal.trim() === '*' ? '*' : { AWS: d.principal.trim() },
    Action: d.actions.length === 1 ? d.actions[0] : [...d.actions],
    Resource: '*',
  };
  if (d.sid) s.Sid = d.sid;
  if (d.pcrs.length) {
    const cond: Record<string, string> = {};
    for (const p of [...d.pcrs].sort((a, b) => a.index - b.index)) cond[`${PCR_KEY_PREFIX}${p.index}`] = p.value.toLowerCase();
    s.Condition = { [PCR_OPERATOR]: cond };
  }
  // Key order as AWS writes it.
  const ordered: Statement = { ...(s.Sid ? { Sid: s.Sid } : {}), Effect: s.Effect, Principal: s.Principal, Action: s.Action, Resource: s.Resource } as Statement;
  if (s.Condition) ordered.Condition = s.Condition;
  return ordered;
}

// The PCR conditions of a statement (any operator whose key is a NitroTPM PCR).
export function statementPcrs(s: Statement): PcrCondition[] {
  const out: PcrCondition[] = [];
  for (const [op, block] of Object.entries(s.Condition ?? {})) {
    // "Null" tests whether a key is present, not its value.
    if (op === 'Null' || !block || typeof block !== 'object') continue;
    for (const [k, v] of Object.entries(block)) {
      if (!k.toLowerCase().startsWith(PCR_KEY_PREFIX.toLowerCase())) continue;
      const index = Number(k.slice(PCR_KEY_PREFIX.length));
      const value = Array.isArray(v) ? String(v[0] ?? '') : String(v);
      out.push({ index, value });
    }
  }
  return out.sort((a, b) => a.index - b.index);
}

function asList(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export function statementPrincipals(s: Statement): string[] {
  const p = s.Principal;
  if (p === '*') return ['*'];
  if (p && typeof p === 'object' && !Array.isArray(p)) {
    const aws = (p as Record<string, Json>).AWS;
    if (typeof aws === 'string') return [aws];
    if (Array.isArray(aws)) return aws.map(String);
  }
  return [];
}

// A draft from an existing statement, to edit it.
export function draftFromStatement(s: Statement): StatementDraft {
  return {
    sid: s.Sid ?? '',
    principal: statementPrincipals(s)[0] ?? '',
    effect: s.Effect,
    actions: asList(s.Action),
    pcrs: statementPcrs(s),
  };
}

// The policy with `statement` added: a statement with the same Sid is replaced
// in place, every other statement (and top-level field) is kept as it was.
export function upsertStatement(policy: Policy, statement: Statement): Policy {
  const copy = structuredClone(policy) as Policy;
  const list = Array.isArray(copy.Statement) ? copy.Statement : copy.Statement ? [copy.Statement as unknown as Statement] : [];
  const at = statement.Sid ? list.findIndex((s) => s.Sid === statement.Sid) : -1;
  if (at >= 0) list[at] = structuredClone(statement);
  else list.push(structuredClone(statement));
  copy.Statement = list;
  if (!copy.Version) copy.Version = '2012-10-17';
  return copy;
}

export function removeStatement(policy: Policy, index: number): Policy {
  const copy = structuredClone(policy) as Policy;
  copy.Statement = copy.Statement.filter((_, i) => i !== index);
  return copy;
}

export type ParseResult = { ok: true; policy: Policy } | { ok: false; error: string };

export function parsePolicy(text: string): ParseResult {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `Not valid JSON: ${(e as Error).message}` };
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return { ok: false, error: 'A policy is a JSON object.' };
  const p = v as Policy;
  if (p.Statement === undefined) return { ok: false, error: 'The policy has no "Statement".' };
  if (!Array.isArray(p.Statement)) p.Statement = [p.Statement as unknown as Statement];
  for (const [i, s] of p.Statement.entries()) {
    if (!s || typeof s !== 'object') return { ok: false, error: `Statement ${i + 1} is not an object.` };
    if (s.Effect !== 'Allow' && s.Effect !== 'Deny') return { ok: false, error: `Statement ${i + 1} (${s.Sid ?? 'no Sid'}): Effect must be "Allow" or "Deny".` };
    if (s.Principal === undefined) return { ok: false, error: `Statement ${i + 1} (${s.Sid ?? 'no Sid'}) has no Principal.` };
    if (s.Action === undefined && s.NotAction === undefined) return { ok: false, error: `Statement ${i + 1} (${s.Sid ?? 'no Sid'}) has no Action.` };
  }
  return { ok: true, policy: p };
}

export function formatPolicy(p: Policy): string {
  return JSON.stringify(p, null, 2);
}

function grantsDecrypt(s: Statement): boolean {
  return asList(s.Action).some((a) => a === '*' || a === 'kms:*' || a.toLowerCase() === 'kms:decrypt');
}

export interface Lint {
  level: 'warning' | 'error';
  sid: string;
  message: string;
}

// Warnings about a policy. `consumer` is the principal that loads models.
export function lintPolicy(policy: Policy, consumer?: string): Lint[] {
  const out: Lint[] = [];
  const text = JSON.stringify(policy);
  if (new TextEncoder().encode(text).length > MAX_POLICY_BYTES) out.push({ level: 'error', sid: '', message: 'The policy is larger than 32 KiB, the KMS limit.' });
  const sids = new Map<string, number>();
  policy.Statement.forEach((s, i) => {
    const name = s.Sid || `statement ${i + 1}`;
    if (s.Sid) sids.set(s.Sid, (sids.get(s.Sid) ?? 0) + 1);
    const pcrs = statementPcrs(s);
    const principals = statementPrincipals(s);
    if (s.Effect === 'Allow' && principals.includes('*') && !s.Condition)
      out.push({ level: 'warning', sid: name, message: 'Allows every principal with no condition.' });
    if (s.Effect === 'Allow' && grantsDecrypt(s) && pcrs.length === 0 && (!consumer || principals.includes(consumer) || principals.includes('*'))) {
      const admin = asList(s.Action).includes('kms:*');
      if (!admin) out.push({ level: 'warning', sid: name, message: 'Allows Decrypt without any PCR condition: the key is released without attestation.' });
    }
    if (pcrs.length && !pcrs.some((p) => p.index <= 7))
      out.push({ level: 'error', sid: name, message: 'Pins no boot PCR (0–7): PCRs 8–15 can be set to any value by the operating system. Add PCR4 and PCR7.' });
    if (pcrs.some((p) => p.index === 15))
      out.push({ level: 'warning', sid: name, message: 'Pins PCR15, which changes with every model loaded: the release will stop working after the next load.' });
    for (const p of pcrs) {
      if (!HEX96.test(p.value)) out.push({ level: 'error', sid: name, message: `PCR${p.index}: the value is not 96 hex digits (SHA-384).` });
      else if (/^0+$/.test(p.value)) out.push({ level: 'warning', sid: name, message: `PCR${p.index} is all zeros: nothing was measured there, so it proves nothing.` });
    }
    for (const op of Object.keys(s.Condition ?? {})) {
      if (pcrs.length && /^ForAnyValue:|^StringLike|^StringNotEquals/.test(op))
        out.push({ level: 'warning', sid: name, message: `Condition operator ${op} is unusual for PCR values; use ${PCR_OPERATOR}.` });
    }
  });
  for (const [sid, n] of sids) if (n > 1) out.push({ level: 'error', sid, message: `Sid "${sid}" is used by ${n} statements.` });
  return out;
}

// Does a draft's PCR condition match this machine? One row per PCR.
export function previewPcrs(d: StatementDraft, machine: Record<string, string>): { index: number; wanted: string; machine: string; matched: boolean }[] {
  return d.pcrs.map((p) => {
    const m = machine[String(p.index)] ?? '';
    return { index: p.index, wanted: p.value, machine: m, matched: m !== '' && m.toLowerCase() === p.value.toLowerCase() };
  });
}
