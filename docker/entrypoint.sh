#!/bin/sh
# presso container entrypoint (docker/Dockerfile, docker/Dockerfile.cuda).
#   serve [presso serve flags...]  serve the checkpoint in $PRESSO_MODEL_DIR on 0.0.0.0:$PRESSO_PORT (default)
#   compress-once                  build $PRESSO_MODEL_DIR once: pull/convert $PRESSO_SOURCE_MODEL and
#                                  compress it with $PRESSO_RECIPE; a no-op when the checkpoint exists
#   anything else                  run as a command (e.g. `presso eval ...`, `presso-loadtest ...`)
set -eu

MODEL_DIR="${PRESSO_MODEL_DIR:-/models/served}"
SOURCE="${PRESSO_SOURCE_MODEL:-smollm2-135m}"
RECIPE="${PRESSO_RECIPE:-w8}"
PORT="${PRESSO_PORT:-8000}"

compress_once() {
    if [ -f "$MODEL_DIR/config.json" ]; then
        echo "presso: checkpoint $MODEL_DIR exists; nothing to compress"
        return 0
    fi
    # A hub id or a mounted HF directory is used as is; an embedded name is pulled (converted) first.
    case "$SOURCE" in
        */*) source_dir="$SOURCE" ;;
        *) source_dir="$(presso pull "$SOURCE")" ;;
    esac
    # Several replicas may start at once on a shared volume: each writes its own temp dir, the first
    # rename wins and the others discard their copy.
    tmp="$MODEL_DIR.tmp-$(hostname)-$$"
    rm -rf "$tmp"
    presso compress --model "$source_dir" --recipe "$RECIPE" --out "$tmp"
    if mv -T "$tmp" "$MODEL_DIR" 2>/dev/null; then
        echo "presso: wrote checkpoint $MODEL_DIR ($RECIPE of $SOURCE)"
    else
        rm -rf "$tmp"
        echo "presso: another replica wrote $MODEL_DIR first; using it"
    fi
}

command="${1:-serve}"
[ "$#" -gt 0 ] && shift
case "$command" in
    serve)
        exec presso serve --model "$MODEL_DIR" --host 0.0.0.0 --port "$PORT" "$@" ;;
    compress-once)
        compress_once ;;
    *)
        exec "$command" "$@" ;;
esac
