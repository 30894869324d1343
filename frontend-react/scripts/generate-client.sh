#!/usr/bin/env bash
# Regenerate openapi.json and src/client/schema.d.ts from the API's OpenAPI schema.
# With the API package present, the schema is exported from the code first (no server needed);
# otherwise the committed openapi.json is used as is. OUT_DIR writes both files there instead
# (scripts/check-client.sh compares them with the committed ones).
set -euo pipefail
cd "$(dirname "$0")/.."
schema="$(realpath -m "${OUT_DIR:-.}/openapi.json")"
types="$(realpath -m "${OUT_DIR:-src/client}/schema.d.ts")"
if [[ "${SKIP_SCHEMA_EXPORT:-0}" != "1" ]] && [[ -f ../api-service/src/mushroom_api/openapi_export.py ]]; then
  (cd .. && uv run python -m mushroom_api.openapi_export "$schema")
elif [[ "$schema" != "$PWD/openapi.json" ]]; then
  cp openapi.json "$schema"
fi
npx openapi-typescript "$schema" --output "$types" --root-types --root-types-no-schema-prefix
