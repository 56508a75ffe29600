/* PostgreSQL's waits, kept from libfaketime (testing/clock.py).
 *
 * libfaketime wraps epoll_wait and, while the real call blocks, answers the real time to any
 * caller. PostgreSQL's timeouts (lock_timeout, statement_timeout, deadlock_timeout) fire from a
 * SIGALRM handler that compares the time then with the moved deadline; a handler run during a
 * wait saw the real time, judged the deadline days away and put the alarm off: a lock wait or
 * a deadlock waited forever. Preloaded before libfaketime, this epoll_wait goes straight to
 * the kernel, so the handler sees the moved clock like the rest of the server. */
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    /* epoll_pwait with no signal mask is epoll_wait, and exists on every Linux architecture. */
    return (int) syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, NULL, (size_t) 8);
}
