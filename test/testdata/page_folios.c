/* page_folios: how a file's page-cache pages are made up, for the read-path benchmark's
 * notes (BENCHMARKS.md, issue 16): maps the first 64 MB of FILE, touches every page, and
 * counts, through /proc/self/pagemap and /proc/kpageflags (root only), the pages that
 * head a large folio (compound head), belong to one (tail), or stand alone (order 0).
 *
 *   gcc -O2 -o page_folios test/testdata/page_folios.c && ./page_folios FILE
 *
 * Prints `FILE: compound heads H tails T small S`. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: page_folios FILE\n");
    return 2;
  }
  int fd = open(argv[1], O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
    perror(argv[1]);
    return 1;
  }
  size_t size = st.st_size > (64 << 20) ? (64 << 20) : (size_t)st.st_size;
  volatile char* p = mmap(0, size, PROT_READ, MAP_SHARED, fd, 0);
  int pm = open("/proc/self/pagemap", O_RDONLY), kf = open("/proc/kpageflags", O_RDONLY);
  if (p == MAP_FAILED || pm < 0 || kf < 0) {
    perror("mmap, pagemap or kpageflags");
    return 1;
  }
  long head = 0, tail = 0, small = 0;
  for (size_t o = 0; o < size; o += 4096) (void)p[o];
  for (size_t o = 0; o < size; o += 4096) {
    uint64_t e, f;
    if (pread(pm, &e, 8, (off_t)(((uintptr_t)p + o) / 4096 * 8)) != 8 || !(e >> 63)) continue;
    uint64_t pfn = e & ((1ULL << 55) - 1);
    if (pread(kf, &f, 8, (off_t)(pfn * 8)) != 8) continue;
    if (f & (1ULL << 15)) {
      head++;  /* KPF_COMPOUND_HEAD */
    } else if (f & (1ULL << 16)) {
      tail++;  /* KPF_COMPOUND_TAIL */
    } else {
      small++;
    }
  }
  printf("%s: compound heads %ld tails %ld small %ld\n", argv[1], head, tail, small);
  return 0;
}
