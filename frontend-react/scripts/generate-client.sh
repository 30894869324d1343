#!/usr/bin/env bash
# Regenerate src/client/schema.d.ts from the API's OpenAPI schema.
# With the API package present, the schema is exported from the code first (no server needed);
# otherwise the committed openapi.json is used as is.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${SKIP_SCHEMA_EXPORT:-0}" != "1" ]] && [[ -f ../api-service/src/mushroom_api/openapi_export.py ]]; then
  (cd .. && uv run python -m mushroom_api.openapi_export frontend-react/openapi.json)
fi
npx openapi-typescript openapi.json --output src/client/schema.d.ts --root-types --root-types-no-schema-prefix
