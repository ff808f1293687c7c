#!/usr/bin/python3
"""The runtime-spec points of issue 12, probed on any runtime with runc's command line.

Each probe builds a busybox bundle, runs the runtime as the spec's text says a runtime
is driven, and says PASS or FAIL with what it saw. Written from the runtime spec
(config.md, runtime.md); it is no copy of the OCI validation suite, which stays outside
the project (scripts/oci-validation.sh runs that one when it is available).

Usage: oci-probes.py NAME=COMMAND [NAME=COMMAND ...]   (COMMAND may contain spaces)
Prints one table row per probe and the pass count per runtime. Root only.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

BUSYBOX = "/bin/busybox"


def sh(cmd, **kw):
    """Runs `cmd`; its output goes through files, not pipes: a created container's init
    inherits the runtime's stdout and stderr and keeps them open, so a pipe would not end
    when `create` returns."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                               timeout=60, **kw)
            code = r.returncode
        except subprocess.TimeoutExpired:
            code = -1
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, code, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


class Runtime:
    def __init__(self, name, command, work):
        self.name = name
        self.argv = shlex.split(command)
        self.root = os.path.join(work, "state-" + name)
        os.makedirs(self.root, exist_ok=True)

    def __call__(self, *args, **kw):
        return sh(self.argv + ["--root", self.root] + list(args), **kw)


def make_bundle(work, args, edit=None):
    bundle = tempfile.mkdtemp(dir=work, prefix="bundle-")
    rootfs = os.path.join(bundle, "rootfs")
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"]:
        os.makedirs(os.path.join(rootfs, d))
    shutil.copy(BUSYBOX, os.path.join(rootfs, "bin/busybox"))
    applets = sh([BUSYBOX, "--list"]).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(rootfs, "bin", a))
    sh(["runc", "spec", "--bundle", bundle])
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["root"]["readonly"] = False
    if edit:
        edit(spec, bundle)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    return bundle


def cid(name):
    return "probe-%s-%d-%d" % (name, os.getpid(), int(time.time() * 1000) % 100000)


def wait_stopped(rt, id_, limit=10):
    end = time.time() + limit
    while time.time() < end:
        out = rt("state", id_)
        if out.returncode != 0 or '"stopped"' in out.stdout:
            return
        time.sleep(0.05)


def hook(script, timeout=10):
    return {"path": "/bin/sh", "args": ["sh", "-c", script], "timeout": timeout}


# --- the probes: each returns (passed, what was seen) ------------------------------------


def probe_hooks_order_and_stdin(rt, work):
    out = tempfile.mkdtemp(dir=work, prefix="hooks-")

    def rec(name):
        return hook("cat > %s/%s.json; echo %s >> %s/order" % (out, name, name, out))

    def edit(s, b):
        s["hooks"] = {k: [rec(k)] for k in ["prestart", "createRuntime", "createContainer",
                                             "poststart", "poststop"]}
        s["hooks"]["startContainer"] = [hook("cat > /tmp/startContainer.json")]

    b = make_bundle(work, ["true"], edit)
    i = cid("hooks")
    r = rt("create", "--bundle", b, i)
    if r.returncode != 0:
        return False, "create: " + r.stderr.strip()[:200]
    after_create = open(out + "/order").read().split() if os.path.exists(out + "/order") else []
    rt("start", i)
    wait_stopped(rt, i)
    rt("delete", i)
    order = open(out + "/order").read().split() if os.path.exists(out + "/order") else []
    want = ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    states = {}
    for k in ["prestart", "poststart", "poststop"]:
        try:
            states[k] = json.load(open("%s/%s.json" % (out, k)))
        except Exception:
            states[k] = {}
    start_ok = os.path.exists(os.path.join(b, "rootfs/tmp/startContainer.json"))
    ok = (after_create == want[:3] and order == want and start_ok
          and states["prestart"].get("id") == i and states["poststart"].get("status") == "running"
          and states["poststop"].get("id") == i)
    return ok, "order %s, startContainer %s, poststart status %r" % (
        ",".join(order) or "-", "ran" if start_ok else "missing",
        states["poststart"].get("status"))


