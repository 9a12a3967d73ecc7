#!/usr/bin/env bash
# Package the API for Lambda: vendor the shared rdc_common package (Chalice ships only app.py,
# chalicelib/, requirements.txt and vendor/), then run `chalice package` with any arguments given.
#   api_chalice/package.sh --stage prod out/        # SAM template + deployment zip in out/
#   api_chalice/package.sh --vendor-only            # just refresh vendor/ (e.g. before `cdk synth`)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rm -rf "$here/vendor/rdc_common"
mkdir -p "$here/vendor"
cp -R "$here/../rdc_common" "$here/vendor/rdc_common"
find "$here/vendor/rdc_common" -name '__pycache__' -type d -prune -exec rm -rf {} +
if [[ "${1:-}" == "--vendor-only" ]]; then
  exit 0
fi
cd "$here"
exec chalice package "$@"
