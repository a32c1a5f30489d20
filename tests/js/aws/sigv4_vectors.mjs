// Prints (JSON) a table of requests signed by the official @smithy/signature-v4,
// for tests/aws/sigv4_conformance_test.cpp to reproduce byte for byte.
import { SignatureV4 } from "@smithy/signature-v4";
import { HttpRequest } from "@smithy/protocol-http";
import { Sha256 } from "@aws-crypto/sha256-js";
import { Readable } from "node:stream";

const baseCreds = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
const tokenCreds = { ...baseCreds, sessionToken: "IQoJb3JpZ2luX2VjEXAMPLE//token+with/slashes==" };

const cases = [
  { name: "get-root-kms", service: "kms", region: "us-east-1", method: "GET", host: "kms.us-east-1.amazonaws.com", path: "/" },
  { name: "kms-json-post-token", service: "kms", region: "eu-west-1", method: "POST", host: "kms.eu-west-1.amazonaws.com", path: "/",
    headers: { "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.Decrypt" },
    body: '{"CiphertextBlob":"AQIDBA==","KeyId":"alias/model"}', creds: tokenCreds },
  { name: "s3-get-unicode-key", service: "s3", region: "us-west-2", method: "GET", host: "bucket.s3.us-west-2.amazonaws.com",
    path: "/caf%C3%A9/%E6%97%A5%E6%9C%AC%20model.gguf", uriEscapePath: false },
  { name: "s3-put-body", service: "s3", region: "us-east-1", method: "PUT", host: "127.0.0.1:9000",
    path: "/bucket/a%20b%2Bc/%21%27%28%29%2A", uriEscapePath: false, body: "hello, sealed world\n",
    headers: { "Content-Type": "application/octet-stream", "x-amz-meta-Owner": "  party   A  " } },
  { name: "s3-list-query", service: "s3", region: "us-east-1", method: "GET", host: "localhost:4568",
    path: "/models", uriEscapePath: false,
    query: { "list-type": "2", prefix: "models/é x+y", "continuation-token": "1/2+3=4", "max-keys": "1000" } },
  { name: "s3-multipart-create-empty-value", service: "s3", region: "ap-south-1", method: "POST", host: "b.s3.ap-south-1.amazonaws.com",
    path: "/big.bin", uriEscapePath: false, query: { uploads: "" }, creds: tokenCreds },
  { name: "s3-streaming-unsigned", service: "s3", region: "us-east-1", method: "PUT", host: "b.s3.amazonaws.com",
    path: "/stream.bin", uriEscapePath: false, stream: true, headers: { "Content-Length": "1048576" } },
  { name: "s3-streaming-chunked-header", service: "s3", region: "us-east-1", method: "PUT", host: "b.s3.amazonaws.com",
    path: "/chunked.bin", uriEscapePath: false,
    headers: { "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "x-amz-decoded-content-length": "66560", "Content-Encoding": "aws-chunked" } },
  { name: "unsignable-headers", service: "s3", region: "us-east-1", method: "HEAD", host: "b.s3.amazonaws.com",
    path: "/k", uriEscapePath: false,
    headers: { "User-Agent": "modelseal/0.1", "Range": "bytes=0-99", "X-Amzn-Trace-Id": "Root=1", "Connection": "keep-alive", "Expect": "100-continue" } },
  { name: "double-encoded-normalised-path", service: "execute-api", region: "us-east-1", method: "GET", host: "api.example.com",
    path: "/foo/../bar/./baz%20qux//é/", query: { "ünïcode key": "välue&=" } },
  { name: "delete-with-token-no-checksum", service: "kms", region: "us-gov-west-1", method: "DELETE", host: "kms.example",
    path: "/a/b", applyChecksum: false, creds: tokenCreds, time: Date.UTC(2024, 1, 29, 23, 59, 59) },
  { name: "presign-get-s3", mode: "presign", service: "s3", region: "us-east-1", method: "GET", host: "examplebucket.s3.amazonaws.com",
    path: "/test.txt", uriEscapePath: false, expires: 86400, time: Date.UTC(2013, 4, 24, 0, 0, 0) },
  { name: "presign-token-unicode", mode: "presign", service: "s3", region: "eu-central-1", method: "PUT", host: "127.0.0.1:4568",
    path: "/bucket/%C3%BCber/m%C3%B6del.gguf", uriEscapePath: false, expires: 900, creds: tokenCreds,
    headers: { "x-amz-meta-source": "hf://org/repo", "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Type": "application/octet-stream" },
    query: { "partNumber": "3", "uploadId": "abc/def+ghi" } },
  { name: "presign-body-hash", mode: "presign", service: "kms", region: "us-east-1", method: "POST", host: "kms.us-east-1.amazonaws.com",
    path: "/", body: "{}", expires: 60 },
];

const out = [];
for (const c of cases) {
  const creds = c.creds ?? baseCreds;
  const signer = new SignatureV4({
    credentials: creds, region: c.region, service: c.service, sha256: Sha256,
    uriEscapePath: c.uriEscapePath ?? true, applyChecksum: c.applyChecksum ?? true,
  });
  const headers = { host: c.host, ...(c.headers ?? {}) };
  const body = c.stream ? Readable.from([Buffer.from("x")]) : c.body;
  const req = new HttpRequest({ method: c.method, protocol: "https:", hostname: c.host, path: c.path,
                                query: { ...(c.query ?? {}) }, headers, body });
  const time = c.time ?? Date.UTC(2026, 10, 25, 20, 41, 7);
  let signed;
  if ((c.mode ?? "sign") === "presign") {
    signed = await signer.presign(req, { signingDate: new Date(time), expiresIn: c.expires });
  } else {
    signed = await signer.sign(req, { signingDate: new Date(time) });
  }
  out.push({
    name: c.name, mode: c.mode ?? "sign", service: c.service, region: c.region, method: c.method,
    path: c.path, query: Object.entries(c.query ?? {}), headers: Object.entries(headers),
    body: c.body ?? "", stream: !!c.stream, time_s: Math.floor(time / 1000),
    double_encode: c.uriEscapePath ?? true, add_checksum: c.applyChecksum ?? true,
    access_key_id: creds.accessKeyId, secret: creds.secretAccessKey, token: creds.sessionToken ?? "",
    expires: c.expires ?? 0,
    expected_headers: Object.entries(signed.headers), expected_query: Object.entries(signed.query ?? {}),
  });
}
process.stdout.write(JSON.stringify(out, null, 1) + "\n");