def probe_create_hook_failure(rt, work):
    def edit(s, b):
        s["hooks"] = {"createRuntime": [hook("exit 3")]}
    b = make_bundle(work, ["true"], edit)
    i = cid("crfail")
    r = rt("create", "--bundle", b, i)
    gone = rt("state", i).returncode != 0
    rt("delete", "--force", i)
    return r.returncode != 0 and gone, "create rc %d, container %s" % (
        r.returncode, "gone" if gone else "left")


def probe_poststart_failure_warns(rt, work):
    def edit(s, b):
        s["hooks"] = {"poststart": [hook("exit 4")]}
    b = make_bundle(work, ["sleep", "5"], edit)
    i = cid("psfail")
    rt("create", "--bundle", b, i)
    r = rt("start", i)
    rt("delete", "--force", i)
    return r.returncode == 0, "start rc %d" % r.returncode


def probe_hook_timeout(rt, work):
    def edit(s, b):
        s["hooks"] = {"createRuntime": [hook("sleep 60", timeout=1)]}
    b = make_bundle(work, ["true"], edit)
    i = cid("timeout")
    t = time.time()
    r = rt("create", "--bundle", b, i)
    took = time.time() - t
    rt("delete", "--force", i)
    return r.returncode != 0 and took < 10, "create rc %d after %.1f s" % (r.returncode, took)


def probe_relative_hook_path(rt, work):
    def edit(s, b):
        s["hooks"] = {"prestart": [{"path": "bin/sh"}]}
    b = make_bundle(work, ["true"], edit)
    i = cid("relhook")
    r = rt("create", "--bundle", b, i)
    rt("delete", "--force", i)
    return r.returncode != 0, "create rc %d: %s" % (r.returncode, r.stderr.strip()[:120])


def root_fields(mountinfo):
    for line in mountinfo.splitlines():
        f = line.split(" ")
        if len(f) > 6 and f[4] == "/":
            return " ".join(f[6:f.index("-")])
    return "?"


def probe_rootfs_propagation(rt, work):
    seen = []
    ok = True
    for prop, want in [("shared", "shared:"), ("unbindable", "unbindable"), ("private", "")]:
        b = make_bundle(work, ["cat", "/proc/self/mountinfo"],
                        lambda s, _b, p=prop: s["linux"].__setitem__("rootfsPropagation", p))
        r = rt("run", "--bundle", b, cid("prop"))
        got = root_fields(r.stdout) if r.returncode == 0 else "error"
        good = r.returncode == 0 and (want in got if want else
                                      not any(x in got for x in ["shared:", "unbindable"]))
        ok = ok and good
        seen.append("%s:%s" % (prop, "ok" if good else got or "none"))
    return ok, " ".join(seen)


def probe_linux_devices(rt, work):
    def edit(s, b):
        s["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                  "fileMode": 438, "uid": 0, "gid": 0}]
    b = make_bundle(work, ["sh", "-c", "ls -l /dev/fuse; exec 3<>/dev/fuse && echo opened"],
                    edit)
    r = rt("run", "--bundle", b, cid("dev"))
    return "opened" in r.stdout, (r.stdout.strip() + " " + r.stderr.strip())[:160]


def probe_mount_ns_path(rt, work):
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "30"])
    try:
        host = os.readlink("/proc/self/ns/mnt")
        path = "/proc/%d/ns/mnt" % holder.pid
        end = time.time() + 5
        while os.readlink(path) == host and time.time() < end:
            time.sleep(0.01)
        theirs = os.readlink(path)

        def edit(s, b):
            for n in s["linux"]["namespaces"]:
                if n["type"] == "mount":
                    n["path"] = path
        b = make_bundle(work, ["readlink", "/proc/self/ns/mnt"], edit)
        r = rt("run", "--bundle", b, cid("mntns"))
        return r.stdout.strip() == theirs, (r.stdout.strip() or r.stderr.strip())[:120]
    finally:
        holder.kill()
        holder.wait()


