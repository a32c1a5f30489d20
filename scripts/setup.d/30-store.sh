# shellcheck shell=bash
# npm test dependencies of the aws/store/hub tests: s3rver (a third-party S3
# server), @aws-sdk/client-s3 and @smithy/signature-v4 (the official SDK pieces
# our S3 objects and SigV4 signatures are checked against). Pinned by
# tests/js/aws/package-lock.json; installed only when the lock changed.
ensure_npm "$ROOT/tests/js/aws"
