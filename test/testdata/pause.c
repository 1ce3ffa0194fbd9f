/* The CRI test's sandbox ("pause") program: waits for SIGTERM or SIGINT and exits 0.
 * As a pod's PID 1 it also reaps children that end in its PID namespace. */
#include <signal.h>
#include <sys/wait.h>

int main(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, 0);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGCHLD) {
      while (waitpid(-1, 0, WNOHANG) > 0) {
      }
      continue;
    }
    return 0;
  }
}