def probe_mount_label(rt, work):
    def edit(s, b):
        s["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0:c1,c2"
    b = make_bundle(work, ["echo", "labelled"], edit)
    r = rt("run", "--bundle", b, cid("label"))
    return "labelled" in r.stdout, (r.stdout.strip() or r.stderr.strip())[:120]


def probe_delete_created(rt, work):
    b = make_bundle(work, ["sleep", "30"])
    i = cid("delcreated")
    rt("create", "--bundle", b, i)
    r = rt("delete", i)
    still = '"created"' in rt("state", i).stdout
    rt("delete", "--force", i)
    return r.returncode != 0 and still, "delete rc %d, container %s" % (
        r.returncode, "still created" if still else "gone")


def probe_oci_version(rt, work):
    b = make_bundle(work, ["true"], lambda s, _b: s.__setitem__("ociVersion", "invalid"))
    i = cid("version")
    r = rt("create", "--bundle", b, i)
    rt("delete", "--force", i)
    return r.returncode != 0, "create rc %d" % r.returncode


def probe_closed_stdout(rt, work):
    rd, wr = os.pipe()
    os.close(rd)
    try:
        r = subprocess.run(rt.argv + ["--root", rt.root, "list"], stdout=wr,
                           stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(wr)
    ok = "panic" not in r.stderr and r.returncode != 101
    return ok, "list rc %d" % r.returncode


def first_disk():
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith(("loop", "ram", "zram")):
            continue
        try:
            return open("/sys/block/%s/dev" % name).read().strip().split(":")
        except OSError:
            pass
    return None


def probe_blkio_throttle(rt, work):
    disk = first_disk()
    if not disk:
        return None, "no disk"
    maj, mnr = int(disk[0]), int(disk[1])

    def edit(s, b):
        s["linux"]["resources"]["blockIO"] = {
            "throttleReadBpsDevice": [{"major": maj, "minor": mnr, "rate": 1048576}]}
    b = make_bundle(work, ["sh", "-c",
                           "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device 2>/dev/null"
                           " || cat /sys/fs/cgroup/io.max"], edit)
    r = rt("run", "--bundle", b, cid("blkio"))
    return "1048576" in r.stdout, (r.stdout.strip() or r.stderr.strip())[:120]


def probe_hugetlb(rt, work):
    if not os.path.exists("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        return None, "no 2MB pages"

    def edit(s, b):
        s["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4194304}]
    b = make_bundle(work, ["true"], edit)
    r = rt("run", "--bundle", b, cid("huge"))
    return r.returncode == 0, "run rc %d %s" % (r.returncode, r.stderr.strip()[:100])


PROBES = [
    ("hooks: six moments, order, state on stdin", probe_hooks_order_and_stdin),
    ("hooks: failing createRuntime fails create", probe_create_hook_failure),
    ("hooks: failing poststart only warns", probe_poststart_failure_warns),
    ("hooks: timeout kills the hook", probe_hook_timeout),
    ("hooks: relative path refused", probe_relative_hook_path),
    ("rootfsPropagation shared/unbindable/private", probe_rootfs_propagation),
    ("linux.devices usable under deny-all", probe_linux_devices),
    ("mount namespace joined by path", probe_mount_ns_path),
    ("linux.mountLabel without SELinux runs", probe_mount_label),
    ("delete of a created container fails", probe_delete_created),
    ("ociVersion \"invalid\" refused", probe_oci_version),
    ("closed stdout: no panic", probe_closed_stdout),
    ("blockIO throttle reaches the cgroup", probe_blkio_throttle),
    ("hugetlb limit (this host: cgroup2 mount)", probe_hugetlb),
]


def main():
    if os.geteuid() != 0:
        sys.exit("oci-probes.py: run as root")
    runtimes = [a.split("=", 1) for a in sys.argv[1:]]
    if not runtimes:
        sys.exit(__doc__)
    work = tempfile.mkdtemp(prefix="oci-probes-")
    passed = {name: 0 for name, _ in runtimes}
    try:
        rts = [Runtime(name, cmd, work) for name, cmd in runtimes]
        print("| spec point | " + " | ".join(r.name for r in rts) + " |")
        print("|---|" + "---|" * len(rts))
        for title, probe in PROBES:
            cells = []
            for rt in rts:
                try:
                    ok, seen = probe(rt, work)
                except Exception as e:  # a probe that breaks says so and the rest go on
                    ok, seen = False, "probe error: %s" % e
                if ok:
                    passed[rt.name] += 1
                mark = {True: "PASS", False: "FAIL", None: "n/a"}[ok]
                cells.append("%s (%s)" % (mark, seen.replace("|", "/").replace("\n", " ")))
            print("| %s | %s |" % (title, " | ".join(cells)), flush=True)
        print()
        for name, _ in runtimes:
            print("%s: %d of %d probes passed" % (name, passed[name], len(PROBES)))
    finally:
        subprocess.run(["umount", "-R", "-l", work], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
