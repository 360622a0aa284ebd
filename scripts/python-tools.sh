#!/usr/bin/env bash
# Makes the Python environment the tests use to validate MedLedger's FHIR output with the
# fhir.resources package from PyPI: a virtual environment in .build/python-tools (made once).
# Prints the environment's python on its last line. Needs python3 with its venv module.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MEDLEDGER_PYTHON_TOOLS:-$root/.build/python-tools}"
if ! "$venv/bin/python" -c "import fhir.resources.R4B" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "fhir.resources==8.3.0"
fi
echo "$venv/bin/python"
