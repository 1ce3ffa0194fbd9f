/* The takeover test's container program: reads files of its image over and over and
 * checks every byte against SHA-256 sums stored in the image, while the test kills and
 * restarts the clip daemon underneath. It counts what a workload would see:
 *
 *   reads   files (or blocks) read in full and verified
 *   failed  syscalls that failed (open, read, close; each distinct errno printed once)
 *   wrong   reads whose bytes did not match their SHA-256 sum
 *   max_read_ms  longest read of one whole file or block (open to close)
 *   max_call_ms  longest single syscall
 *
 *   reader [-m MANIFEST] [-b BLOCKS] [-t THREADS] [-d SECONDS] [-s STOPFILE] [-n PASSES]
 *          [-r RESETFILE]
 *
 * MANIFEST lines are `sha256sum` output (`HEX  PATH`): the main thread reads them in
 * order, pass after pass. BLOCKS lines are `HEX PATH OFFSET LENGTH`: THREADS threads read
 * random blocks concurrently with pread (even threads keep each file open for their
 * whole life, odd ones open it for every block), so reads are in flight at any moment.
 * "reader: pass 1 done" is printed once every file was read (lazily fetched) once; the
 * two maxima start again from 0 once RESETFILE exists (so they measure what follows,
 * not the first fetches). Stops after PASSES passes, after SECONDS, or once STOPFILE exists, whichever is first;
 * then prints `reads=N failed=N wrong=N max_read_ms=X ...` and exits 0 only if nothing
 * failed, nothing was wrong and something was read. Static, no dependency but libc; its
 * pages are locked in memory (mlockall) so that a dead mount cannot kill it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ---- SHA-256 (FIPS 180-4), straightforward. ---- */
typedef struct {
  uint32_t h[8];
  uint64_t len;
  uint8_t buf[64];
  size_t used;
} Sha256;

static const uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static uint32_t Ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void ShaBlock(Sha256* s, const uint8_t* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i) {
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           p[4 * i + 3];
  }
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = Ror(w[i - 15], 7) ^ Ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = Ror(w[i - 2], 17) ^ Ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
  uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t t1 = h + (Ror(e, 6) ^ Ror(e, 11) ^ Ror(e, 25)) + ((e & f) ^ (~e & g)) + kK[i] + w[i];
    uint32_t t2 = (Ror(a, 2) ^ Ror(a, 13) ^ Ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
  s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void ShaInit(Sha256* s) {
  static const uint32_t kH0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, kH0, sizeof(kH0));
  s->len = 0;
  s->used = 0;
}

static void ShaUpdate(Sha256* s, const uint8_t* p, size_t n) {
  s->len += n;
  if (s->used > 0) {
    size_t take = 64 - s->used < n ? 64 - s->used : n;
    memcpy(s->buf + s->used, p, take);
    s->used += take; p += take; n -= take;
    if (s->used < 64) return;
    ShaBlock(s, s->buf);
    s->used = 0;
  }
  for (; n >= 64; p += 64, n -= 64) ShaBlock(s, p);
  memcpy(s->buf, p, n);
  s->used = n;
}

static void ShaHex(Sha256* s, char out[65]) {
  uint64_t bits = s->len * 8;
  uint8_t pad[72] = {0x80};
  size_t padlen = (s->used < 56 ? 56 : 120) - s->used;
  for (int i = 0; i < 8; ++i) pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
  ShaUpdate(s, pad, padlen + 8);
  for (int i = 0; i < 8; ++i) sprintf(out + 8 * i, "%08x", s->h[i]);
  out[64] = '\0';
}

/* ---- Work lists. ---- */
typedef struct {
  char hex[65];
  char path[512];
  long long offset, length; /* blocks only */
} Item;

static Item* Load(const char* file, int blocks, int* count) {
  FILE* f = fopen(file, "r");
  if (f == NULL) {
    fprintf(stderr, "reader: cannot open %s: %s\n", file, strerror(errno));
    exit(2);
  }
  Item* items = NULL;
  int n = 0, cap = 0;
  char line[1024];
  while (fgets(line, sizeof(line), f) != NULL) {
    Item it = {0};
    int ok = blocks ? sscanf(line, "%64s %511s %lld %lld", it.hex, it.path, &it.offset, &it.length) == 4
                    : sscanf(line, "%64s %511s", it.hex, it.path) == 2;
    if (!ok) continue;
    if (!blocks && it.path[0] == '*') memmove(it.path, it.path + 1, strlen(it.path)); /* binary mode */
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      items = realloc(items, cap * sizeof(Item));
    }
    items[n++] = it;
  }
  fclose(f);
  *count = n;
  return items;
}

