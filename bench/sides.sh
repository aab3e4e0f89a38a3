# Sourced by the bench scripts that run an older commit beside this checkout, one run at a time. Each side runs
# from its own tree (the cwd is first on sys.path; Ray's workers inherit it and PYTHONPATH).
# Needs REPO, W (a work dir) and OLD (the commit); sets PY and the Ray environment, checks OLD out in $W/old, and
# gives `side old|new ARGS...` (mer-search from that tree) and `sides_done` (removes the worktree).
PY=$REPO/.venv/bin/python
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
mkdir -p "$W"
git -C "$REPO" worktree remove --force "$W/old" 2>/dev/null; git -C "$REPO" worktree prune
git -C "$REPO" worktree add -q "$W/old" "$OLD"
side() { local v=$1; shift; if [ "$v" = old ]; then (cd "$W/old" && PYTHONPATH="$W/old" $PY -m mer_search.cli "$@"); \
         else (cd "$REPO" && $PY -m mer_search.cli "$@"); fi; }
sides_done() { git -C "$REPO" worktree remove --force "$W/old"; }
