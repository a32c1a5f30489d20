// `modelseal kms policy check` decides exactly as the running key service does,
// and a request the official AWS SDK for JavaScript v3 signed cannot be reused for
// anything else.
//
//   MODELSEAL=/path/to/modelseal node --test
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import {
  KMSClient, CreateKeyCommand, DescribeKeyCommand, GenerateDataKeyCommand, DecryptCommand,
  PutKeyPolicyCommand,
} from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';

const ms = process.env.MODELSEAL;
const state = mkdtempSync(join(tmpdir(), 'ms-kms-policy-'));
const region = 'eu-west-1';
const owner = { arn: 'arn:aws:iam::111122223333:user/owner', role: 'admin', akid: 'AKIDOWNERPOLICY', secret: 'owner-secret-1' };
const consumer = { arn: 'arn:aws:iam::444455556666:role/consumer', role: 'consumer', akid: 'AKIDCONSUMERPOL', secret: 'consumer-secret-1' };
let server;
let port;
const captured = [];

// A request handler that remembers every signed request before sending it.
class CapturingHandler {
  constructor() { this.inner = new NodeHttpHandler(); }
  handle(req, opts) {
    captured.push({ headers: { ...req.headers }, body: req.body, path: req.path });
    return this.inner.handle(req, opts);
  }
  updateHttpClientConfig() {}
  httpHandlerConfigs() { return {}; }
}

const client = (who) => new KMSClient({
  endpoint: `http://127.0.0.1:${port}`, region, maxAttempts: 1,
  credentials: { accessKeyId: who.akid, secretAccessKey: who.secret },
  requestHandler: new CapturingHandler(),
});

before(async () => {
  execFileSync('mkdir', ['-p', join(state, 'kms')]);
  const creds = {
    credentials: [owner, consumer].map((c) => ({
      access_key_id: c.akid, secret_access_key: c.secret, principal_arn: c.arn, role: c.role,
    })),
  };
  writeFileSync(join(state, 'kms', 'credentials.json'), JSON.stringify(creds), { mode: 0o600 });
  server = spawn(ms, ['kms', 'serve', '--state', state, '--listen', '127.0.0.1:0', '--trust-dev-root',
    '--service-region', region], { stdio: ['ignore', 'pipe', 'inherit'] });
  port = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    server.on('exit', (code) => reject(new Error(`key service exited with ${code}`)));
    // Bounded: a server that neither listens nor exits fails the suite, not CI.
    setTimeout(() => reject(new Error(`key service: no "listening" line in 120 s: ${out}`)), 120000)
      .unref();
  });
});

after(() => {
  server?.kill('SIGTERM');
  rmSync(state, { recursive: true, force: true });
});

const pcr = (c) => c.repeat(96);
const base = { Sid: 'OwnerManages', Effect: 'Allow', Principal: { AWS: owner.arn },
  Action: ['kms:GetKeyPolicy', 'kms:DescribeKey', 'kms:GenerateDataKey', 'kms:PutKeyPolicy'], Resource: '*' };
