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
rm -rf "$here/vendor/rdc_common/calendar_bundle"
# The trading calendars' schedules, written down for the years rdc_common.calendar.BUNDLE_YEARS names:
# the Lambda resolves continuous symbols (ES.c.0) and scheduled rolls from them without shipping
# pandas_market_calendars and pandas (about 160 MB unpacked, of the 250 MB a function may hold).
(cd "$here/.." && "${PYTHON:-python3}" -m rdc_common.calendar bundle "$here/vendor/rdc_common/calendar_bundle")
if [[ "${1:-}" == "--vendor-only" ]]; then
  exit 0
fi
cd "$here"
exec chalice package "$@"
