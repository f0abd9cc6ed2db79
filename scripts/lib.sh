# shellcheck shell=bash
# What the scripts share: sourced (never run) as `. "$(dirname "$0")/lib.sh"`, it moves
# to the repository's root and defines the three steps every script takes the same way.
#   va_require_root WHY      exit 1 with "scripts/<name>: must run as root (WHY)" unless root
#   va_install [ARGS]        scripts/install-deps ARGS; without ARGS also exports
#                            VA_TEST_PYTHON (scripts/python-env), which the tests and examples use
#   va_target_dir            prints cargo's target directory as an absolute path
#                            (repmgr runs the kick from elsewhere, so relative paths break)
va_script=${0##*/}
cd "$(dirname "${BASH_SOURCE[0]}")/.."

va_require_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "scripts/$va_script: must run as root${1:+ ($1)}" >&2
    exit 1
  fi
}

va_install() {
  scripts/install-deps "$@"
  if [ $# -eq 0 ]; then
    VA_TEST_PYTHON=$(scripts/python-env)
    export VA_TEST_PYTHON
  fi
}

va_target_dir() {
  local t=${CARGO_TARGET_DIR:-target}
  case "$t" in /*) echo "$t" ;; *) echo "$PWD/$t" ;; esac
}
