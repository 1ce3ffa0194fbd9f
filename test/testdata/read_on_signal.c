/* The private-image CRI test's container program: reads the files named before "--" at
 * once, prints "waiting", then waits for SIGUSR1 and reads the files after "--". So the
 * test decides when a lazy read happens (after a restart of the clip daemon, say). Each
 * file read prints "PATH: N bytes fnv1a64 HEX" or "PATH: error MESSAGE"; the exit status
 * is 0 when every read succeeded. Static, no dependency but libc.
 *
 *   read_on_signal /before.bin -- /after.bin */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int read_file(const char* path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    printf("%s: error %s\n", path, strerror(errno));
    return 1;
  }
  uint64_t h = 14695981039346656037ull, n = 0;
  static unsigned char buf[1 << 16];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      printf("%s: error %s\n", path, strerror(errno));
      close(fd);
      return 1;
    }
    if (r == 0) break;
    for (ssize_t i = 0; i < r; ++i) h = (h ^ buf[i]) * 1099511628211ull;
    n += (uint64_t)r;
  }
  close(fd);
  printf("%s: %llu bytes fnv1a64 %016llx\n", path, (unsigned long long)n, (unsigned long long)h);
  return 0;
}

int main(int argc, char** argv) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigprocmask(SIG_BLOCK, &set, 0);
  int failed = 0, i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; ++i) failed |= read_file(argv[i]);
  printf("waiting\n");
  fflush(stdout);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  for (++i; i < argc; ++i) failed |= read_file(argv[i]);
  fflush(stdout);
  return failed;
}
