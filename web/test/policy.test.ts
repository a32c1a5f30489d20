import { describe, expect, it } from 'vitest';
import {
  buildStatement, draftFromStatement, emptyDraft, lintPolicy, parsePolicy, previewPcrs,
  removeStatement, upsertStatement, validateDraft, type Policy,
} from '../src/lib/policy';

const OWNER = 'arn:aws:iam::111122223333:role/modelseal-owner';
const CONSUMER = 'arn:aws:iam::111122223333:role/modelseal-consumer';
const PCR4 = 'a'.repeat(96);
const PCR7 = 'B'.repeat(96);

// The default model key policy that `modelseal up` creates.
const base: Policy = {
  Version: '2012-10-17',
  Id: 'modelseal-model-key',
  Statement: [
    { Sid: 'OwnerAdministers', Effect: 'Allow', Principal: { AWS: OWNER }, Action: 'kms:*', Resource: '*' },
    { Sid: 'ConsumerReadsKey', Effect: 'Allow', Principal: { AWS: CONSUMER }, Action: ['kms:DescribeKey', 'kms:GetKeyPolicy'], Resource: '*' },
    {
      Sid: 'DenyDecryptWithoutAttestation', Effect: 'Deny', Principal: { AWS: CONSUMER }, Action: 'kms:Decrypt', Resource: '*',
      Condition: { Null: { 'kms:RecipientAttestation:NitroTPMPCR4': 'true' } },
    },
  ],
};

function draft() {
  return { ...emptyDraft(CONSUMER), pcrs: [{ index: 7, value: PCR7 }, { index: 4, value: PCR4 }] };
}

describe('buildStatement', () => {
  it('produces an attested Allow Decrypt with one condition per PCR', () => {
    const s = buildStatement(draft());
    expect(s).toEqual({
      Sid: 'AttestedDecrypt',
      Effect: 'Allow',
      Principal: { AWS: CONSUMER },
      Action: 'kms:Decrypt',
      Resource: '*',
      Condition: {
        StringEqualsIgnoreCase: {
          'kms:RecipientAttestation:NitroTPMPCR4': PCR4,
          'kms:RecipientAttestation:NitroTPMPCR7': PCR7.toLowerCase(),
        },
      },
    });
    expect(Object.keys(s.Condition!.StringEqualsIgnoreCase)).toEqual([
      'kms:RecipientAttestation:NitroTPMPCR4', 'kms:RecipientAttestation:NitroTPMPCR7',
    ]);
  });

  it('round-trips through draftFromStatement', () => {
    const s = buildStatement({ ...draft(), actions: ['kms:Decrypt', 'kms:DescribeKey'] });
    const d = draftFromStatement(s);
    expect(d.principal).toBe(CONSUMER);
    expect(d.actions).toEqual(['kms:Decrypt', 'kms:DescribeKey']);
    expect(d.pcrs.map((p) => p.index)).toEqual([4, 7]);
    expect(buildStatement(d)).toEqual(s);
  });

  it('writes no Condition when there is no PCR', () => {
    expect(buildStatement(emptyDraft(CONSUMER)).Condition).toBeUndefined();
  });
});

describe('upsertStatement', () => {
  it('adds the statement and keeps every other statement untouched', () => {
    const before = structuredClone(base);
    const out = upsertStatement(base, buildStatement(draft()));
    expect(base).toEqual(before); // input not mutated
    expect(out.Statement).toHaveLength(4);
    expect(out.Statement.slice(0, 3)).toEqual(base.Statement);
    expect(out.Version).toBe('2012-10-17');
    expect(out.Id).toBe('modelseal-model-key');
    expect(out.Statement[3].Sid).toBe('AttestedDecrypt');
  });

  it('replaces a statement with the same Sid in place', () => {
    const once = upsertStatement(base, buildStatement(draft()));
    const withOther = upsertStatement(once, { Sid: 'Later', Effect: 'Allow', Principal: '*', Action: 'kms:DescribeKey', Resource: '*' });
    const again = upsertStatement(withOther, buildStatement({ ...draft(), pcrs: [{ index: 4, value: 'c'.repeat(96) }] }));
    expect(again.Statement.map((s) => s.Sid)).toEqual(['OwnerAdministers', 'ConsumerReadsKey', 'DenyDecryptWithoutAttestation', 'AttestedDecrypt', 'Later']);
    expect(again.Statement[3].Condition).toEqual({ StringEqualsIgnoreCase: { 'kms:RecipientAttestation:NitroTPMPCR4': 'c'.repeat(96) } });
    expect(again.Statement[4]).toEqual(withOther.Statement[4]);
  });

  it('keeps unknown fields of other statements', () => {
    const odd: Policy = { Statement: [{ Sid: 'X', Effect: 'Deny', Principal: '*', NotAction: ['kms:Encrypt'], Resource: '*', Extra: { a: 1 } }] };
    const out = upsertStatement(odd, buildStatement(draft()));
    expect(out.Statement[0]).toEqual(odd.Statement[0]);
  });

  it('produces JSON that parses back as a valid policy', () => {
    const out = upsertStatement(base, buildStatement(draft()));
    const parsed = parsePolicy(JSON.stringify(out));
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect(parsed.policy).toEqual(out);
  });

  it('removeStatement drops only the one named', () => {
    const out = removeStatement(base, 1);
    expect(out.Statement.map((s) => s.Sid)).toEqual(['OwnerAdministers', 'DenyDecryptWithoutAttestation']);
  });
});

