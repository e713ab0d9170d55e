#!/usr/bin/env bash
# Multi-host test in network namespaces: a learner "host" and two worker "hosts", each its own
# network namespace with a 10.77.0.x address, joined by veth pairs to a bridge in a fourth
# namespace (nothing is added to the host's own network). Three launch paths, each a full tiny run
# whose ledger.json must balance (each ends by SIGTERM to the learner: a drain across hosts):
#   direct   `rein learner --bind tcp://10.77.0.1:7070` + `rein worker --learner tcp://10.77.0.1:7070`
#   ssh      deploy/ssh/rein-ssh-launch.sh with REIN_SSH = `ip netns exec HOST sh -c` (no sshd)
#   sshd     the same launcher over real ssh: an sshd (openssh-server) in each host namespace, the
#            launcher in the bridge namespace (10.77.0.254); skipped, visibly, without /usr/sbin/sshd
#   systemd  the ExecStart lines of deploy/systemd/*.service, expanded as systemd would (%i, %H,
#            ${VAR}, $VAR from an EnvironmentFile), endpoints from the config's runtime: section
#
#   scripts/netns-test.sh [--rein PATH] [--mode direct|ssh|sshd|systemd|all] [--keep]
#
# Needs root and `ip netns`; otherwise prints "SKIPPED: needs root and ip netns" and exits 0.
# Namespaces, processes and temporary files are removed on any exit (--keep keeps the logs).
set -euo pipefail
cd "$(dirname "$0")/.."

rein="" mode=all keep=0
while (($#)); do
    case "$1" in
        --rein) rein="${2:?}"; shift 2 ;;
        --mode) mode="${2:?}"; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "netns-test: unknown option $1" >&2; exit 2 ;;
    esac
done
case "$mode" in direct|ssh|sshd|systemd|all) ;; *) echo "netns-test: --mode direct|ssh|sshd|systemd|all" >&2; exit 2 ;; esac

skip() { echo "SKIPPED: needs root and ip netns ($1)"; exit 0; }
[[ "$(id -u)" == 0 ]] || skip "not running as root"
command -v ip >/dev/null 2>&1 || skip "no ip command (iproute2)"
prefix="rein$$"
ip netns add "$prefix-probe" 2>/dev/null || skip "ip netns add is not permitted here"
ip netns del "$prefix-probe"

if [[ -z "$rein" ]]; then
    for candidate in .build/release/rein .build/debug/rein; do
        [[ -x "$candidate" ]] && { rein="$PWD/$candidate"; break; }
    done
fi
[[ -n "$rein" && -x "$rein" ]] || { echo "netns-test: no rein executable (build first or pass --rein)" >&2; exit 1; }
rein="$(cd "$(dirname "$rein")" && pwd)/$(basename "$rein")"

work="$(mktemp -d -t rein-netns.XXXXXX)"
hub="$prefix-hub"
nodes=(learner w1 w2)
declare -A address=([learner]=10.77.0.1 [w1]=10.77.0.2 [w2]=10.77.0.3)
started=()
created_run_sshd=0

