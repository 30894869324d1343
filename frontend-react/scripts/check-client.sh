#!/usr/bin/env bash
# Fail when the committed OpenAPI schema or generated TypeScript types differ from what the
# API's code generates now (`make check-client`, part of `make test` and so of CI).
set -euo pipefail
cd "$(dirname "$0")/.."
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
OUT_DIR="$fresh" bash scripts/generate-client.sh >/dev/null 2>"$fresh/generate.log" || {
  cat "$fresh/generate.log" >&2
  exit 1
}
stale=0
for committed in openapi.json src/client/schema.d.ts; do
  generated="$fresh/$(basename "$committed")"
  if ! cmp -s "$committed" "$generated"; then
    echo "frontend-react/$committed differs from what the API's code generates:" >&2
    diff -u "$committed" "$generated" | head -n 40 >&2 || true
    stale=1
  fi
done
if [[ "$stale" == 1 ]]; then
  echo "fix: (cd frontend-react && npm run generate-client), then commit openapi.json and src/client/schema.d.ts" >&2
  exit 1
fi
echo "frontend-react/openapi.json and src/client/schema.d.ts match the API"
