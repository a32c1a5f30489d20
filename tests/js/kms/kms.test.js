// The official AWS SDK for JavaScript v3 drives every operation of modelseal's
// key service, including Decrypt with a Recipient attestation document, whose
// CiphertextForRecipient `openssl cms -decrypt` must open.
//
//   MODELSEAL=/path/to/modelseal node --test
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import {
  KMSClient, CreateKeyCommand, DescribeKeyCommand, ListKeysCommand, CreateAliasCommand,
  ListAliasesCommand, GenerateDataKeyCommand, EncryptCommand, DecryptCommand, GetKeyPolicyCommand,
  PutKeyPolicyCommand, ScheduleKeyDeletionCommand,
} from '@aws-sdk/client-kms';

const ms = process.env.MODELSEAL;
const state = mkdtempSync(join(tmpdir(), 'ms-kms-js-'));
let server;
let kms;
let owner;

before(async () => {
  server = spawn(ms, ['kms', 'serve', '--state', state, '--listen', '127.0.0.1:0', '--trust-dev-root',
    '--service-region', 'eu-west-1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
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
  const creds = JSON.parse(readFileSync(join(state, 'kms', 'credentials.json'), 'utf8')).credentials[0];
  owner = creds.principal_arn;
  kms = new KMSClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'eu-west-1',
    credentials: { accessKeyId: creds.access_key_id, secretAccessKey: creds.secret_access_key },
    maxAttempts: 1,
  });
});

after(() => {
  server?.kill('SIGTERM');
  rmSync(state, { recursive: true, force: true });
});

const pcr = (c) => c.repeat(96);

test('every operation through the AWS SDK', async () => {
  const created = await kms.send(new CreateKeyCommand({ Description: 'sdk key' }));
  const keyId = created.KeyMetadata.KeyId;
  assert.equal(created.KeyMetadata.KeyState, 'Enabled');
  assert.match(created.KeyMetadata.Arn, /^arn:aws:kms:eu-west-1:\d{12}:key\//);
  assert.ok(created.KeyMetadata.CreationDate instanceof Date);

  const described = await kms.send(new DescribeKeyCommand({ KeyId: keyId }));
  assert.equal(described.KeyMetadata.Description, 'sdk key');
  const listed = await kms.send(new ListKeysCommand({}));
  assert.ok(listed.Keys.some((k) => k.KeyId === keyId));

  await kms.send(new CreateAliasCommand({ AliasName: 'alias/sdk', TargetKeyId: keyId }));
  const aliases = await kms.send(new ListAliasesCommand({}));
  assert.ok(aliases.Aliases.some((a) => a.AliasName === 'alias/sdk' && a.TargetKeyId === keyId));

  const context = { model: 'tiny' };
  const enc = await kms.send(new EncryptCommand({ KeyId: 'alias/sdk', Plaintext: Buffer.from('hello'), EncryptionContext: context }));
  const dec = await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: context }));
  assert.equal(Buffer.from(dec.Plaintext).toString(), 'hello');
  await assert.rejects(kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { model: 'x' } })),
    (e) => e.name === 'InvalidCiphertextException');

  const policy = {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'Owner', Effect: 'Allow', Principal: { AWS: owner }, Action: 'kms:*', Resource: '*' },
      { Sid: 'OnlyAttestedDecrypt', Effect: 'Deny', Principal: { AWS: owner }, Action: 'kms:Decrypt', Resource: '*',
        Condition: { StringNotEqualsIgnoreCase: { 'kms:RecipientAttestation:NitroTPMPCR4': pcr('a') } } },
    ],
  };
  await kms.send(new PutKeyPolicyCommand({ KeyId: keyId, PolicyName: 'default', Policy: JSON.stringify(policy) }));
  const got = await kms.send(new GetKeyPolicyCommand({ KeyId: keyId, PolicyName: 'default' }));
  assert.deepEqual(JSON.parse(got.Policy), policy);
  await assert.rejects(kms.send(new PutKeyPolicyCommand({ KeyId: keyId, PolicyName: 'default', Policy: '{"Statement": 5}' })),
    (e) => e.name === 'MalformedPolicyDocumentException');

  const dk = await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }));
  assert.equal(dk.Plaintext.length, 32);

  // Without attestation the Deny applies.
  await assert.rejects(kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: context })),
    (e) => e.name === 'AccessDeniedException');

  // With a document for our ephemeral RSA key and the right PCR4: released to us only.
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(state, 'pub.der'), publicKey.export({ type: 'spki', format: 'der' }));
  writeFileSync(join(state, 'key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const issue = (pcr4) => {
    execFileSync(ms, ['dev', 'attest-document', '--state', state, '--public-key', join(state, 'pub.der'),
      '--pcr', `4=${pcr4}`, '-o', join(state, 'doc.cbor')]);
    return readFileSync(join(state, 'doc.cbor'));
  };
  const released = await kms.send(new DecryptCommand({
    CiphertextBlob: dk.CiphertextBlob, EncryptionContext: context,
    Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: issue(pcr('a')) },
  }));
  assert.equal(released.Plaintext, undefined);
  writeFileSync(join(state, 'env.der'), released.CiphertextForRecipient);
  const opened = execFileSync('openssl', ['cms', '-decrypt', '-inform', 'DER', '-in', join(state, 'env.der'),
    '-inkey', join(state, 'key.pem'), '-binary']);
  assert.deepEqual(Buffer.from(opened), Buffer.from(dk.Plaintext));

  // GenerateDataKey with a Recipient: ciphertext for storage, plaintext only for the enclave.
  const gen = await kms.send(new GenerateDataKeyCommand({
    KeyId: keyId, NumberOfBytes: 32,
    Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: issue(pcr('a')) },
  }));
  assert.equal(gen.Plaintext, undefined);
  assert.ok(gen.CiphertextForRecipient.length > 0);

  // A document whose PCR4 differs is denied.
  await assert.rejects(kms.send(new DecryptCommand({
    CiphertextBlob: dk.CiphertextBlob, EncryptionContext: context,
    Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: issue(pcr('b')) },
  })), (e) => e.name === 'AccessDeniedException');

  const del = await kms.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 }));
  assert.equal(del.KeyState, 'PendingDeletion');
  await assert.rejects(kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from('x') })),
    (e) => e.name === 'KMSInvalidStateException');

  // The audit log recorded decisions and no key material.
  const audit = readFileSync(join(state, 'kms', 'audit.log'), 'utf8');
  assert.ok(audit.includes('"decision":"deny"'));
  assert.ok(!audit.includes(Buffer.from(dk.Plaintext).toString('base64')));
});

test('unknown credentials and bad signatures get AWS errors', async () => {
  const stranger = new KMSClient({
    endpoint: await kms.config.endpoint().then((e) => `${e.protocol}//${e.hostname}:${e.port}`),
    region: 'eu-west-1', credentials: { accessKeyId: 'AKIDUNKNOWN', secretAccessKey: 'x' }, maxAttempts: 1,
  });
  await assert.rejects(stranger.send(new ListKeysCommand({})), (e) => e.name === 'UnrecognizedClientException');
  const creds = JSON.parse(readFileSync(join(state, 'kms', 'credentials.json'), 'utf8')).credentials[0];
  const forger = new KMSClient({
    endpoint: await kms.config.endpoint().then((e) => `${e.protocol}//${e.hostname}:${e.port}`),
    region: 'eu-west-1', credentials: { accessKeyId: creds.access_key_id, secretAccessKey: 'wrong' }, maxAttempts: 1,
  });
  await assert.rejects(forger.send(new ListKeysCommand({})), (e) => e.name === 'InvalidSignatureException');
});
