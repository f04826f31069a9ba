#!/usr/bin/env bash
# A real single-node SLURM cluster (munge + slurmctld + slurmd) for tests/test_slurm_profile.py,
# so that profiles/slurm is tested against a real scheduler and not a mock.
#
#   tests/slurm/cluster.sh start    install the Debian packages if missing, configure, start,
#                                   wait until the node is idle (a no-op if already running)
#   tests/slurm/cluster.sh stop     cancel jobs, wait for them, stop the daemons (pid files)
#   tests/slurm/cluster.sh status   exit 0 if the cluster is up and its node usable
#
# Needs root and apt-get (Debian 12: Slurm 22.05). No systemd, no cgroups, no accounting
# database: jobs' states come from squeue (MinJobAge keeps finished jobs visible) and finished
# jobs are listed in $JOBCOMP_LOG. Exit status 77 means "this machine cannot host the test
# cluster" (not root, no apt-get, packages not installable, a SLURM config not written by this
# script); anything else non-zero is a real failure.
#
# The node advertises one GPU backed by /dev/null (gres/gpu), so that jobs requesting a GPU
# (`--gpus`, `--gres=gpu:1`) are scheduled and their request is recorded; nothing runs on it.
set -euo pipefail

PACKAGES=(munge slurmctld slurmd slurm-client)
PARTITION="${SEMIBENCH_SLURM_PARTITION:-debug}"
MARKER="# written by semibench tests/slurm/cluster.sh"
CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
JOBCOMP_LOG="$LOG_DIR/jobcomp.log"
CTLD_PID="$RUN_DIR/slurmctld.pid"
SLURMD_PID="$RUN_DIR/slurmd.pid"
MUNGE_PID=/run/munge/munged.pid
HOST="$(hostname -s)"

log() { echo "cluster.sh: $*" >&2; }
unusable() { log "cannot host a test cluster: $*"; exit 77; }
die() { log "error: $*"; exit 1; }

