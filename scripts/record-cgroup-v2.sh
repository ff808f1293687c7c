#!/usr/bin/env bash
# Records real cgroup v2 and /proc files for basic-monitor's parser tests.
#
# Boots a throwaway QEMU VM (KVM when the host has hardware virtualisation,
# QEMU's own emulator otherwise) with Debian's own kernel on a pure cgroup v2
# hierarchy (cgroup_no_v1=all), runs a known workload in a container-like
# cgroup, and writes what the kernel reported, as plain text files, to
#   crates/monitor/tests/data/v2-recorded-<kernel release>/
# (or to the directory given as $1), with an expected.json describing the
# workload and a RECORDING.md saying how it was recorded.
#
# Run by hand, as root, on a Debian machine; not part of CI.
# The kernel package is downloaded and unpacked into a temporary directory,
# never installed (installing would run initramfs and bootloader hooks).
#
# Environment:
#   LINUX_IMAGE_PKG  kernel package to boot (default: what linux-image-amd64 depends on)
#   VM_TIMEOUT       seconds before the VM is given up on (default 300)
#   QEMU_ACCEL       kvm or tcg (default: kvm with kvm_intel/kvm_amd loaded, else tcg)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
timeout_s=${VM_TIMEOUT:-300}

die() { echo "record-cgroup-v2: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs packages)"

# A /dev/kvm backed by kvm_pvm (a paravirtual KVM for machines without
# VT-x/AMD-V) runs only PVM-enabled guest kernels; Debian's stock kernel sits
# in its decompressor for minutes there. The emulator boots it in seconds.
# Either way the kernel, and so every recorded file, is the same.
accel=${QEMU_ACCEL:-}
if [ -z "$accel" ]; then
    if [ -c /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
        accel=kvm
    else
        accel=tcg
    fi
fi
case $accel in
kvm)
    accel_args=(-enable-kvm)
    accel_note="KVM"
    ;;
tcg)
    accel_args=(-accel tcg,thread=multi -cpu max)
    accel_note="QEMU's TCG emulator (the host had no hardware-virtualisation KVM able to boot a stock kernel)"
    ;;
*) die "QEMU_ACCEL must be kvm or tcg, not '$accel'" ;;
esac

need_pkgs=()
dpkg -s qemu-system-x86 >/dev/null 2>&1 || need_pkgs+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
dpkg -s kmod >/dev/null 2>&1 || need_pkgs+=(kmod)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}"
fi

work=$(mktemp -d /tmp/record-cgroup-v2.XXXXXX)
trap 'rm -rf "$work"' EXIT

# --- The kernel: Debian's package, unpacked, not installed. ---------------
pkg=${LINUX_IMAGE_PKG:-$(apt-cache depends linux-image-amd64 |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')}
[ -n "$pkg" ] || die "could not resolve linux-image-amd64 to a kernel package"
(cd "$work" && apt-get download "$pkg") || die "apt-get download $pkg failed"
deb=$(ls "$work"/"$pkg"_*.deb)
pkg_version=$(dpkg-deb -f "$deb" Version)
dpkg-deb -x "$deb" "$work/kernel"
kver=$(ls "$work/kernel/lib/modules")
vmlinuz="$work/kernel/boot/vmlinuz-$kver"
config="$work/kernel/boot/config-$kver"
[ -f "$vmlinuz" ] || die "$deb has no boot/vmlinuz-$kver"

# --- The initramfs: busybox, the modules the disks need, the workload. ----
initrd="$work/initrd"
mkdir -p "$initrd"/{bin,dev,proc,sys,mnt,rec,lib/modules}
cp /bin/busybox "$initrd/bin/busybox"

# Modules for virtio disks, in load order (dependencies first). Debian builds
# most of virtio as modules; anything built in (=y) needs nothing.
moddir="$work/kernel/lib/modules/$kver"
loaded=()
add_module() {
    local name=$1 file dep
    for m in "${loaded[@]+"${loaded[@]}"}"; do [ "$m" = "$name" ] && return 0; done
    file=$(find "$moddir" \( -name "$name.ko" -o -name "${name//_/-}.ko" \) -print -quit)
    [ -n "$file" ] || die "module $name not found in $pkg"
    for dep in $(modinfo -F depends "$file" | tr ',' ' '); do add_module "$dep"; done
    cp "$file" "$initrd/lib/modules/$name.ko"
    echo "$name.ko" >>"$initrd/lib/modules/load"
    loaded+=("$name")
}
: >"$initrd/lib/modules/load"
for opt in VIRTIO VIRTIO_PCI VIRTIO_BLK; do
    case $(grep "^CONFIG_$opt=" "$config" | cut -d= -f2) in
    y) ;;
    m) add_module "$(echo "$opt" | tr 'A-Z' 'a-z')" ;;
    *) die "$pkg's kernel lacks CONFIG_$opt" ;;
    esac
done
for opt in CGROUPS MEMCG BLK_CGROUP CFS_BANDWIDTH CGROUP_PIDS TMPFS DEVTMPFS; do
    grep -q "^CONFIG_$opt=y" "$config" || die "$pkg's kernel lacks CONFIG_$opt=y"
