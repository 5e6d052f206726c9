# Shared helpers for the comparison scripts (sourced, not run).

TICK=$(getconf CLK_TCK)

# Sum of utime+stime (ticks) of a process and its children.
cpu_ticks() {
    local total=0 p
    for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        if [ -r /proc/"$p"/stat ]; then
            total=$((total + $(awk '{print $14 + $15}' /proc/"$p"/stat)))
        fi
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
