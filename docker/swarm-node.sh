#!/bin/sh
# A node of the Docker Swarm stack (deploy/swarm/stack.yaml); the image
# has it as iridium-swarm-node. Extra arguments go to iridium.
#
# Every task is alike: it advertises its own task IP and joins through
# every other task it finds under tasks.SERVICE (endpoint_mode dnsrr: one A
# record per task), so any live member is a way in and a replaced task
# joins again by itself.
#
# Swarm lists a task under that name only once the task is healthy, which
# is once its node answers the health check. So the node starts first, on
# its own, and the joining runs beside it: it waits until this task's own
# address is listed, then joins through every other address listed then.
# Of any two tasks the one listed later finds the earlier one, so the
# tasks form one cluster and the membership protocol fills in the mesh.
set -eu
service=${IRIDIUM_SWARM_SERVICE:-iridium}
port=${IRIDIUM_SERVER_BIND_PORT:-2254}
self=$(hostname -i | cut -d' ' -f1)

addresses() { getent ahostsv4 "tasks.$service" | cut -d' ' -f1 | sort -u; }

join_peers() {
  tries=0
  until addresses | grep -qxF "$self"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 600 ]; then
      echo "swarm-node: $self not listed under tasks.$service after 120 s; not joining" >&2
      return 0
    fi
    sleep 0.2
  done
  # Until this node has a member, or there is no one else: a join can fail
  # for a while (a replacement whose old self the others have not yet
  # declared dead is refused its alias).
  rounds=0
  while :; do
    others=$(addresses | grep -vxF "$self" || true)
    [ -n "$others" ] || return 0 # the first task: the next ones find it
    for ip in $others; do
      # In parallel: a dead task's address costs its join timeout, not the others'.
      iridium attach 127.0.0.1:2244 -c "!join_cluster $ip $port" 2>&1 | sed "s/^/swarm-node: $ip: /" >&2 &
    done
    wait
    iridium attach 127.0.0.1:2244 -c '!cluster_members --json' 2>/dev/null | grep -q '"members":\[{' && return 0
    rounds=$((rounds + 1))
    if [ "$rounds" -ge 30 ]; then
      echo "swarm-node: no member after $rounds rounds of joins; giving up" >&2
      return 0
    fi
    sleep 2
  done
}

# Detached twice, so tini (PID 1) reaps it, not the node that replaces
# this shell; its stdin is /dev/null, the node's TTY stays the node's.
(join_peers &)
exec iridium -H 0.0.0.0 -P "$port" --advertise-host "$self" -r --start-cluster \
  --data-root-dir /var/lib/iridium "$@"
