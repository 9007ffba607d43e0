# One single-node benchmark run, shared by single-node.sh and compare.sh:
# a fresh server on a free loopback port, one scenario's load generator
# against it, the server's peak RSS and CPU time read from /proc before it is
# stopped with SIGTERM. Sourced, not run:
#
#   . testkit/scripts/bench-run.sh
#   bench_limits                                  # once: ulimit -n for idle
#   bench_run BIN_DIR SERVER SCENARIO WORK_DIR [LOADGEN]
#
# Scenarios (BENCHMARKS.md, "Server targets at a glance"):
#   fanout500   1000 subscribers on one topic, 1 publisher at 500/s for 10 s
#   fanout2000  1000 subscribers, 4 publishers at 2000/s in all for 10 s
#   fanout2500  1000 subscribers, 4 publishers at 2500/s in all for 10 s
#   idle        10 000 idle WebSocket connections held 5 s (RSS per connection)
#   durable     32 sync clients, one mutation per request, 10 s, SQLite file
#   memory      the same sync load against --memory
#
# bench_run sets BENCH_OUT (the load generator's output), BENCH_GEN_RC (its
# exit status), BENCH_LOAD (1-minute load average before the run), BENCH_PEAK
# (server VmHWM in kB), BENCH_TICKS and BENCH_CPU (server utime+stime in
# clock ticks and seconds, read just before SIGTERM), BENCH_RC (server exit
# status), BENCH_PORT, BENCH_LOG (server stdout and stderr) and BENCH_ERR
# (why the run did not happen, empty if it did); it returns 1 when BENCH_ERR
# is set. The server is started from the first free port at or above PORT
# (default 18080), with any LIVE_SYNC_* settings of the environment removed.
# The load generator is LOADGEN, default BIN_DIR/loadgen.

BENCH_SCENARIOS_ALL="fanout500 fanout2000 fanout2500 idle durable memory"
BENCH_IDLE_CONNECTIONS=10000
BENCH_CLK_TCK=$(getconf CLK_TCK)
BENCH_PID=