done

cat >"$initrd/init" <<'GUEST'
#!/bin/busybox sh
# PID 1 of the recording VM. Any failure ends the VM without the success
# marker; the host then reports the console log.
/bin/busybox --install -s /bin
export PATH=/bin
set -eu
fail() { echo "RECORD-FAILED: $*"; reboot -f; }
trap 'fail "line $LINENO"' EXIT

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "/lib/modules/$m"; done </lib/modules/load
for i in $(seq 50); do [ -b /dev/vdb ] && break; sleep 0.1; done
[ -b /dev/vda ] && [ -b /dev/vdb ] || fail "virtio disks did not appear"
mount -t cgroup2 cgroup2 /sys/fs/cgroup
grep -q ' cgroup ' /proc/mounts && fail "a cgroup v1 hierarchy is mounted"

CTRL="+cpu +memory +io +pids"
echo "$CTRL" >/sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/basic-docker
echo "$CTRL" >/sys/fs/cgroup/basic-docker/cgroup.subtree_control
ID=$(cat /proc/sys/kernel/random/uuid /proc/sys/kernel/random/uuid | tr -d '\n-')
REL=/basic-docker/$ID
C=/sys/fs/cgroup$REL
mkdir "$C"
echo 64M >"$C/memory.max"
echo 20 >"$C/pids.max"
echo "50000 100000" >"$C/cpu.max"

# `sh -c "$IN" CGROUP CMD...` runs CMD as a process that first moves itself
# into CGROUP; backgrounded, $! is CMD's pid.
IN='echo $$ >"$0/cgroup.procs" && exec "$@"'
wait_pids() { for i in $(seq 100); do [ "$(cat "$C/pids.current")" = "$1" ] && return 0; sleep 0.1; done; fail "pids.current never reached $1"; }

# 1. A memory-limit hit in a child cgroup: its oom/oom_kill events count in
#    the container's hierarchical memory.events. A cgroup with controllers
#    enabled for children cannot hold processes, so the child is removed and
#    the controller disabled again before the workload moves in.
echo +memory >"$C/cgroup.subtree_control"
mkdir "$C/oom-probe"
echo 16M >"$C/oom-probe/memory.max"
oom_status=0
sh -c "$IN" "$C/oom-probe" awk 'BEGIN { s = "x"; while (1) s = s s }' || oom_status=$?
[ "$oom_status" = 137 ] || fail "the probe was not OOM-killed (exit status $oom_status)"
for i in $(seq 50); do rmdir "$C/oom-probe" 2>/dev/null && break; sleep 0.1; done
[ ! -d "$C/oom-probe" ] || fail "oom-probe cgroup could not be removed"
echo -memory >"$C/cgroup.subtree_control"

# 2. Memory held without a process: a tmpfs file written from inside the
#    cgroup is charged to it as shmem.
HELD_MIB=30
mkdir /mnt/shm
mount -t tmpfs -o size=48M tmpfs /mnt/shm
sh -c "$IN" "$C" dd if=/dev/zero of=/mnt/shm/held bs=1M count=$HELD_MIB 2>/dev/null

# 3. Block I/O of known sizes on two devices, direct so nothing is served
#    from the cache; then a buffered read of a region not read before, whose
#    page cache is charged to the cgroup (memory.stat file, inactive_file).
WRITE_MIB=8
READ_MIB=4
OTHER_READ_MIB=1
CACHED_MIB=4
sh -c "$IN" "$C" dd if=/dev/zero of=/dev/vda bs=1M count=$WRITE_MIB oflag=direct 2>/dev/null
sh -c "$IN" "$C" dd if=/dev/vda of=/dev/null bs=1M count=$READ_MIB iflag=direct 2>/dev/null
sh -c "$IN" "$C" dd if=/dev/vdb of=/dev/null bs=1M count=$OTHER_READ_MIB iflag=direct 2>/dev/null
# The last close of a block device drops its page cache: init keeps it open.
exec 9</dev/vda
sh -c "$IN" "$C" dd if=/dev/vda of=/dev/null bs=1M count=$CACHED_MIB skip=32 2>/dev/null
VDA=$(cat /sys/block/vda/dev)
VDB=$(cat /sys/block/vdb/dev)

# 4. Sleepers, and a CPU burner held to half a core by cpu.max.
SLEEPERS=5
sleepers=""
for i in $(seq $SLEEPERS); do
    sh -c "$IN" "$C" sleep 100000 &
    sleepers="$sleepers${sleepers:+,}$!"
done
sh -c "$IN" "$C" sh -c 'while :; do :; done' &
burner=$!
wait_pids $((SLEEPERS + 1))
BURN_S=3
sleep $BURN_S

# 5. The recording: every readable file of the cgroup, the root's and the
#    parent's controller lists, and the /proc and /sys files the samplers read.
R=/rec
copy() { mkdir -p "$(dirname "$2")"; cat "$1" >"$2" 2>/dev/null || rm -f "$2"; }
for f in "$C"/cgroup.* "$C"/cpu.* "$C"/memory.* "$C"/io.* "$C"/pids.*; do
    [ -f "$f" ] && copy "$f" "$R/cgroup$REL/${f##*/}"