const allow = (who, cond) => ({ Effect: 'Allow', Principal: { AWS: who }, Action: 'kms:Decrypt', Resource: '*', ...(cond ? { Condition: cond } : {}) });
const deny = (cond) => ({ Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*', Condition: cond });
const named = (sid, s) => ({ Sid: sid, ...s });

// The table: policies (each also lets the owner manage the key) ...
const policies = {
  denySecretKey: [named('NoSecret', deny({ 'ForAnyValue:StringEquals': { 'kms:EncryptionContextKeys': 'secret' } })),
    named('Both', allow([owner.arn, consumer.arn]))],
  onlyModelKey: [named('OnlyModel', allow([owner.arn, consumer.arn], { 'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ['model'] } }))],
  plainOperatorOnKeys: [named('Both', allow([owner.arn, consumer.arn])),
    named('NoSecretPlain', deny({ StringEquals: { 'kms:EncryptionContextKeys': 'secret' } }))],
  attested: [named('Attested', allow(consumer.arn, { StringEqualsIgnoreCase: {
    'kms:RecipientAttestation:NitroTPMPCR4': pcr('a'), 'kms:RecipientAttestation:NitroTPMPCR7': pcr('b') } })),
  named('NeverBare', deny({ Null: { 'kms:RecipientAttestation:NitroTPMPCR4': 'true' } }))],
  contextValue: [named('Tiny', allow([owner.arn, consumer.arn], { StringEquals: { 'kms:EncryptionContext:model': 'tiny' } }))],
  accountDelegation: [named('Account', allow(['111122223333', '444455556666'], { StringEquals: { 'kms:EncryptionContext:model': 'tiny' } }))],
  noDevelopment: [named('Both', allow([owner.arn, consumer.arn])),
    named('NoDev', deny({ StringEquals: { 'modelseal:AttestationRoot': 'development' } }))],
};
// ... and requests: Decrypt with and without a Recipient, contexts of 0, 1 and several keys.
const contexts = [{}, { model: 'tiny' }, { model: 'tiny', other: 'y' }, { model: 'tiny', secret: '1' }];

test('policy check decides as the service does', async () => {
  const kmsOwner = client(owner);
  const clients = new Map([[owner, kmsOwner], [consumer, client(consumer)]]);
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(state, 'pub.der'), publicKey.export({ type: 'spki', format: 'der' }));
  execFileSync(ms, ['dev', 'attest-document', '--state', state, '--public-key', join(state, 'pub.der'),
    '--pcr', `4=${pcr('a')}`, '--pcr', `7=${pcr('b')}`, '-o', join(state, 'doc.cbor')]);
  const doc = readFileSync(join(state, 'doc.cbor'));
  const env = { ...process.env, AWS_ENDPOINT_URL_KMS: `http://127.0.0.1:${port}`, AWS_REGION: region,
    AWS_ACCESS_KEY_ID: owner.akid, AWS_SECRET_ACCESS_KEY: owner.secret };
  let compared = 0;
  const outcomes = new Set();
  for (const [name, statements] of Object.entries(policies)) {
    const policy = { Version: '2012-10-17', Statement: [base, ...statements] };
    const key = await kmsOwner.send(new CreateKeyCommand({ Policy: JSON.stringify(policy), Description: name }));
    const keyId = key.KeyMetadata.KeyId;
    for (const ctx of contexts) {
      const dk = await kmsOwner.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: ctx }));
      for (const who of [owner, consumer]) {
        for (const attested of [false, true]) {
          let service;
          try {
            await clients.get(who).send(new DecryptCommand({
              CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ctx,
              ...(attested ? { Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: doc } } : {}),
            }));
            service = 'ALLOW';
          } catch (e) {
            assert.equal(e.name, 'AccessDeniedException', `${name} ${JSON.stringify(ctx)}: ${e.message}`);
            service = 'DENY';
          }
          const audit = readFileSync(join(state, 'kms', 'audit.log'), 'utf8').trim().split('\n');
          const last = JSON.parse(audit[audit.length - 1]);
          assert.equal(last.operation, 'Decrypt');
          const args = ['kms', 'policy', 'check', keyId, '--principal', who.arn, '--role', who.role];
          for (const [k, v] of Object.entries(ctx)) args.push('--context', `${k}=${v}`);
          if (attested) args.push('--document', join(state, 'doc.cbor'), '--trust-dev-root', '--state', state);
          const r = spawnSync(ms, args, { env, encoding: 'utf8' });
          const check = r.stdout.split('\n')[0].split(' ')[0];
          const what = `${name} by ${who.role} ctx=${JSON.stringify(ctx)} attested=${attested}`;
          assert.ok(r.status === 0 || r.status === 3, `${what}: check failed: ${r.stderr}`);
          assert.equal(check, service, `${what}: check says ${check}, service says ${service}\n${r.stdout}`);
          assert.equal(r.status === 0, service === 'ALLOW', what);
          // The deciding statement, printed as the audit log records it.
          const line = r.stdout.split('\n').find((l) => l.startsWith('statement: '));
          assert.equal(line.slice('statement: '.length), last.statement ?? '(none)', `${what}\n${r.stdout}`);
          outcomes.add(`${name}:${service}`);
          compared += 1;
        }
      }
    }
  }
  assert.equal(compared, Object.keys(policies).length * contexts.length * 4);
  // The table exercises both outcomes of every policy (it could not pass by
  // always allowing or always denying).
  for (const name of Object.keys(policies)) {
    assert.ok(outcomes.has(`${name}:ALLOW`) && outcomes.has(`${name}:DENY`), `${name}: ${[...outcomes]}`);
  }
});

// Sends a captured request again, with changes, as raw HTTP.
function resend(c, { body = c.body, extraHeadersFirst = {} } = {}) {
  return new Promise((resolve, reject) => {
    const headers = {};
    for (const [k, v] of Object.entries(extraHeadersFirst)) headers[k] = v;
    for (const [k, v] of Object.entries(c.headers)) {
      const existing = Object.keys(headers).find((h) => h.toLowerCase() === k.toLowerCase());
      if (existing) headers[existing] = [headers[existing], v];
      else headers[k] = v;
    }
    headers['content-length'] = Buffer.byteLength(body);
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: c.path, headers }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: data ? JSON.parse(data) : {} }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('a captured SDK request cannot carry another body or operation', async () => {
  const kms = client(owner);
  const lastOf = (target) => captured.filter((c) => c.headers['x-amz-target'] === `TrentService.${target}`).at(-1);

  const created = await kms.send(new CreateKeyCommand({ Description: 'mine' }));
  const createKey = lastOf('CreateKey');
  assert.ok('x-amz-content-sha256' in createKey.headers, 'the SDK signs the payload hash');
  // The captured request itself replays (as on AWS, within the clock window) ...
  assert.equal((await resend(createKey)).status, 200);
  // ... but not with another body.
  const forged = await resend(createKey, { body: JSON.stringify({ Description: 'forged' }) });
  assert.equal(forged.status, 400);
  assert.equal(forged.body.__type, 'InvalidSignatureException');

  const keyId = created.KeyMetadata.KeyId;
  await kms.send(new PutKeyPolicyCommand({ KeyId: keyId, Policy: JSON.stringify({ Statement: [
    { Effect: 'Allow', Principal: { AWS: owner.arn }, Action: 'kms:*', Resource: '*' }] }) }));
  const put = lastOf('PutKeyPolicy');
  const open = JSON.stringify({ KeyId: keyId, Policy: JSON.stringify({ Statement: [
    { Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*' }] }) });
  assert.equal((await resend(put, { body: open })).body.__type, 'InvalidSignatureException');

  const dk = await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: { model: 'a' } }));
  await kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: { model: 'a' } }));
  const decrypt = lastOf('Decrypt');
  const other = await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: { model: 'b' } }));
  const swapped = await resend(decrypt, { body: JSON.stringify({
    CiphertextBlob: Buffer.from(other.CiphertextBlob).toString('base64'), EncryptionContext: { model: 'b' } }) });
  assert.equal(swapped.body.__type, 'InvalidSignatureException');
  assert.equal(swapped.body.Plaintext, undefined);

  // A second X-Amz-Target in front of a captured DescribeKey.
  await kms.send(new DescribeKeyCommand({ KeyId: keyId }));
  const describe = lastOf('DescribeKey');
  const twice = await resend(describe, { extraHeadersFirst: { 'X-Amz-Target': 'TrentService.ScheduleKeyDeletion' } });
  assert.equal(twice.status, 400);
  assert.equal(twice.body.__type, 'IncompleteSignatureException');
  const state_ = await kms.send(new DescribeKeyCommand({ KeyId: keyId }));
  assert.equal(state_.KeyMetadata.KeyState, 'Enabled');
  const descriptions = [];
  for (const c of captured.filter((x) => x.headers['x-amz-target'] === 'TrentService.CreateKey')) descriptions.push(c);
  assert.ok(descriptions.length > 0);
});