# Raise the open-file limit as far as allowed (idle needs 10 000 descriptors
# in the server and as many in the load generator; both inherit the limit).
bench_limits() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# The state letter of process $1 (R, S, Z, ...); fails if there is none.
bench_state() {
    local l
    l=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    l=${l##*) }
    echo "${l%% *}"
}

bench_alive() {
    local s
    s=$(bench_state "$1") && [ "$s" != Z ]
}

# utime + stime of process $1 (all its threads), in clock ticks.
bench_cpu_ticks() {
    local l
    l=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    l=${l##*) }
    # shellcheck disable=SC2086
    set -- $l # fields from the 3rd (state) on: utime is the 14th, stime the 15th
    echo $(( ${12} + ${13} ))
}

bench_listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The first port at or above $1 that nothing listens on.
bench_free_port() {
    local p
    for p in $(seq "$1" $(( $1 + 99 ))); do
        bench_listening "$p" || { echo "$p"; return 0; }
    done
    return 1
}

# Waits until process $2 accepts on port $1: fails if it exits or after 10 s.
bench_wait_port() {
    local _
    for _ in $(seq 1 200); do
        bench_alive "$2" || return 1
        bench_listening "$1" && return 0
        sleep 0.05
    done
    return 1
}

# Waits (up to 60 s) while more than half the ephemeral ports are in TIME_WAIT
# from earlier runs, so 10 000 new connections find local ports.
bench_settle_ports() {
    local lo hi n _
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range || return 0
    for _ in $(seq 1 60); do
        n=$(ss -tan state time-wait 2>/dev/null | wc -l)
        [ "$n" -lt $(( (hi - lo) / 2 )) ] && return 0
        sleep 1
    done
}

# SIGTERM, up to 15 s for a clean exit, then SIGKILL; sets BENCH_RC.
bench_stop() {
    local pid=$1 _
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 150); do
        bench_alive "$pid" || break
        sleep 0.1
    done
    if bench_alive "$pid"; then
        echo "server $pid still running 15 s after SIGTERM: killed" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid"
    BENCH_RC=$?
    BENCH_PID=
}

# For an EXIT trap: stops a server left running by an interrupted run.
bench_cleanup() {
    if [ -n "$BENCH_PID" ]; then
        kill -TERM "$BENCH_PID" 2>/dev/null
        sleep 0.5
        kill -KILL "$BENCH_PID" 2>/dev/null
        wait "$BENCH_PID" 2>/dev/null
        BENCH_PID=
    fi
    return 0
}

bench_run() {
    local bin=$1 server=$2 scenario=$3 dir=$4 loadgen=${5:-$1/loadgen}
    local store=(--memory) gen pid v
    local env_args=()
    BENCH_OUT= BENCH_GEN_RC= BENCH_LOAD= BENCH_PEAK=? BENCH_TICKS= BENCH_CPU=
    BENCH_RC= BENCH_PORT= BENCH_ERR= BENCH_LOG=$dir/server.log
    case $scenario in
    fanout500) gen=(fanout --subscribers 1000 --topics 1 --publishers 1 --rate 500 --duration 10) ;;
    fanout2000) gen=(fanout --subscribers 1000 --topics 1 --publishers 4 --rate 2000 --duration 10) ;;
    fanout2500) gen=(fanout --subscribers 1000 --topics 1 --publishers 4 --rate 2500 --duration 10) ;;
    idle)
        gen=(idle --connections "$BENCH_IDLE_CONNECTIONS" --hold 5)
        if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $(( BENCH_IDLE_CONNECTIONS + 256 )) ]; then
            BENCH_ERR="ulimit -n is $(ulimit -n), idle needs more than $BENCH_IDLE_CONNECTIONS"
            return 1
        fi
        ;;
    durable)
        rm -f "$dir"/s.db*
        store=(--db "$dir/s.db")
        gen=(sync --clients 32 --duration 10 --scope load --no-pull)
        ;;
    memory) gen=(sync --clients 32 --duration 10 --scope load --no-pull) ;;
    *) BENCH_ERR="unknown scenario $scenario"; return 1 ;;
    esac
    [ -x "$bin/$server" ] || { BENCH_ERR="no executable $bin/$server"; return 1; }
    [ -x "$loadgen" ] || { BENCH_ERR="no executable $loadgen"; return 1; }
    BENCH_PORT=$(bench_free_port "${PORT:-18080}") || {
        BENCH_ERR="no free port from ${PORT:-18080}"
        return 1
    }
    for v in $(compgen -e); do
        case $v in LIVE_SYNC_*) env_args+=(-u "$v") ;; esac
    done
    [ "$scenario" = idle ] && bench_settle_ports
    BENCH_LOAD=$(cut -d' ' -f1 /proc/loadavg)
    env "${env_args[@]}" "$bin/$server" --addr "127.0.0.1:$BENCH_PORT" "${store[@]}" \
        --log-level warn >"$BENCH_LOG" 2>&1 &
    pid=$!
    BENCH_PID=$pid
    if ! bench_wait_port "$BENCH_PORT" "$pid"; then
        BENCH_ERR="server did not listen on $BENCH_PORT: $(tail -n 3 "$BENCH_LOG" | tr '\n' ' ')"
        bench_stop "$pid"
        return 1
    fi
    [ "$scenario" = idle ] && gen+=(--server-pid "$pid")
    BENCH_OUT=$(timeout -k 5 180 "$loadgen" --url "http://127.0.0.1:$BENCH_PORT" "${gen[@]}" 2>&1)
    BENCH_GEN_RC=$?
    BENCH_PEAK=$(awk '/VmHWM/ {print $2 " kB"}' "/proc/$pid/status" 2>/dev/null)
    BENCH_TICKS=$(bench_cpu_ticks "$pid")
    if [ -n "$BENCH_TICKS" ]; then
        BENCH_CPU=$(awk -v t="$BENCH_TICKS" -v hz="$BENCH_CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
    fi
    bench_stop "$pid"
    return 0
}
