# npm packages for the key service's compatibility tests (official AWS SDK v3).
ensure_npm "$ROOT/tests/js/kms"