describe('validateDraft', () => {
  it('accepts a complete draft', () => {
    expect(validateDraft(draft())).toEqual([]);
  });
  it('rejects bad PCR values, duplicate PCRs and a missing principal', () => {
    const errs = validateDraft({ ...emptyDraft(''), pcrs: [{ index: 4, value: 'abc' }, { index: 4, value: PCR4 }, { index: 24, value: PCR4 }] });
    expect(errs.join('\n')).toMatch(/Principal ARN is required/);
    expect(errs.join('\n')).toMatch(/PCR 4: the value must be 96 hex digits/);
    expect(errs.join('\n')).toMatch(/PCR 4 appears twice/);
    expect(errs.join('\n')).toMatch(/PCR 24: the index must be 0 to 23/);
  });
  it('rejects a principal that is not an ARN', () => {
    expect(validateDraft({ ...draft(), principal: 'bob' })[0]).toMatch(/IAM ARN/);
  });
});

describe('parsePolicy', () => {
  it('explains what is wrong', () => {
    expect(parsePolicy('{').ok).toBe(false);
    expect(parsePolicy('[]')).toEqual({ ok: false, error: 'A policy is a JSON object.' });
    expect(parsePolicy('{"Version":"2012-10-17"}')).toEqual({ ok: false, error: 'The policy has no "Statement".' });
    const r = parsePolicy('{"Statement":[{"Sid":"A","Effect":"Maybe","Principal":"*","Action":"kms:*"}]}');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/Effect must be/);
  });
  it('accepts a single statement object', () => {
    const r = parsePolicy('{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt"}}');
    expect(r.ok && r.policy.Statement.length).toBe(1);
  });
});

describe('lintPolicy', () => {
  it('is quiet about the default policy plus an attested statement on PCR4 and PCR7', () => {
    expect(lintPolicy(upsertStatement(base, buildStatement(draft())), CONSUMER)).toEqual([]);
  });
  it('flags an attested statement without a boot PCR, PCR15, zero PCRs and unattested decrypt', () => {
    const p = upsertStatement(base, buildStatement({ ...draft(), pcrs: [{ index: 12, value: '0'.repeat(96) }, { index: 15, value: PCR4 }] }));
    const plain = upsertStatement(p, buildStatement({ ...emptyDraft(CONSUMER), sid: 'Plain' }));
    const msgs = lintPolicy(plain, CONSUMER).map((l) => `${l.sid}: ${l.message}`);
    expect(msgs.some((m) => /AttestedDecrypt: Pins no boot PCR/.test(m))).toBe(true);
    expect(msgs.some((m) => /AttestedDecrypt: Pins PCR15/.test(m))).toBe(true);
    expect(msgs.some((m) => /PCR12 is all zeros/.test(m))).toBe(true);
    expect(msgs.some((m) => /Plain: Allows Decrypt without any PCR condition/.test(m))).toBe(true);
  });
  it('flags duplicate Sids and oversized policies', () => {
    const dup: Policy = { Statement: [base.Statement[0], base.Statement[0]] };
    expect(lintPolicy(dup).some((l) => /used by 2 statements/.test(l.message))).toBe(true);
    const big: Policy = { Statement: [{ ...base.Statement[0], Note: 'x'.repeat(33 * 1024) }] };
    expect(lintPolicy(big).some((l) => /32 KiB/.test(l.message))).toBe(true);
  });
});

describe('previewPcrs', () => {
  it('matches PCR by PCR, ignoring case', () => {
    const rows = previewPcrs(draft(), { '4': PCR4, '7': 'f'.repeat(96) });
    expect(rows).toEqual([
      { index: 7, wanted: PCR7, machine: 'f'.repeat(96), matched: false },
      { index: 4, wanted: PCR4, machine: PCR4, matched: true },
    ]);
    expect(previewPcrs({ ...draft(), pcrs: [{ index: 7, value: 'b'.repeat(96) }] }, { '7': PCR7 })[0].matched).toBe(true);
  });
});
