#!/bin/sh
# Container entry point: the first argument picks the role; anything else runs as given.
set -eu

role="${1:-bot}"
case "$role" in
    bot|worker|run)
        if [ "$#" -gt 0 ]; then shift; fi
        exec poembot "$role" "$@"
        ;;
    health)
        # The health of whichever role this container runs (POEMBOT_ROLE, set in compose).
        exec poembot health --role "${POEMBOT_ROLE:-bot}"
        ;;
    *)
        exec "$@"
        ;;
esac
