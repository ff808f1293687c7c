/* Tries what docker's default seccomp profile refuses, and some ordinary work, each in
 * its own child (a success, such as a new user namespace, must not change the next
 * attempt), and prints one line per attempt: NAME=0 on success, NAME=ERRNO otherwise.
 *
 * The calls are chosen so that, without a seccomp filter, none of them fails with EPERM
 * here: either they succeed, or their arguments are refused before any permission check
 * (a bpf attribute larger than a page, a perf attribute with a size too small, a mount on
 * a path that does not exist). So EPERM can only come from the filter. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#define ABSENT "/basic-docker-absent-mount-point"

static int result(long ret) { return ret < 0 ? errno : 0; }

static int unshare_user(void) { return result(unshare(CLONE_NEWUSER)); }

static int clone_newuser(void) {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        syscall(SYS_exit, 0);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return result(pid);
}

static int clone3_call(void) { return result(syscall(SYS_clone3, NULL, 0)); }

static int keyctl_call(void) {
    /* KEYCTL_GET_KEYRING_ID of KEY_SPEC_SESSION_KEYRING, without creating it */
    return result(syscall(SYS_keyctl, 0, -3, 0));
}

static int add_key_call(void) {
    /* into KEY_SPEC_PROCESS_KEYRING */
    return result(syscall(SYS_add_key, "user", "basic-docker-attack", "x", 1, -2));
}

static int request_key_call(void) {
    return result(syscall(SYS_request_key, "user", "basic-docker-absent", NULL, 0));
}

static int io_uring_setup_call(void) {
    unsigned char params[120];
    memset(params, 0, sizeof params);
    return result(syscall(SYS_io_uring_setup, 1, params));
}

static int bpf_call(void) {
    static char attr[8192];
    return result(syscall(SYS_bpf, 0, attr, sizeof attr));
}

static int perf_event_open_call(void) {
    unsigned int attr[32];
    memset(attr, 0, sizeof attr);
    attr[1] = 1; /* perf_event_attr.size */
    return result(syscall(SYS_perf_event_open, attr, 0, -1, -1, 0));
}

static int mount_tmpfs(void) { return result(mount("tmpfs", ABSENT, "tmpfs", 0, NULL)); }

static int mount_cgroup(void) { return result(mount("cgroup", ABSENT, "cgroup", 0, "memory")); }

static int userfaultfd_call(void) {
    return result(syscall(SYS_userfaultfd, 1 /* UFFD_USER_MODE_ONLY */));
}

static int socket_alg(void) { return result(socket(38 /* AF_ALG */, SOCK_SEQPACKET, 0)); }

static int socket_vsock(void) { return result(socket(40 /* AF_VSOCK */, SOCK_STREAM, 0)); }

static int personality_exec(void) {
    return result(syscall(SYS_personality, 0x0400000 /* READ_IMPLIES_EXEC */));
}

/* Ordinary work that must keep working. */
static int ordinary_sockets(void) {
    int pair[2];
    char buf[2];
    struct sockaddr_in any = {.sin_family = AF_INET};
    socklen_t len = sizeof any;
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (udp < 0 || bind(udp, (struct sockaddr *)&any, sizeof any) ||
        getsockname(udp, (struct sockaddr *)&any, &len))
        return errno;
    if (socket(AF_INET6, SOCK_STREAM, 0) < 0 || socket(AF_NETLINK, SOCK_RAW, 0) < 0)
        return errno;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) || write(pair[0], "ok", 2) != 2 ||
        read(pair[1], buf, 2) != 2)
        return errno;
    return 0;
}

static int ordinary_fork(void) {
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return result(pid);
}

static int ordinary_personality(void) { return result(syscall(SYS_personality, 0xffffffff)); }

static const struct {
    const char *name;
    int (*attempt)(void);
} attempts[] = {
    {"unshare_user", unshare_user},
    {"clone_newuser", clone_newuser},
    {"clone3", clone3_call},
    {"keyctl", keyctl_call},
    {"add_key", add_key_call},
    {"request_key", request_key_call},
    {"io_uring_setup", io_uring_setup_call},
    {"bpf", bpf_call},
    {"perf_event_open", perf_event_open_call},
    {"mount_tmpfs", mount_tmpfs},
    {"mount_cgroup", mount_cgroup},
    {"userfaultfd", userfaultfd_call},
    {"socket_alg", socket_alg},
    {"socket_vsock", socket_vsock},
    {"personality_exec", personality_exec},
    {"ordinary_sockets", ordinary_sockets},
    {"ordinary_fork", ordinary_fork},
    {"ordinary_personality", ordinary_personality},
};

int main(void) {
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        int status = 0;
        pid_t pid = fork();
        if (pid < 0) {
            printf("%s=fork-failed-%d\n", attempts[i].name, errno);
            continue;
        }
        if (pid == 0)
            _exit(attempts[i].attempt());
        waitpid(pid, &status, 0);
        if (WIFEXITED(status))
            printf("%s=%d\n", attempts[i].name, WEXITSTATUS(status));
        else
            printf("%s=signal-%d\n", attempts[i].name, WTERMSIG(status));
    }
    return 0;
}
