#!/usr/bin/env bash
# `mer-search demo` after a normal (non-editable) install, run from a directory outside the repository:
# build the wheel from the files git ships, install it with no dependencies into a fresh venv that reuses
# .venv's packages (nothing downloaded), then time the demo in /tmp/wheel_demo/elsewhere.
#     bash bench/wheel_demo.sh
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
W=/tmp/wheel_demo
rm -rf "$W" && mkdir -p "$W/src" "$W/elsewhere"
(cd "$REPO" && git ls-files --cached --others --exclude-standard | tar -cf - -T -) | tar -xf - -C "$W/src"
"$REPO/.venv/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$W/dist" "$W/src"
"$REPO/.venv/bin/python" -m venv "$W/venv"
site=$("$W/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
"$REPO/.venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$site/reuse_repo_env.pth"
"$W/venv/bin/python" -m pip install -q --no-deps --no-index "$W"/dist/mer_search-*.whl
cd "$W/elsewhere"
echo "mer_search from: $("$W/venv/bin/python" -c 'import mer_search; print(mer_search.__file__)')"
start=$(date +%s)
RAY_AUTH_MODE=disabled "$W/venv/bin/mer-search" demo --out demo_out > demo.log 2>&1
echo "demo exit 0 in $(( $(date +%s) - start )) s (cwd $PWD)"
sed -n '/^Budget/,/^summary/p' demo.log