/* ---- Counters, shared by every thread. ---- */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long long n_reads, n_failed, n_wrong, n_bytes, n_block_reads;
static double max_read_ms, max_call_ms;
static int seen_errno[200];
static long long errno_count[200];
static volatile int stop_flag;
static struct timespec start_ts;

static double NowMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (ts.tv_sec - start_ts.tv_sec) * 1e3 + (ts.tv_nsec - start_ts.tv_nsec) / 1e6;
}

static void CallTime(double ms) {
  pthread_mutex_lock(&mu);
  if (ms > max_call_ms) max_call_ms = ms;
  pthread_mutex_unlock(&mu);
}

static void Failed(const char* op, const char* path, int err) {
  pthread_mutex_lock(&mu);
  n_failed++;
  int e = err > 0 && err < 200 ? err : 0;
  errno_count[e]++;
  if (!seen_errno[e]) {
    seen_errno[e] = 1;
    fprintf(stderr, "reader: at %.0f ms: %s %s: %s (errno %d)\n", NowMs(), op, path,
            strerror(err), err);
    fflush(stderr);
  }
  pthread_mutex_unlock(&mu);
  usleep(1000); /* a broken mount fails at once: no busy loop */
}

static void Done(const Item* it, const char* got, long long bytes, double ms, int block) {
  pthread_mutex_lock(&mu);
  if (strcmp(got, it->hex) == 0) {
    n_reads++;
    if (block) n_block_reads++;
  } else {
    n_wrong++;
    fprintf(stderr, "reader: WRONG bytes in %s at %lld (+%lld): sha256 %s, want %s\n", it->path,
            it->offset, bytes, got, it->hex);
    fflush(stderr);
  }
  n_bytes += bytes;
  if (ms > max_read_ms) max_read_ms = ms;
  pthread_mutex_unlock(&mu);
}

enum { kChunk = 64 * 1024 };

/* Reads one manifest file in full: 0 when done (right or wrong), -1 on a failed call. */
static int ReadFile(const Item* it, uint8_t* buf) {
  double t0 = NowMs();
  int fd = open(it->path, O_RDONLY | O_CLOEXEC);
  double t1 = NowMs();
  CallTime(t1 - t0);
  if (fd < 0) {
    Failed("open", it->path, errno);
    return -1;
  }
  Sha256 s;
  ShaInit(&s);
  long long total = 0;
  for (;;) {
    double c0 = NowMs();
    ssize_t n = read(fd, buf, kChunk);
    CallTime(NowMs() - c0);
    if (n < 0) {
      if (errno == EINTR) continue;
      Failed("read", it->path, errno);
      close(fd);
      return -1;
    }
    if (n == 0) break;
    ShaUpdate(&s, buf, (size_t)n);
    total += n;
  }
  if (close(fd) != 0) {
    Failed("close", it->path, errno);
    return -1;
  }
  char got[65];
  ShaHex(&s, got);
  Done(it, got, total, NowMs() - t0, 0);
  return 0;
}

/* Reads one block with pread through `fd` (opened here when fd < 0). */
static int ReadBlock(const Item* it, int fd, uint8_t* buf) {
  double t0 = NowMs();
  int own = fd < 0;
  if (own) {
    fd = open(it->path, O_RDONLY | O_CLOEXEC);
    CallTime(NowMs() - t0);
    if (fd < 0) {
      Failed("open", it->path, errno);
      return -1;
    }
  }
  Sha256 s;
  ShaInit(&s);
  long long done = 0;
  while (done < it->length) {
    size_t want = it->length - done < kChunk ? (size_t)(it->length - done) : kChunk;
    double c0 = NowMs();
    ssize_t n = pread(fd, buf, want, it->offset + done);
    CallTime(NowMs() - c0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO; /* short file: as bad as an error */
      Failed("pread", it->path, errno);
      if (own) close(fd);
      return -1;
    }
    ShaUpdate(&s, buf, (size_t)n);
    done += n;
  }
  if (own && close(fd) != 0) {
    Failed("close", it->path, errno);
    return -1;
  }
  char got[65];
  ShaHex(&s, got);
  Done(it, got, done, NowMs() - t0, 1);
  return 0;
}

static Item* blocks;
static int n_blocks;

