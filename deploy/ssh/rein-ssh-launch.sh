#!/usr/bin/env bash
# Runs a Rein learner on the first host of a list and rollout workers on the others, over ssh.
#
#   deploy/ssh/rein-ssh-launch.sh --hosts hosts.txt --config /shared/rein.yaml [options] [-- ARGS...]
#
# hosts.txt: one host per line (`#` comments, blank lines ignored); the first runs `rein learner`,
# every other line runs `rein worker` (list a host twice for two workers on it). The config file
# and the reference checkpoint must be at the same path on every host (shared filesystem, or copy
# them first). ARGS after `--` go to the learner and the workers (e.g. `--set train.steps=500`).
#
# Options:
#   --hosts FILE             host list (required)
#   --config FILE            run configuration, same path on every host
#   --port PORT              learner port (default 7070); the learner binds tcp://0.0.0.0:PORT
#   --learner-address ADDR   address workers use to reach the learner (default: its host name)
#   --learner-arg ARG        extra argument for the learner only (repeatable), e.g. --curve-secret F
#   --worker-arg ARG         extra argument for the workers only (repeatable)
#   --rein PATH              rein executable on the hosts (default: rein, or $REIN_BIN)
#   --logs DIR               where the per-host logs go (default: a new temporary directory)
#   --wait-listening SECS    how long the learner may take to bind (default 120)
#
# Environment:
#   REIN_SSH   the remote-exec command, called as `$REIN_SSH HOST 'COMMAND LINE'`
#              (default: ssh -o BatchMode=yes). The tests set it to a wrapper around
#              `ip netns exec HOST sh -c 'COMMAND LINE'` to use network namespaces as hosts.
#
# Output of every process is prefixed with [learner@HOST] / [worker-i@HOST]. Ctrl-C or SIGTERM
# sends SIGTERM to every remote rein (they drain and exit 0); the launcher exits with the learner's
# status.
set -euo pipefail

hosts_file="" config="" port=7070 learner_address="" logs="" wait_listening=120
rein="${REIN_BIN:-rein}"
learner_args=() worker_args=() shared_args=()
read -r -a remote_exec <<< "${REIN_SSH:-ssh -o BatchMode=yes}"

die() { echo "rein-ssh-launch: $*" >&2; exit 2; }
while (($#)); do
    case "$1" in
        --hosts) hosts_file="${2:?}"; shift 2 ;;
        --config) config="${2:?}"; shift 2 ;;
        --port) port="${2:?}"; shift 2 ;;
        --learner-address) learner_address="${2:?}"; shift 2 ;;
        --learner-arg) learner_args+=("${2?}"); shift 2 ;;
        --worker-arg) worker_args+=("${2?}"); shift 2 ;;
        --rein) rein="${2:?}"; shift 2 ;;
        --logs) logs="${2:?}"; shift 2 ;;
        --wait-listening) wait_listening="${2:?}"; shift 2 ;;
        --) shift; shared_args=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ -n "$hosts_file" ]] || die "--hosts FILE is required"
[[ -r "$hosts_file" ]] || die "cannot read $hosts_file"
mapfile -t hosts < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e 's/^[[:space:]]*//' "$hosts_file" | grep -v '^$' || true)
((${#hosts[@]} >= 2)) || die "$hosts_file needs a learner host and at least one worker host"
[[ "$port" =~ ^[0-9]+$ ]] || die "--port must be a number"
learner_host="${hosts[0]}"
worker_hosts=("${hosts[@]:1}")
learner_address="${learner_address:-$learner_host}"
logs="${logs:-$(mktemp -d -t rein-ssh-launch.XXXXXX)}"
mkdir -p "$logs"
run_id="rein-$$-$RANDOM"

common=()
[[ -n "$config" ]] && common+=(--config "$config")
common+=("${shared_args[@]}")

# A remote command line: records the remote pid (so we can stop it), then execs rein.
command_line() {  # PIDFILE ARGS...
    local pidfile="$1"; shift
    local line="echo \$\$ > $(printf %q "$pidfile"); exec"
    local arg
    for arg in "$@"; do line+=" $(printf %q "$arg")"; done
    printf '%s' "$line"
}

names=() name_hosts=() pids=() tails=()
start() {  # NAME HOST ARGS...
    local name="$1" host="$2"; shift 2
    local pidfile="/tmp/$run_id-$name.pid"
    : > "$logs/$name.log"
    ( set +e
      "${remote_exec[@]}" "$host" "$(command_line "$pidfile" "$rein" "$@")" > "$logs/$name.log" 2>&1
      echo $? > "$logs/$name.status" ) &
    pids+=($!)
    names+=("$name")
    name_hosts+=("$host")
    tail -n +1 -F "$logs/$name.log" 2>/dev/null | sed -u "s/^/[$name@$host] /" &
    tails+=($!)
}

# Sends SIGTERM to the remote rein of process index I (if it still runs).
stop_remote() {  # I
    local i="$1"
    local pidfile="/tmp/$run_id-${names[$i]}.pid"
    "${remote_exec[@]}" "${name_hosts[$i]}" \
        "test -f $pidfile && kill -TERM \$(cat $pidfile) 2>/dev/null; rm -f $pidfile" >/dev/null 2>&1 || true
}

running() { kill -0 "${pids[$1]}" 2>/dev/null; }

stop_all() {
    local i
    for i in "${!pids[@]}"; do running "$i" && stop_remote "$i"; done
    local deadline=$((SECONDS + 30))
    for i in "${!pids[@]}"; do
        while running "$i" && ((SECONDS < deadline)); do sleep 0.2; done
        running "$i" && kill -KILL "${pids[$i]}" 2>/dev/null || true
    done
}

finish() {
    local code=$?
    trap - EXIT INT TERM
    stop_all
    sleep 0.3
    kill "${tails[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    echo "rein-ssh-launch: logs in $logs" >&2
    exit "$code"
}
trap finish EXIT
trap 'echo "rein-ssh-launch: stopping" >&2; exit 130' INT TERM

start learner "$learner_host" learner --bind "tcp://0.0.0.0:$port" "${common[@]}" "${learner_args[@]}"
deadline=$((SECONDS + wait_listening))
until grep -q "^learner listening on " "$logs/learner.log"; do
    running 0 || { echo "rein-ssh-launch: the learner exited before listening" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "rein-ssh-launch: the learner did not listen within ${wait_listening}s" >&2; exit 1; }
    sleep 0.2
done
endpoint="tcp://$learner_address:$port"
echo "rein-ssh-launch: learner on $learner_host; ${#worker_hosts[@]} workers connect to $endpoint" >&2
for i in "${!worker_hosts[@]}"; do
    start "worker-$i" "${worker_hosts[$i]}" worker --learner "$endpoint" --name "worker-$i" \
        "${common[@]}" "${worker_args[@]}"
done

while running 0; do sleep 0.5; done
wait "${pids[0]}" 2>/dev/null || true
status="$(cat "$logs/learner.status" 2>/dev/null || echo 1)"
# Workers leave by themselves once the learner is done; give them a moment.
deadline=$((SECONDS + 20))
for i in "${!pids[@]}"; do
    while running "$i" && ((SECONDS < deadline)); do sleep 0.2; done
done
echo "rein-ssh-launch: learner exited with status $status" >&2
exit "$status"
