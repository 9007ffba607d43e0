# Sourced by the load scripts: the CPU each operation cost over a window of
# a run, from /proc (the servers, every `postgres:` process, the load
# generators), and how busy the machine was.
# usage: cpu_mark "SERVER_PIDS" "LOADGEN_PIDS"; sleep W; cpu_mark ...;
#        cpu_report OPS_PER_S W LOADGEN_NAME   (after the second mark)

# CPU ticks (user + system) of the given processes that still run.
ticks() { local t=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
# Busy and total ticks of the whole machine.
machine() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
# Appends "server postgres loadgen busy all" ticks to CPU_MARKS.
CPU_MARKS=()
cpu_mark() {
  # shellcheck disable=SC2086 # pid lists
  CPU_MARKS+=("$(ticks $1) $(ticks $(pgrep -f '^postgres:')) $(ticks $2) $(machine)")
}
# Prints µs per operation between the last two marks, at OPS_PER_S over W s.
cpu_report() {
  local ops=$1 w=$2 name=$3 n=${#CPU_MARKS[@]}
  awk -v a="${CPU_MARKS[n-2]}" -v b="${CPU_MARKS[n-1]}" -v ops="$ops" -v w="$w" -v name="$name" \
      -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(a, x, " "); split(b, y, " "); m = ops * w; if (m == 0) m = 1
    printf "server_us=%.0f postgres_us=%.0f %s_us=%.0f busy=%.0f%%\n",
      (y[1]-x[1]) * 1e6 / hz / m, (y[2]-x[2]) * 1e6 / hz / m, name, (y[3]-x[3]) * 1e6 / hz / m,
      100 * (y[4]-x[4]) / ((y[5]-x[5]) ? (y[5]-x[5]) : 1) }'
}