static void* BlockWorker(void* arg) {
  long id = (long)arg;
  uint64_t x = 0x9e3779b97f4a7c15ULL * (uint64_t)(id + 1) ^ (uint64_t)getpid();
  uint8_t* buf = malloc(kChunk);
  /* Even workers keep one fd per file for their whole life (handles must survive a
   * takeover); odd ones open for every block (lookups and opens during a takeover). */
  int keep = id % 2 == 0;
  int fds[64];
  for (int i = 0; i < 64; ++i) fds[i] = -1;
  while (!stop_flag) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    const Item* it = &blocks[x % (uint64_t)n_blocks];
    int fd = -1;
    if (keep) {
      /* Files are few: index them by the first block naming the same path. */
      int slot = 0;
      while (slot < n_blocks && strcmp(blocks[slot].path, it->path) != 0) ++slot;
      slot %= 64;
      if (fds[slot] < 0) {
        double t0 = NowMs();
        fds[slot] = open(it->path, O_RDONLY | O_CLOEXEC);
        CallTime(NowMs() - t0);
        if (fds[slot] < 0) {
          Failed("open", it->path, errno);
          continue;
        }
      }
      fd = fds[slot];
    }
    ReadBlock(it, fd, buf);
  }
  for (int i = 0; i < 64; ++i) {
    if (fds[i] >= 0) close(fds[i]);
  }
  free(buf);
  return NULL;
}

int main(int argc, char** argv) {
  const char* manifest = "/manifest.txt";
  const char* blocks_file = NULL;
  const char* stop_file = NULL;
  const char* reset_file = NULL;
  int reset_done = 0;
  int threads = 0, passes = 0;
  double seconds = 60;
  int opt;
  while ((opt = getopt(argc, argv, "m:b:t:d:s:n:r:")) != -1) {
    switch (opt) {
      case 'm': manifest = optarg; break;
      case 'b': blocks_file = optarg; break;
      case 't': threads = atoi(optarg); break;
      case 'd': seconds = atof(optarg); break;
      case 's': stop_file = optarg; break;
      case 'n': passes = atoi(optarg); break;
      case 'r': reset_file = optarg; break;
      default:
        fprintf(stderr, "usage: reader [-m MANIFEST] [-b BLOCKS] [-t THREADS] [-d SECONDS] "
                        "[-s STOPFILE] [-n PASSES] [-r RESETFILE]\n");
        return 2;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &start_ts);
  int n_files = 0;
  Item* files = Load(manifest, 0, &n_files);
  if (blocks_file != NULL) blocks = Load(blocks_file, 1, &n_blocks);
  if (n_blocks == 0) threads = 0;
  /* This program's own pages come from the image too: locked, a broken mount fails its
   * reads (counted, reported) instead of killing it with SIGBUS on a page fault. */
  if (mlockall(MCL_CURRENT) != 0) {
    printf("reader: mlockall: %s (runs unlocked)\n", strerror(errno));
  }
  printf("reader: %d files, %d blocks, %d threads, up to %.0f s\n", n_files, n_blocks, threads,
         seconds);
  fflush(stdout);
  pthread_t tids[64];
  if (threads > 64) threads = 64;
  for (long i = 0; i < threads; ++i) pthread_create(&tids[i], NULL, BlockWorker, (void*)i);
  uint8_t* buf = malloc(kChunk);
  int pass = 0;
  for (; n_files > 0 && (passes == 0 || pass < passes); ++pass) {
    for (int i = 0; i < n_files; ++i) {
      if (NowMs() > seconds * 1e3 || (stop_file != NULL && access(stop_file, F_OK) == 0)) goto out;
      if (!reset_done && reset_file != NULL && access(reset_file, F_OK) == 0) {
        reset_done = 1;
        pthread_mutex_lock(&mu);
        printf("reader: at %.0f ms: maxima reset (were read %.1f ms, call %.1f ms)\n", NowMs(),
               max_read_ms, max_call_ms);
        fflush(stdout);
        max_read_ms = max_call_ms = 0;
        pthread_mutex_unlock(&mu);
      }
      ReadFile(&files[i], buf);
    }
    if (pass == 0) {
      printf("reader: pass 1 done at %.0f ms\n", NowMs());
      fflush(stdout);
    }
  }
out:
  stop_flag = 1;
  for (int i = 0; i < threads; ++i) pthread_join(tids[i], NULL);
  for (int e = 0; e < 200; ++e) {
    if (errno_count[e] > 0) printf("reader: errno %d (%s): %lld failed calls\n", e, strerror(e), errno_count[e]);
  }
  printf("reads=%lld failed=%lld wrong=%lld max_read_ms=%.1f max_call_ms=%.1f passes=%d "
         "block_reads=%lld bytes=%lld seconds=%.1f\n",
         n_reads, n_failed, n_wrong, max_read_ms, max_call_ms, pass, n_block_reads, n_bytes,
         NowMs() / 1e3);
  fflush(stdout);
  return n_failed == 0 && n_wrong == 0 && n_reads > 0 ? 0 : 1;
}
