# shellcheck shell=bash
# scripts/cluster's Docker Swarm engine (--engine swarm), sourced by it: the
# stack deploy/swarm/stack.yaml, named PROJECT, with one service "iridium"
# whose task in slot S is the node node-S.
# Uses scripts/cluster's die, key_paths, key_file, key_dir, project, repo.

swarm_service() { echo "${project}_iridium"; }

# The file whose presence says that `up` turned this engine into a swarm
# (holds the swarm node id then), so that `down` leaves it again; in the
# project's state directory, beside the cluster key.
swarm_marker() {
  key_paths
  echo "$key_dir/swarm-initialised"
}

# "node SLOT NAME" for each task container of the stack, by slot; a task's
# container is named SERVICE.SLOT.TASKID.
swarm_containers() { # $1: -a to include exited ones (Swarm keeps a few)
  docker ps "$@" --filter "label=com.docker.swarm.service.name=$(swarm_service)" --format '{{.Names}}' |
    awk -F. 'NF >= 3 && $2 ~ /^[0-9]+$/ { print "node", $2, $0 }' | sort -k2,2n -k3,3
}

# The running container of NODE (node-S, node_S, S, or a task container's
# name); else the newest exited one of that slot (logs of a killed task).
swarm_resolve() {
  local arg=$1 slot name=""
  if [[ $arg =~ ^(node[-_]?)?([0-9]+)$ ]]; then
    slot=${BASH_REMATCH[2]}
    name=$(swarm_containers | awk -v s="$slot" '$2 == s { print $3; exit }')
    [ -n "$name" ] || name=$(docker ps -a --filter "label=com.docker.swarm.service.name=$(swarm_service)" \
      --format '{{.Names}}' | awk -F. -v s="$slot" '$2 == s { print; exit }')
  elif [ "$(docker inspect -f '{{index .Config.Labels "com.docker.swarm.service.name"}}' "$arg" 2>/dev/null)" = "$(swarm_service)" ]; then
    name=$(docker inspect -f '{{.Name}}' "$arg")
    name=${name#/}
  fi
  [ -n "$name" ] || die "no task '$arg' in the $project stack (see: scripts/cluster --engine swarm ps)"
  echo "$name"
}

# The first swarm a Docker daemon starts raises the host's ARP table limits
# (gc_thresh1..3, to 8192/49152/65536 here) and `swarm leave` does not
# lower them again, so `up` keeps them, before it makes a swarm, beside the
# marker, and `down` puts them back after it leaves.
neigh_before_swarm() { echo "$key_dir/neigh-before-swarm"; }
neigh_keys=(net.ipv4.neigh.default.gc_thresh1 net.ipv4.neigh.default.gc_thresh2 net.ipv4.neigh.default.gc_thresh3)

save_neigh_before_swarm() {
  local values=() key
  for key in "${neigh_keys[@]}"; do
    values+=("$(sysctl -n "$key" 2>/dev/null)") || return 0
  done
  echo "${values[*]}" >"$(neigh_before_swarm)"
}

restore_neigh_before_swarm() {
  local saved values settings=() i sudo_cmd=()
  saved=$(neigh_before_swarm)
  [ -e "$saved" ] || return 0
  read -r -a values <"$saved"
  for i in 0 1 2; do settings+=("${neigh_keys[i]}=${values[i]}"); done
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo -n)
  if "${sudo_cmd[@]}" sysctl -q -w "${settings[@]}" 2>/dev/null; then
    rm -f -- "$saved"
    echo "cluster: put the host's ARP table limits back to ${values[*]} (swarm init had raised them)"
  else
    echo "cluster: warning: swarm init raised the host's ARP table limits; as root: sysctl -w ${settings[*]}" >&2
  fi
}

# Makes this engine a single-node swarm manager unless it is one already.
swarm_ensure() {
  local state
  state=$(docker info --format '{{.Swarm.LocalNodeState}}') || die "cannot ask Docker for its swarm state"
  case "$state" in
    active)
      [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = true ] ||
        die "this Docker engine is a swarm worker; run this on a manager"
      ;;
    inactive)
      mkdir -p -m 0700 -- "$key_dir" || die "cannot create $key_dir"
      save_neigh_before_swarm
      docker swarm init --advertise-addr 127.0.0.1 >/dev/null || die "docker swarm init failed"
      docker info --format '{{.Swarm.NodeID}}' >"$(swarm_marker)"
      echo "cluster: made this Docker engine a single-node swarm (down leaves it again)"
      ;;
    *) die "this Docker engine's swarm state is '$state'; wait for it to settle, or fix it (docker swarm leave)" ;;
  esac
}

# Leaves the swarm if `up` made it (the marker names this swarm node) and
# nothing else runs on it; otherwise says why it stays.
swarm_release() {
  local marker node
  marker=$(swarm_marker)
  [ -f "$marker" ] || return 0
  node=$(docker info --format '{{.Swarm.NodeID}}' 2>/dev/null || true)
  if [ "$node" != "$(cat "$marker")" ]; then
    rm -f -- "$marker" # that swarm is gone; this one is somebody else's
    return 0
  fi
  if [ -n "$(docker service ls -q 2>/dev/null)" ]; then
    echo "cluster: staying in the swarm that up started: other services still run on it" >&2
    return 0
  fi
  docker swarm leave --force >/dev/null || die "docker swarm leave failed"
  rm -f -- "$marker"
  echo "cluster: left the swarm that up started"
  restore_neigh_before_swarm
}

