/* Types a command into whatever terminal this process can reach: TIOCSTI, one
 * character at a time, on fds 0, 1 and 2 and on /dev/tty (the controlling
 * terminal). Whatever lands in a terminal's input queue is read by the shell
 * that owns it as if its user had typed it.
 *
 * usage: tty-inject [TEXT]   (default "echo INJECTED\n")
 *
 * Prints one "tty-probe:" line per attempt, what it learnt about its session,
 * then "tty-probe: done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const char *text = "echo INJECTED\n";

static const char *inject(int fd) {
    for (const char *c = text; *c; c++)
        if (ioctl(fd, TIOCSTI, c) < 0)
            return strerror(errno);
    return "ok";
}

int main(int argc, char **argv) {
    if (argc > 1)
        text = argv[1];
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int fd = 0; fd < 3; fd++) {
        int tty = isatty(fd);
        const char *result = inject(fd);
        printf("tty-probe: fd%d isatty=%d tiocsti=%s\n", fd, tty, result);
    }
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty < 0) {
        printf("tty-probe: devtty open=%s\n", strerror(errno));
    } else {
        const char *result = inject(tty);
        printf("tty-probe: devtty open=ok tiocsti=%s\n", result);
    }
    /* A session whose leader is outside this pid namespace reads as 0. */
    printf("tty-probe: sid=%d parent_sid=%d pid=%d ppid=%d\n", getsid(0), getsid(getppid()),
           getpid(), getppid());
    printf("tty-probe: done\n");
    return 0;
}
