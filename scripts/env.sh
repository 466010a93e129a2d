# Shared by scripts/*: one build cache outside the clone, so every clone (and CI) reuses it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/photoncloud-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