done
for d in "" /basic-docker; do
    for f in cgroup.controllers cgroup.subtree_control; do
        copy "/sys/fs/cgroup$d/$f" "$R/cgroup$d/$f"
    done
done
for pid in $(echo "$sleepers" | tr ',' ' ') $burner; do
    for f in stat status io cgroup limits net/dev; do copy "/proc/$pid/$f" "$R/proc/$pid/$f"; done
done
for f in self/mountinfo stat meminfo loadavg uptime net/dev; do copy "/proc/$f" "$R/proc/$f"; done
copy /sys/devices/system/cpu/online "$R/sys/devices/system/cpu/online"

cat >"$R/expected.json" <<JSON
{
  "kernel_release": "$(uname -r)",
  "kernel_version": "$(uname -v)",
  "cpus": $(nproc),
  "vm_memory_bytes": $((512 << 20)),
  "recorded_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "cgroup_root": "cgroup",
  "proc_root": "proc",
  "sys_root": "sys",
  "cgroup_path": "$REL",
  "container_id": "$ID",
  "limits": { "memory_max_bytes": $((64 << 20)), "pids_max": 20, "cpu_quota_us": 50000, "cpu_period_us": 100000 },
  "memory_held_bytes": $((HELD_MIB << 20)),
  "memory_held_as": "tmpfs file written from inside the cgroup (shmem)",
  "pids": { "count": $((SLEEPERS + 1)), "burner": $burner, "sleepers": [$sleepers] },
  "cpu_burn_seconds": $BURN_S,
  "io": {
    "devices": [
      { "device": "$VDA", "written_bytes": $((WRITE_MIB << 20)), "read_bytes": $(((READ_MIB + CACHED_MIB) << 20)) },
      { "device": "$VDB", "written_bytes": 0, "read_bytes": $((OTHER_READ_MIB << 20)) }
    ],
    "page_cache_bytes": $((CACHED_MIB << 20))
  },
  "oom": { "child_cgroup": "$REL/oom-probe", "child_memory_max_bytes": $((16 << 20)), "probe_exit_status": $oom_status, "oom_kills": 1 }
}
JSON

tar -cf /dev/vdb -C "$R" .
sync
trap - EXIT
echo "RECORD-OK"
reboot -f
GUEST
chmod 755 "$initrd/init"
(cd "$initrd" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initrd.gz"

# --- Boot. -----------------------------------------------------------------
truncate -s 64M "$work/io.img"
truncate -s 16M "$work/out.img"
cmdline="console=ttyS0 cgroup_no_v1=all psi=1 panic=-1 quiet"
qemu_version=$(qemu-system-x86_64 --version | head -n1)
echo "record-cgroup-v2: booting $pkg ($pkg_version) under $qemu_version, accelerator $accel"
timeout "$timeout_s" qemu-system-x86_64 "${accel_args[@]}" -smp 2 -m 512M \
    -nographic -no-reboot -nic none \
    -kernel "$vmlinuz" -initrd "$work/initrd.gz" -append "$cmdline" \
    -drive file="$work/io.img",format=raw,if=virtio \
    -drive file="$work/out.img",format=raw,if=virtio \
    </dev/null >"$work/console.log" 2>&1 || true
tr -d '\r' <"$work/console.log" >"$work/console.txt"
if ! grep -q '^RECORD-OK$' "$work/console.txt"; then
    tail -n 40 "$work/console.txt" >&2
    die "the VM did not finish the recording (console above)"
fi

# --- Into the repository. --------------------------------------------------
out=${1:-$repo/crates/monitor/tests/data/v2-recorded-$kver}
if [ -e "$out" ] && [ ! -f "$out/expected.json" ] && [ -n "$(ls -A "$out")" ]; then
    die "$out exists and is not an earlier recording; not replacing it"
fi
rm -rf "$out"
mkdir -p "$out"
tar -xf "$work/out.img" -C "$out"
[ -f "$out/expected.json" ] || die "the recording has no expected.json"
cat >"$out/RECORDING.md" <<EOF
# How this recording was made

- Script: \`scripts/record-cgroup-v2.sh\` (run as root on the host)
- Kernel: Debian package \`$pkg\` version \`$pkg_version\` (release \`$kver\`),
  unpacked with \`dpkg-deb -x\`, booted directly with QEMU's \`-kernel\`
- VM: \`$qemu_version\`, $accel_note, 2 vCPUs, 512 MiB, two raw virtio disks
  (the workload's block I/O goes to \`vda\`; the recording leaves on \`vdb\` as a tar)
- Kernel command line: \`$cmdline\` — cgroup2 alone is mounted at \`/sys/fs/cgroup\`
- Init: busybox-static $(dpkg-query -W -f '${Version}' busybox-static) as a shell script
  (the \`GUEST\` heredoc in the script)
- Recorded: $(date -u +%Y-%m-%d) (UTC)

\`expected.json\` was written inside the VM by the same script and says what
the workload did; the files are exactly what the kernel returned.
EOF
echo "record-cgroup-v2: recorded into $out"