alive() {  # alive PIDFILE: the process named in PIDFILE runs
  [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS COMMAND...: poll COMMAND every 0.5 s
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

node_state() { sinfo -h -n "$HOST" -o '%t' 2>/dev/null | head -n1; }
node_usable() { [[ "$(node_state)" =~ ^(idle|mix|alloc|comp) ]]; }

status() {
  alive "$MUNGE_PID" && alive "$CTLD_PID" && alive "$SLURMD_PID" \
    && scontrol ping >/dev/null 2>&1 && node_usable
}

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

install_packages() {
  local missing
  missing="$(missing_packages | tr '\n' ' ')"
  [[ -z "${missing// }" ]] && return 0
  command -v apt-get >/dev/null || unusable "packages missing ($missing) and no apt-get"
  log "installing $missing"
  # keep package hooks from starting daemons with the stock config (restored afterwards)
  local policy=/usr/sbin/policy-rc.d backup=""
  if [[ -e "$policy" ]]; then
    backup="$(mktemp)"
    cp -p "$policy" "$backup"
  fi
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  local ok=0
  # shellcheck disable=SC2086  # $missing is a list of package names
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing \
      >"/tmp/semibench-slurm-apt.log" 2>&1; then
    ok=1
  else
    # the package lists may be missing or stale: refresh them once and retry
    log "apt-get install failed; running apt-get update and retrying"
    if DEBIAN_FRONTEND=noninteractive apt-get update -q >>/tmp/semibench-slurm-apt.log 2>&1 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
           $missing >>/tmp/semibench-slurm-apt.log 2>&1; then
      ok=1
    fi
  fi
  if [[ -n "$backup" ]]; then mv "$backup" "$policy"; else rm -f "$policy"; fi
  if ((!ok)); then
    tail -n 20 /tmp/semibench-slurm-apt.log >&2
    unusable "could not install $missing (no network or no Debian package registry?)," \
      "see /tmp/semibench-slurm-apt.log"
  fi
}

write_config() {
  local f
  for f in "$CONF" "$GRES_CONF"; do
    if [[ -e "$f" ]] && ! grep -qF "$MARKER" "$f"; then
      unusable "$f exists and was not written by this script; not overwriting a real cluster"
    fi
  done
  getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >>/etc/hosts
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR" "$RUN_DIR"
  chown slurm:slurm /var/spool/slurmctld "$LOG_DIR" "$RUN_DIR"
  # the node line as slurmd sees the machine; RealMemory lowered to 90 % or the node is INVALID
  local node mem
  node="$(slurmd -C | head -n1)"
  [[ "$node" == NodeName=* ]] || die "unexpected 'slurmd -C' output: $node"
  mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")"
  node="$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 9 / 10))/" <<<"$node")"
  local tmp="$CONF.tmp"
  cat >"$tmp" <<EOF
$MARKER
ClusterName=semibench
SlurmctldHost=$HOST
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# no cgroups on CI machines
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# else each job takes the whole node's memory
DefMemPerCPU=1000
MailProg=/bin/true
ReturnToService=2
# the executor's squeue status mode needs finished jobs visible (>= 3 x first status delay)
MinJobAge=300
# no accounting database; finished jobs are listed in the jobcomp log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP_LOG
GresTypes=gpu
$node Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  printf '%s\nNodeName=%s Name=gpu File=/dev/null\n' "$MARKER" "$HOST" >"$GRES_CONF"
  mv "$tmp" "$CONF"
  chmod 644 "$CONF" "$GRES_CONF"
}

start_munge() {
  alive "$MUNGE_PID" && return 0
  if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged </dev/null >>"$LOG_DIR/munged.out" 2>&1
  wait_for 20 bash -c 'munge -n | unmunge' || die "munged did not come up"
}

start_slurm() {
  if ! alive "$CTLD_PID"; then
    /usr/sbin/slurmctld </dev/null >>"$LOG_DIR/slurmctld.out" 2>&1 \
      || { tail -n 20 "$LOG_DIR/slurmctld.log" >&2 || true; die "slurmctld failed to start"; }
  fi
  wait_for 30 scontrol ping \
    || { tail -n 20 "$LOG_DIR/slurmctld.log" >&2 || true; die "slurmctld does not answer"; }
  if ! alive "$SLURMD_PID"; then
    /usr/sbin/slurmd </dev/null >>"$LOG_DIR/slurmd.out" 2>&1 \
      || { tail -n 20 "$LOG_DIR/slurmd.log" >&2 || true; die "slurmd failed to start"; }
  fi
  if ! wait_for 20 node_usable; then
    log "node $HOST is '$(node_state)'; resuming it"
    scontrol update NodeName="$HOST" State=RESUME || true
    wait_for 30 node_usable || {
      tail -n 20 "$LOG_DIR/slurmd.log" >&2 || true
      sinfo -N -l >&2 || true
      die "node $HOST stays '$(node_state)'"
    }
  fi
}

stop_pid() {  # stop_pid PIDFILE NAME: TERM, wait, KILL
  local pidfile="$1" name="$2" pid
  alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for 30 bash -c "! kill -0 $pid"; then
    log "$name (pid $pid) ignored SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 10 bash -c "! kill -0 $pid" || true
  fi
  rm -f "$pidfile"
}

no_jobs_left() { [[ -z "$(squeue -h -o '%i' 2>/dev/null)" ]]; }

cmd_start() {
  [[ $EUID -eq 0 ]] || unusable "must run as root"
  if status; then
    log "already running (node $HOST, partition $PARTITION)"
    return 0
  fi
  install_packages
  # a half-started cluster from an earlier run: stop what runs, then start cleanly
  cmd_stop
  write_config
  start_munge
  start_slurm
  log "running: node $HOST, partition $PARTITION, $(sinfo -h -o '%c CPUs %m MB' | head -n1)"
}

cmd_stop() {
  [[ $EUID -eq 0 ]] || unusable "must run as root"
  if alive "$CTLD_PID" && scontrol ping >/dev/null 2>&1; then
    # cancel while slurmd still runs, or slurmstepd processes outlive it
    squeue -h -o '%i' 2>/dev/null | xargs -r scancel 2>/dev/null || true
    wait_for 60 no_jobs_left || log "jobs still listed after 60 s: $(squeue -h | head -n5)"
  fi
  stop_pid "$SLURMD_PID" slurmd
  stop_pid "$CTLD_PID" slurmctld
  stop_pid "$MUNGE_PID" munged
  # without a controller, SLURM clients that find a config retry it for ~10 s, and Snakemake's
  # SLURM plugin runs them at import: every later `snakemake` call would wait. No config, no
  # wait (`start` writes it again).
  local f
  for f in "$CONF" "$GRES_CONF"; do
    if [[ -e "$f" ]] && grep -qF "$MARKER" "$f"; then rm -f "$f"; fi
  done
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop; log "stopped" ;;
  status)
    if status; then echo "running"; else echo "stopped"; exit 1; fi
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