cleanup() {
    local code=$?
    trap - EXIT INT TERM
    local pid ns
    for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ns in "${nodes[@]}"; do
        for pid in $(ip netns pids "$prefix-$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    for pid in "${started[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in "${nodes[@]}" hub; do ip netns del "$prefix-$ns" 2>/dev/null || true; done
    ((created_run_sshd)) && rmdir /run/sshd 2>/dev/null
    if ((keep)) || ((code != 0)); then echo "netns-test: logs in $work" >&2; else rm -rf "$work"; fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== netns: bridge in $hub, hosts ${nodes[*]} (10.77.0.1-3)"
ip netns add "$hub"
ip -n "$hub" link add br0 type bridge
ip -n "$hub" link set br0 up
ip -n "$hub" addr add 10.77.0.254/24 dev br0
ip -n "$hub" link set lo up
i=0
for n in "${nodes[@]}"; do
    i=$((i + 1))
    ip netns add "$prefix-$n"
    ip -n "$hub" link add "h$i" type veth peer name eth0 netns "$prefix-$n"
    ip -n "$hub" link set "h$i" master br0 up
    ip -n "$prefix-$n" link set lo up
    ip -n "$prefix-$n" addr add "${address[$n]}/24" dev eth0
    ip -n "$prefix-$n" link set eth0 up
done
# The hosts see each other (and nothing else: no route out of 10.77.0.0/24).
for n in w1 w2; do
    ok=0
    for _ in $(seq 50); do
        out="$(ip netns exec "$prefix-$n" bash -c "exec 3<>/dev/tcp/10.77.0.1/9" 2>&1 || true)"
        if [[ "$out" == *refused* ]]; then ok=1; break; fi
        sleep 0.1
    done
    ((ok)) || { echo "netns-test: $n cannot reach 10.77.0.1" >&2; exit 1; }
done

# A tiny run (the tiny model of the multi-process tests; random reference seed 2), long enough never
# to end by itself: once both workers joined and the policy reached version $min_version, the learner
# gets SIGTERM and drains (a release build trains thousands of tiny steps a second, so a fixed step
# count could end the run before the second worker connects).
tiny_steps=1000000
min_version=10
tiny=(--set threads=1 --set model.context=16 --set model.d_model=16 --set model.layers=1 --set model.heads=2
      --set task.train_size=200 --set task.held_out_size=50 --set "train.steps=$tiny_steps"
      --set train.prompts_per_step=4 --set train.group_size=4 --set train.eval_size=20 --set train.lr=0.003
      --set train.max_staleness=2 --set train.kl.estimator=k2 --set train.kl.ratio=token
      --set runtime.heartbeat_timeout=3)

# The pid of `rein learner` in the learner namespace.
learner_pid() {
    local pid
    for pid in $(ip netns pids "$prefix-learner" 2>/dev/null); do
        [[ "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" == "$rein learner "* ]] && { echo "$pid"; return; }
    done
}

# Waits until both workers joined and the policy reached $min_version, then SIGTERMs the learner.
drain_when_ready() {  # RUN_DIR LEARNER_LOG
    local deadline=$((SECONDS + 120)) joined version pid
    while ((SECONDS < deadline)); do
        joined="$(grep -c "joined at version" "$2" 2>/dev/null || true)"
        version="$(sed -n 's/.*"version" *: *\([0-9][0-9]*\).*/\1/p' "$1/status.json" 2>/dev/null || true)"
        if ((${joined:-0} >= 2 && ${version:-0} >= min_version)); then
            pid="$(learner_pid)"
            [[ -n "$pid" ]] || break
            echo "   2 workers joined, version $version: SIGTERM to the learner (drain)"
            kill -TERM "$pid"
            return 0
        fi
        sleep 0.1
    done
    echo "netns-test: not ready in time (workers joined: ${joined:-0}, version ${version:-none})" >&2
    return 1
}

in_ns() {  # NODE LOG ARGS... (background; pid appended to `started`)
    local node="$1" log="$2"; shift 2
    ip netns exec "$prefix-$node" "$@" > "$log" 2>&1 &
    started+=($!)
}

wait_for() {  # SECONDS PID: waits for PID to exit; its status, or 124 on timeout
    local limit="$1" pid="$2" deadline=$((SECONDS + $1))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || { kill -TERM "$pid" 2>/dev/null; sleep 2; kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; return 124; }
        sleep 0.2
    done
    local status=0
    wait "$pid" || status=$?
    return "$status"
}

wait_listening() {  # LOG PID
    local deadline=$((SECONDS + 60))
    until grep -q "^learner listening on " "$1"; do
        kill -0 "$2" 2>/dev/null || { echo "netns-test: the learner exited early:" >&2; tail -20 "$1" >&2; return 1; }
        ((SECONDS < deadline)) || { echo "netns-test: the learner did not listen" >&2; return 1; }
        sleep 0.1
    done
}

# ledger.json: produced = trained + dropped + in flight + lost, every sample trained.
# Drains MODE's run once both workers joined, then checks that the learner and every worker exit
# 0 and that the ledger balances: finish_run MODE RUN LEARNER_PID WORKER_PID...
finish_run() {
    local mode=$1 run=$2 learner=$3
    shift 3
    drain_when_ready "$run" "$work/$mode-learner.log"
    local status=0
    wait_for 120 "$learner" || status=$?
    ((status == 0)) || { echo "netns-test: learner exited with $status" >&2; tail -20 "$work/$mode-learner.log" >&2; return 1; }
    for w in "$@"; do
        status=0; wait_for 30 "$w" || status=$?
        ((status == 0)) || { echo "netns-test: a worker exited with $status" >&2; tail -20 "$work/$mode"-w*.log >&2; return 1; }
    done
    check_ledger "$run" "$work/$mode-learner.log"
}

check_ledger() {  # RUN_DIR LEARNER_LOG
    local file="$1/ledger.json"
    [[ -f "$file" ]] || { echo "netns-test: no $file" >&2; return 1; }
    num() { sed -n "s/.*\"$1\" *: *\([0-9][0-9]*\).*/\1/p" "$file" | head -1; }
    local produced trained in_flight lost dropped
    produced="$(num produced)" trained="$(num trained)" in_flight="$(num in_flight)" lost="$(num lost)"
    dropped="$(sed -n '/"dropped"/,/}/p' "$file" | { grep -o ': *[0-9][0-9]*' || true; } | tr -dc '0-9\n' | awk '{s+=$1} END {print s+0}')"
    echo "   ledger: produced $produced = trained $trained + dropped $dropped + in flight $in_flight + lost $lost"
    ((produced == trained + dropped + in_flight + lost)) || { echo "netns-test: the ledger does not balance" >&2; return 1; }
    ((trained >= min_version * 16 && trained % 16 == 0)) || {
        echo "netns-test: trained $trained, expected whole batches of 16 up to at least version $min_version" >&2
        return 1
    }
    local joined
    joined="$(grep -c "joined at version" "$2" || true)"
    ((joined >= 2)) || { echo "netns-test: $joined workers joined, expected 2" >&2; return 1; }
    echo "   $joined worker joins seen by the learner"
}

run_direct() {
    echo "== direct: rein learner --bind tcp://10.77.0.1:7070; rein worker --learner tcp://10.77.0.1:7070 (x2)"
    local run="$work/direct"
    in_ns learner "$work/direct-learner.log" "$rein" learner --random-reference 2 --bind tcp://10.77.0.1:7070 \
        "${tiny[@]}" --set "run_dir=$run"
    local learner=${started[-1]}
    wait_listening "$work/direct-learner.log" "$learner"
    grep "^learner listening on " "$work/direct-learner.log" | sed 's/^/   /'
    in_ns w1 "$work/direct-w1.log" "$rein" worker --learner tcp://10.77.0.1:7070 --name w1 "${tiny[@]}" --set "run_dir=$run"
    local w1=${started[-1]}
    in_ns w2 "$work/direct-w2.log" "$rein" worker --learner tcp://10.77.0.1:7070 --name w2 "${tiny[@]}" --set "run_dir=$run"
    local w2=${started[-1]}
    finish_run direct "$run" "$learner" "$w1" "$w2"
}

run_ssh() {
    echo "== ssh: deploy/ssh/rein-ssh-launch.sh, REIN_SSH='ip netns exec HOST sh -c' (3 hosts)"
    local run="$work/ssh"
    cat > "$work/netns-sh" <<WRAP
#!/bin/sh
# REIN_SSH for namespaces: \$1 is the "host" (a namespace), \$2 the command line.
exec ip netns exec "$prefix-\$1" sh -c "\$2"
WRAP
    chmod +x "$work/netns-sh"
    printf '# learner first\nlearner\nw1\nw2\n' > "$work/hosts"
    REIN_SSH="$work/netns-sh" deploy/ssh/rein-ssh-launch.sh --hosts "$work/hosts" --port 7071 \
        --learner-address 10.77.0.1 --rein "$rein" --logs "$work/ssh-logs" \
        --learner-arg --random-reference --learner-arg 2 -- "${tiny[@]}" --set "run_dir=$run" \
        > "$work/ssh.log" 2>&1 &
    local launcher=$!
    started+=("$launcher")
    local status=0
    drain_when_ready "$run" "$work/ssh-logs/learner.log" || status=1
    wait_for 120 "$launcher" || status=$?
    grep -h "learner listening on\|workers connect to" "$work/ssh.log" | sed 's/^/   /'
    ((status == 0)) || { echo "netns-test: the ssh launcher exited with $status" >&2; tail -30 "$work/ssh.log" >&2; return 1; }
    check_ledger "$run" "$work/ssh-logs/learner.log"
}

run_sshd() {
    local sshd=/usr/sbin/sshd
    if [[ ! -x "$sshd" ]] || ! command -v ssh >/dev/null 2>&1 || ! command -v ssh-keygen >/dev/null 2>&1; then
        echo "== sshd: SKIPPED (needs openssh-server and openssh-client: apt-get install openssh-server)"
        return 0
    fi
    echo "== sshd: deploy/ssh/rein-ssh-launch.sh over ssh to an sshd in each host namespace"
    local run="$work/sshd" ssh_dir="$work/ssh"
    mkdir -p "$ssh_dir"
    chmod 700 "$ssh_dir"
    ssh-keygen -q -t ed25519 -N "" -f "$ssh_dir/host" -C rein-netns-host
    ssh-keygen -q -t ed25519 -N "" -f "$ssh_dir/client" -C rein-netns-client
    cp "$ssh_dir/client.pub" "$ssh_dir/authorized_keys"
    cat > "$ssh_dir/sshd_config" <<SSHD
Port 2222
ListenAddress 0.0.0.0
HostKey $ssh_dir/host
AuthorizedKeysFile $ssh_dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
SSHD
    # sshd insists on its privilege-separation directory.
    [[ -d /run/sshd ]] || { mkdir -p /run/sshd; created_run_sshd=1; }
    local n
    for n in "${nodes[@]}"; do
        in_ns "$n" "$work/sshd-$n.log" "$sshd" -D -e -f "$ssh_dir/sshd_config"
    done
    local ssh_cmd="ssh -i $ssh_dir/client -p 2222 -o BatchMode=yes -o StrictHostKeyChecking=no"
    ssh_cmd+=" -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5"
    for n in "${nodes[@]}"; do  # every sshd answers (they start in the background)
        local ok=0
        for _ in $(seq 50); do
            if ip netns exec "$hub" $ssh_cmd "${address[$n]}" true >/dev/null 2>&1; then ok=1; break; fi
            sleep 0.2
        done
        ((ok)) || { echo "netns-test: no ssh to ${address[$n]}:" >&2; cat "$work/sshd-$n.log" >&2; return 1; }
    done
    printf '10.77.0.1\n10.77.0.2\n10.77.0.3\n' > "$work/ssh-hosts"
    REIN_SSH="$ssh_cmd" ip netns exec "$hub" deploy/ssh/rein-ssh-launch.sh --hosts "$work/ssh-hosts" \
        --port 7073 --rein "$rein" --logs "$work/sshd-logs" \
        --learner-arg --random-reference --learner-arg 2 -- "${tiny[@]}" --set "run_dir=$run" \
        > "$work/sshd.log" 2>&1 &
    local launcher=$!
    started+=("$launcher")
    local status=0
    drain_when_ready "$run" "$work/sshd-logs/learner.log" || status=1
    wait_for 120 "$launcher" || status=$?
    grep -h "workers connect to" "$work/sshd.log" | sed 's/^/   /'
    ((status == 0)) || { echo "netns-test: the ssh launcher exited with $status" >&2; tail -30 "$work/sshd.log" >&2; return 1; }
    check_ledger "$run" "$work/sshd-logs/learner.log"
}

# The ExecStart line of UNIT as systemd would run it for INSTANCE on HOST with ENVFILE:
# %i, %H and ${VAR} / $VAR expanded; /usr/local/bin/rein replaced by the rein under test.
exec_start() {  # UNIT ENVFILE INSTANCE HOST
    local line
    line="$(sed -n 's/^ExecStart=//p' "$1")"
    line="${line//%i/$3}"
    line="${line//%H/$4}"
    line="${line//\/usr\/local\/bin\/rein/$rein}"
    (
        # EnvironmentFile= syntax: KEY=VALUE lines, the value unquoted or in double quotes.
        while IFS= read -r entry; do
            [[ "$entry" =~ ^[[:space:]]*(#|$) ]] && continue
            value="${entry#*=}" value="${value#\"}" value="${value%\"}"
            export "${entry%%=*}=$value"
        done < "$2"
        # ${VAR} is one word, $VAR splits on white space (as in systemd).
        eval "printf '%s\n' $line"
    )
}

run_systemd() {
    echo "== systemd: the ExecStart lines of deploy/systemd (learner + worker@1, worker@2), endpoints from runtime:"
    local run="$work/systemd"
    cat > "$work/config.yaml" <<YAML
seed: 1
run_dir: $run
threads: 1
model: {context: 16, d_model: 16, layers: 1, heads: 2}
task: {train_size: 200, held_out_size: 50}
train: {steps: $tiny_steps, prompts_per_step: 4, group_size: 4, eval_size: 20, lr: 0.003, max_staleness: 2,
        kl: {estimator: k2, ratio: token}}
runtime: {learner_bind: "tcp://10.77.0.1:7072", learner: "tcp://10.77.0.1:7072", heartbeat_timeout: 3}
YAML
    sed -e "s#^REIN_CONFIG=.*#REIN_CONFIG=$work/config.yaml#" \
        -e "s#^REIN_LEARNER_ARGS=.*#REIN_LEARNER_ARGS=--random-reference 2#" deploy/systemd/rein.env > "$work/rein.env"
    local -a learner_cmd w1_cmd w2_cmd
    mapfile -t learner_cmd < <(exec_start deploy/systemd/rein-learner.service "$work/rein.env" "" learner)
    mapfile -t w1_cmd < <(exec_start deploy/systemd/rein-worker@.service "$work/rein.env" 1 w1)
    mapfile -t w2_cmd < <(exec_start deploy/systemd/rein-worker@.service "$work/rein.env" 2 w2)
    echo "   learner: ${learner_cmd[*]#$rein}"
    echo "   worker@1: ${w1_cmd[*]#$rein}"
    in_ns learner "$work/systemd-learner.log" "${learner_cmd[@]}"
    local learner=${started[-1]}
    wait_listening "$work/systemd-learner.log" "$learner"
    in_ns w1 "$work/systemd-w1.log" "${w1_cmd[@]}"
    local w1=${started[-1]}
    in_ns w2 "$work/systemd-w2.log" "${w2_cmd[@]}"
    local w2=${started[-1]}
    finish_run systemd "$run" "$learner" "$w1" "$w2"
}

case "$mode" in
    direct) run_direct ;;
    ssh) run_ssh ;;
    sshd) run_sshd ;;
    systemd) run_systemd ;;
    all) run_direct; run_ssh; run_sshd; run_systemd ;;
esac
echo "PASSED: multi-host runs in network namespaces ($mode)"
