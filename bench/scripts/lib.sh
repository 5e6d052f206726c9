# Shared helpers for the comparison scripts (sourced, not run).
# shellcheck shell=bash

TICK=$(getconf CLK_TCK)

# A process and all its descendants (children of every thread, recursively),
# one pid a line; nothing when $1 is gone.
proc_tree() {
    local p c kids
    [ -d /proc/"$1" ] || return 0
    echo "$1"
    for p in /proc/"$1"/task/*/children; do
        read -r -a kids 2>/dev/null <"$p" || true
        for c in ${kids[@]+"${kids[@]}"}; do
            proc_tree "$c"
        done
    done
}

# Sum of utime+stime (ticks) of a process and its descendants.
cpu_ticks() {
    local total=0 p t
    for p in $(proc_tree "$1"); do
        # Fields after the ")" that closes comm: utime is the 12th, stime the 13th.
        t=$(sed 's/^.*) //' /proc/"$p"/stat 2>/dev/null | awk '{print $12 + $13}') || t=
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# Whether a process is there and not a zombie.
alive() {
    local st
    st=$(sed 's/^.*) //' /proc/"$1"/stat 2>/dev/null | cut -d' ' -f1) || st=
    [ -n "$st" ] && [ "$st" != Z ]
}

# Stops processes a script started and everything under them (a
# kamailio's workers, the rser-bench under a timeout): TERM to each (a
# proxy's main process takes its children down with it), up to 3 s for
# the trees to go, then KILL whatever is left.
stop() { # PID...
    local p left tree=()
    for p in "$@"; do
        # shellcheck disable=SC2207
        tree+=($(proc_tree "$p"))
    done
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        left=
        for p in ${tree[@]+"${tree[@]}"}; do alive "$p" && { left=$p; break; }; done
        [ -z "$left" ] && break
        sleep 0.3
    done
    for p in ${tree[@]+"${tree[@]}"}; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# Proportional set size (KiB) of a process and its descendants: shared
# memory counted once across them, split between the processes mapping it.
pss_kib() {
    local total=0 p k
    for p in $(proc_tree "$1"); do
        k=$(awk '/^Pss:/ {print $2; exit}' /proc/"$p"/smaps_rollup 2>/dev/null) || k=
        total=$((total + ${k:-0}))
    done
    echo "$total"
}

# Field of sipp's final statistics screen: "Successful call" or "Failed call".
sipp_count() {
    grep "$2" "$1" | awk -F'|' '{gsub(/ /,"",$3); print $3}' | tail -1
}

# Microseconds of CPU per call: ticks spent, seconds measured, calls/s offered.
us_per_call() {
    echo "($1) * 1000000 / $TICK / ($2 * $3)" | bc -l
}
