// AWS specifics for the modules that talk to AWS-compatible services (store for
// S3, kms for KMS), on top of the plain HTTP plumbing in net/: AWS error
// translation (errors.h), SigV4 signing (sigv4.h), the
// credentials chain, region and endpoint resolution (credentials.h), IMDSv2
// (imds.h), and a small XML reader for S3 documents (xml.h).
//
// Module promises: no exceptions escape; every failure is an Error whose reason
// is a stable token (for AWS responses, the AWS error code). Secret keys stay in
// SecretBuffer and never appear in errors or logs. Everything here is safe to use
// from several threads.
#pragma once

#include "aws/credentials.h"
#include "aws/errors.h"
#include "aws/imds.h"
#include "aws/sigv4.h"
#include "aws/xml.h"
