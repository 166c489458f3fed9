#!/usr/bin/env bash
# Print a Python >= 3.12 interpreter: on PATH first, then pyenv's versions; otherwise say what to install.
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }
for c in python3.13 python3.12 python3 python; do
  p=$(command -v "$c" 2>/dev/null) && ok "$p" && { echo "$p"; exit 0; }
done
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for p in $(ls -d "$root"/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -rV); do
  ok "$p" && { echo "$p"; exit 0; }
done
echo "palsy needs Python >= 3.12 (PyMC 6 and ArviZ 1 require it): install python3.12 (e.g. 'pyenv install 3.12') and retry" >&2
exit 1
