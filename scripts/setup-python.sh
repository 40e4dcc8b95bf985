#!/usr/bin/env bash
# Creates .venv with the third-party clients that referee our simulators' fidelity:
# the PyPI `netsuite` client and the official Global Payments SDK (`globalpayments-api`).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "netsuite==0.12.0" "globalpayments-api==2.0.8" "oauthlib>=3.2"
"$venv/bin/python" -c "import netsuite, globalpayments, oauthlib; print('python clients ready:', '$venv')"