# The swarm secret holding the cluster key: one per key (named by a digest
# of the file, as secrets cannot change), made from the file on first use.
# The file belongs to the image's user, so a container reads it.
swarm_secret() {
  local digest name
  digest=$(docker run --rm --network none --user 0:0 -v "$key_dir:/keys:ro" "$IRIDIUM_IMAGE" \
    sha256sum /keys/cluster.key | cut -c1-12) && [ -n "$digest" ] ||
    die "cannot read the cluster key $key_file"
  name=${project}_cluster_key_$digest
  if ! docker secret inspect "$name" >/dev/null 2>&1; then
    docker run --rm --network none --user 0:0 -v "$key_dir:/keys:ro" "$IRIDIUM_IMAGE" cat /keys/cluster.key |
      docker secret create --label "io.iridium.stack=$project" "$name" - >/dev/null ||
      die "cannot make the swarm secret $name"
  fi
  echo "$name"
}

# The image's iridium user and group ids: the secret is handed to them.
swarm_node_ids() {
  docker run --rm --network none "$IRIDIUM_IMAGE" sh -c 'echo "$(id -u) $(id -g)"'
}

# Waits until exactly N task containers run and report healthy (or the
# timeout: a warning, as compose's up gives).
swarm_wait() { # $1: N
  local n=$1 deadline=$((SECONDS + ${IRIDIUM_UP_TIMEOUT:-60})) running healthy
  while :; do
    running=$(swarm_containers | wc -l)
    healthy=$(docker ps --filter "label=com.docker.swarm.service.name=$(swarm_service)" \
      --filter health=healthy -q | wc -l)
    [ "$running" -eq "$n" ] && [ "$healthy" -eq "$n" ] && return 0
    if ((SECONDS >= deadline)); then
      echo "cluster: warning: $healthy of $n tasks healthy ($running running) after ${IRIDIUM_UP_TIMEOUT:-60}s" >&2
      return 0
    fi
    sleep 1
  done
}

swarm_deploy() { # $1: N
  local secret ids
  secret=$(swarm_secret)
  ids=$(swarm_node_ids) || die "cannot read the iridium user's ids from $IRIDIUM_IMAGE"
  # --resolve-image never: the image is local (no registry to ask).
  IRIDIUM_REPLICAS=$1 IRIDIUM_KEY_SECRET=$secret IRIDIUM_NODE_UID=${ids% *} IRIDIUM_NODE_GID=${ids#* } \
    docker stack deploy --resolve-image never --prune -c "$repo/deploy/swarm/stack.yaml" "$project" ||
    die "docker stack deploy failed"
  # Secrets of an older key (down --keys, then up): no task uses them now.
  docker secret ls --filter "label=io.iridium.stack=$project" --format '{{.Name}}' 2>/dev/null |
    grep -vxF "$secret" | xargs -r docker secret rm >/dev/null 2>&1 || true
}

swarm_up() { # $1: N
  local n=$1
  command -v docker >/dev/null 2>&1 || die "docker is not installed (Debian: apt-get install docker.io)"
  build_images
  ensure_key
  make_room "$n"
  swarm_ensure
  mapfile -t volumes < <(data_volumes)
  swarm_deploy "$n"
  ensure_cpu_weight "$n" # Docker makes its parent cgroup with the first container
  swarm_wait "$n"
  remove_unused_volumes "${volumes[@]}"
  show_ps
}

swarm_scale() { # $1: N
  local n=$1
  docker service inspect "$(swarm_service)" >/dev/null 2>&1 ||
    die "no $project stack runs; start it: scripts/cluster --engine swarm up $n"
  make_room "$n"
  docker service scale --detach "$(swarm_service)=$n" >/dev/null || die "docker service scale failed"
  swarm_wait "$n"
  show_ps
}

# Removes the stack and waits (bounded) until its containers and network
# are gone (stack rm returns at once), then its secrets, the volumes its
# tasks left, and the swarm if `up` made it.
swarm_down() {
  local deadline
  mapfile -t volumes < <(data_volumes)
  if [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ]; then
    docker stack rm "$project" >/dev/null 2>&1 || true
    deadline=$((SECONDS + 60))
    while [ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$project")$(docker network ls -q --filter "label=com.docker.stack.namespace=$project")" ]; do
      ((SECONDS < deadline)) || die "the $project stack's containers or network are still there after 60 s"
      sleep 1
    done
    docker secret ls -q --filter "label=io.iridium.stack=$project" | xargs -r docker secret rm >/dev/null ||
      echo "cluster: warning: could not remove the $project stack's secrets" >&2
  fi
  remove_unused_volumes "${volumes[@]}"
  swarm_release
}

# Every running task's log, each line prefixed with its alias ("node-2 | "),
# as compose's logs does; -f follows them all at once. (`docker service
# logs` takes a TTY service's logs only --raw, without saying whose.)
swarm_logs() { # $@: [-f]
  local slot c
  [ -n "$(swarm_containers)" ] || die "no running tasks; run: scripts/cluster --engine swarm up"
  while read -r _ slot c; do
    if [ $# -gt 0 ]; then
      docker logs "$@" "$c" 2>&1 | sed -u "s/^/node-$slot | /" &
    else
      docker logs "$c" 2>&1 | sed "s/^/node-$slot | /"
    fi
  done < <(swarm_containers)
  wait
}
