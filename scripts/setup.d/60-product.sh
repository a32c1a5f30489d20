# The end-to-end tests of `modelseal up` use the official ollama and openai npm
# clients (tests/js/product).
# shellcheck shell=bash
ensure_npm "$ROOT/tests/js/product"
