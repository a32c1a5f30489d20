// Reads or writes one object with the official @aws-sdk/client-s3, for
// tests/store/store_s3_test.cpp's interoperability checks.
// Usage: node s3_interop.mjs get|put|list|multipart ENDPOINT BUCKET KEY FILE
//   get: object -> FILE;  put: FILE -> object (PutObject);
//   multipart: FILE -> object with CreateMultipartUpload/UploadPart(5 MiB)/Complete;
//   list: prints the keys under KEY (a prefix) as JSON.
import {
  S3Client, GetObjectCommand, PutObjectCommand, ListObjectsV2Command,
  CreateMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand,
} from "@aws-sdk/client-s3";
import { readFileSync, writeFileSync } from "node:fs";

const [op, endpoint, Bucket, Key, file] = process.argv.slice(2);
const s3 = new S3Client({
  endpoint, region: "us-east-1", forcePathStyle: true,
  credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED",
});

if (op === "get") {
  const r = await s3.send(new GetObjectCommand({ Bucket, Key }));
  writeFileSync(file, Buffer.from(await r.Body.transformToByteArray()));
} else if (op === "put") {
  await s3.send(new PutObjectCommand({ Bucket, Key, Body: readFileSync(file) }));
} else if (op === "multipart") {
  const body = readFileSync(file);
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
  const Parts = [];
  const size = 5 * 1024 * 1024;
  for (let i = 0, n = 1; i < body.length; i += size, n++) {
    const r = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: n,
                                                    Body: body.subarray(i, i + size) }));
    Parts.push({ PartNumber: n, ETag: r.ETag });
  }
  await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId,
                                                     MultipartUpload: { Parts } }));
} else if (op === "list") {
  const keys = [];
  let ContinuationToken;
  for (let i = 0; i < 100; i++) {
    const r = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: Key, ContinuationToken }));
    for (const o of r.Contents ?? []) keys.push(o.Key);
    if (!r.IsTruncated) break;
    ContinuationToken = r.NextContinuationToken;
  }
  process.stdout.write(JSON.stringify(keys) + "\n");
} else {
  console.error("unknown op " + op);
  process.exit(2);
}
