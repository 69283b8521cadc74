#!/usr/bin/env bash
# Starts or stops a one-node Slurm cluster in a directory, for the tests and benchmarks of the Slurm executor.
#   scripts/slurm-test-cluster.sh start DIR   writes DIR/slurm.conf, starts munged, slurmctld and slurmd, waits until
#                                             the node is idle, and prints `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm-test-cluster.sh stop DIR    cancels every job and stops the daemons it started
# Runs as root (slurmd needs it). The node declares 8 CPUs, 16 GiB and 4 GPUs whatever the machine has
# (SlurmdParameters=config_overrides); the GPUs are character devices equal to /dev/null, so Slurm binds and reports
# them (CUDA_VISIBLE_DEVICES) without any hardware. Ports 16817/16818, so a site's real Slurm is not disturbed.
set -euo pipefail
action=${1:?usage: slurm-test-cluster.sh start|stop DIR}
dir=${2:?usage: slurm-test-cluster.sh start|stop DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
node=$(hostname -s)
export SLURM_CONF="$dir/slurm.conf"

stop() {
  if [[ -f "$dir/slurm.conf" ]]; then
    scancel --quiet --full --signal=KILL --user="$(id -un)" 2>/dev/null || true
  fi
  for daemon in slurmd slurmctld munged; do
    if [[ -f "$dir/$daemon.pid" ]]; then
      pid=$(cat "$dir/$daemon.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$daemon.pid"
    fi
  done
}

if [[ $action == stop ]]; then
  stop
  exit 0
fi
[[ $action == start ]] || { echo "unknown action $action (start or stop)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "slurm-test-cluster.sh: must run as root (slurmd runs jobs as their users)" >&2; exit 1; }
for tool in munged slurmctld slurmd sbatch; do
  command -v "$tool" >/dev/null || { echo "slurm-test-cluster.sh: $tool is not installed (apt-get install slurmctld slurmd slurm-client munge)" >&2; exit 1; }
done
stop
mkdir -p "$dir/state" "$dir/spool" "$dir/munge" "$dir/dev"
chmod 700 "$dir/munge"
[[ -f "$dir/munge/munge.key" ]] || { dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none; chmod 400 "$dir/munge/munge.key"; }
for i in 0 1 2 3; do [[ -e "$dir/dev/gpu$i" ]] || mknod "$dir/dev/gpu$i" c 1 3; done

cat > "$dir/slurm.conf" <<CONF
ClusterName=aimass-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
Waittime=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=8 RealMemory=16384 Gres=gpu:4 State=UNKNOWN
PartitionName=batch Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=serving Nodes=$node MaxTime=INFINITE State=UP
CONF
cat > "$dir/gres.conf" <<CONF
NodeName=$node Name=gpu File=$dir/dev/gpu[0-3]
CONF

munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
slurmctld -i -f "$dir/slurm.conf"
slurmd -f "$dir/slurm.conf"
for _ in $(seq 150); do
  if sinfo -h -n "$node" -o '%T' 2>/dev/null | grep -qx idle; then
    echo "export SLURM_CONF=$dir/slurm.conf"
    exit 0
  fi
  sleep 0.2
done
echo "slurm-test-cluster.sh: node $node did not become idle within 30 s; state: $(sinfo -h -o '%T %E' 2>&1)" >&2
tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
