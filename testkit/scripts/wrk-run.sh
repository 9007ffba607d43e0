# What wrk-push.sh and wrk-read.sh share: a fresh server on a store, one wrk
# run against it with the server's CPU read around it, and medians.
# Sourced, not run; expects BIN, SERVER, STORE, PORT, SECONDS_ and DIR set.
#
#   wrk_start PREFIX    starts the server (store file DIR/PREFIX.db for
#                       sqlite), waits until it listens; sets WRK_PID
#   wrk_measure SCRIPT ARGS...
#                       one wrk run (32 connections, one thread, SECONDS_)
#                       with SCRIPT from this directory; sets RATE,
#                       REQUESTS, BAD (non-2xx, and socket errors if any)
#                       and COST (server CPU µs per request over the run)
#   wrk_stop            SIGTERM to the server and waits for it
#   median              the median of the numbers on stdin

WRK_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WRK_TCK=$(getconf CLK_TCK)
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }

wrk_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }

wrk_start() {
    local store
    case $STORE in
    memory) store=(--memory) ;;
    sqlite) rm -f "$DIR/$1".db*; store=(--db "$DIR/$1.db" --durability full) ;;
    *) echo "unknown store $STORE" >&2; exit 2 ;;
    esac
    env $(env | grep -o '^LIVE_SYNC_[A-Z_]*' | sed 's/^/-u /') \
        "$BIN/$SERVER" --addr "127.0.0.1:$PORT" "${store[@]}" --log-level warn >"$DIR/server.log" 2>&1 &
    WRK_PID=$!
    for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
}

wrk_measure() {
    local script=$1 before after out errors
    shift
    before=$(wrk_cpu_ticks "$WRK_PID")
    out=$(wrk -t1 -c32 -d"${SECONDS_}s" -s "$WRK_HERE/$script" "http://127.0.0.1:$PORT" -- "$@" 2>&1)
    after=$(wrk_cpu_ticks "$WRK_PID")
    REQUESTS=$(echo "$out" | awk '/requests in/ {print $1}')
    RATE=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    BAD=$(echo "$out" | awk '/Non-2xx/ {print $NF}'); BAD=${BAD:-0}
    errors=$(echo "$out" | grep -E 'Socket errors' || true)
    [ -n "$errors" ] && BAD="$BAD, $errors"
    COST=$(awk -v t=$((after - before)) -v hz="$WRK_TCK" -v n="$REQUESTS" 'BEGIN {printf "%.1f", n ? t / hz / n * 1e6 : 0}')
}

wrk_stop() {
    kill -TERM "$WRK_PID"
    wait "$WRK_PID"
}
