/* bench_read.sh's reader: the same low-overhead workloads for clip's and overlayfs's
 * mounted rootfs, timed by itself (CLOCK_MONOTONIC, process start-up excluded).
 *
 *   bench_read files ROOT LIST   read every file named in LIST (paths relative to ROOT,
 *                                one per line), in order, whole, with 1 MiB read()s
 *   bench_read walk DIR          visit every entry under DIR (readdir) and lstat it
 *                                (fstatat AT_SYMLINK_NOFOLLOW); descend into directories
 *
 * Prints one line: `seconds=S files=N bytes=B` or `seconds=S entries=N`. Exits 1 on the
 * first error (a benchmark of a broken mount must not print a time). Static, libc only. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double Now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void Die(const char* what, const char* path) {
  fprintf(stderr, "bench_read: %s %s: %s\n", what, path, strerror(errno));
  exit(1);
}

static int ReadFiles(const char* root, const char* list) {
  /* The list is read before the clock starts. */
  FILE* f = fopen(list, "r");
  if (!f) Die("open", list);
  size_t cap = 1 << 16, n = 0;
  char** paths = malloc(cap * sizeof(char*));
  char* line = NULL;
  size_t line_cap = 0;
  ssize_t len;
  while ((len = getline(&line, &line_cap, f)) > 0) {
    if (line[len - 1] == '\n') line[--len] = 0;
    if (len == 0) continue;
    if (n == cap) paths = realloc(paths, (cap *= 2) * sizeof(char*));
    paths[n++] = strdup(line);
  }
  fclose(f);
  int dir = open(root, O_RDONLY | O_DIRECTORY);
  if (dir < 0) Die("open", root);
  const size_t kBuf = 1 << 20;
  char* buf = aligned_alloc(4096, kBuf);
  unsigned long long bytes = 0;
  double t0 = Now();
  for (size_t i = 0; i < n; ++i) {
    int fd = openat(dir, paths[i], O_RDONLY | O_NOFOLLOW);
    if (fd < 0) Die("open", paths[i]);
    ssize_t r;
    while ((r = read(fd, buf, kBuf)) > 0) bytes += r;
    if (r < 0) Die("read", paths[i]);
    close(fd);
  }
  double t1 = Now();
  printf("seconds=%.4f files=%zu bytes=%llu\n", t1 - t0, n, bytes);
  return 0;
}

static unsigned long long entries;

static void Walk(int parent, const char* name, const char* shown) {
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (fd < 0) Die("opendir", shown);
  DIR* d = fdopendir(fd);
  if (!d) Die("fdopendir", shown);
  struct dirent* e;
  struct stat st;
  errno = 0;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
      continue;
    if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) Die("lstat", e->d_name);
    ++entries;
    if (S_ISDIR(st.st_mode)) Walk(fd, e->d_name, e->d_name);
    errno = 0;
  }
  if (errno != 0) Die("readdir", shown);
  closedir(d);
}

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "files") == 0) return ReadFiles(argv[2], argv[3]);
  if (argc == 3 && strcmp(argv[1], "walk") == 0) {
    struct stat st;
    double t0 = Now();
    if (lstat(argv[2], &st) != 0) Die("lstat", argv[2]);
    Walk(AT_FDCWD, argv[2], argv[2]);
    double t1 = Now();
    printf("seconds=%.4f entries=%llu\n", t1 - t0, entries);
    return 0;
  }
  fprintf(stderr, "usage: bench_read files ROOT LIST | bench_read walk DIR\n");
  return 2;
}
