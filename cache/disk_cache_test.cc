#include "cache/disk_cache.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

SpanBytes Random(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto s = std::make_shared<std::string>(n, '\0');
  for (char& c : *s) c = static_cast<char>(rng());
  return s;
}

std::unique_ptr<DiskCache> Open(const std::string& root, uint64_t max_bytes) {
  auto c = DiskCache::Open({root, max_bytes});
  EXPECT_THAT(c, IsOk());
  return c.ok() ? *std::move(c) : nullptr;
}

TEST(DiskCacheTest, PutGetAndLayout) {
  std::string root = testing::MakeTempDir("disk");
  auto disk = Open(root, 1 << 30);
  SpanBytes span = Random(100000, 1);
  Digest key = Digest::Of(*span);
  EXPECT_FALSE((*disk->Get(key)).has_value());
  ASSERT_THAT(disk->Put(key, span), IsOk());
  std::string hex = key.Hex();
  EXPECT_EQ(disk->PathFor(key), root + "/" + hex.substr(0, 2) + "/" + hex.substr(2, 2) + "/" + hex);
  auto hit = disk->Get(key);
  ASSERT_TRUE(hit.ok() && hit->has_value());
  EXPECT_EQ(***hit, *span);
  EXPECT_TRUE(disk->Contains(key));
  EXPECT_EQ(disk->size_bytes(), span->size() + DiskCache::kTrailerSize);
  EXPECT_EQ(testing::RunCommand("ls " + root + "/tmp | wc -l").value(), "0\n");

  ASSERT_THAT(disk->Remove(key), IsOk());  // a layer's tree made it redundant
  EXPECT_FALSE(disk->Contains(key));
  EXPECT_FALSE((*disk->Get(key)).has_value());
  EXPECT_EQ(disk->size_bytes(), 0u);
  EXPECT_THAT(disk->Remove(key), IsOk());  // gone already: fine
}

TEST(DiskCacheTest, CorruptAndTruncatedFilesAreDroppedNeverServed) {
  std::string root = testing::MakeTempDir("disk");
  auto disk = Open(root, 1 << 30);
  SpanBytes a = Random(50000, 2), b = Random(50000, 3);
  Digest ka = Digest::Of(*a), kb = Digest::Of(*b);
  ASSERT_THAT(disk->Put(ka, a), IsOk());
  ASSERT_THAT(disk->Put(kb, b), IsOk());
  {
    std::fstream f(disk->PathFor(ka), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(25000);
    f.put('\x55');
  }
  ASSERT_EQ(truncate(disk->PathFor(kb).c_str(), 1000), 0);
  EXPECT_FALSE((*disk->Get(ka)).has_value());
  EXPECT_FALSE((*disk->Get(kb)).has_value());
  EXPECT_EQ(disk->counters().corrupt.Value(), 2u);
  EXPECT_FALSE(disk->Contains(ka));  // Dropped, so the next fill replaces it.
  ASSERT_THAT(disk->Put(ka, a), IsOk());
  EXPECT_TRUE((*disk->Get(ka)).has_value());
}

// Pages of `path` in the page cache (mincore).
size_t ResidentPages(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) return 0;
  void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return 0;
  std::vector<unsigned char> vec((static_cast<size_t>(st.st_size) + 4095) / 4096);
  size_t n = 0;
  if (mincore(map, static_cast<size_t>(st.st_size), vec.data()) == 0) {
    for (unsigned char v : vec) n += v & 1;
  }
  munmap(map, static_cast<size_t>(st.st_size));
  return n;
}

// Spans of every size round-trip, through direct I/O (ext4 here, block-padded writes
// cut to size) and through buffered I/O where O_DIRECT is refused (tmpfs); on ext4 a
// Put or Get leaves none of the span in the page cache: the reader's FUSE pages are the
// only cached copy of what it reads.
TEST(DiskCacheTest, DirectAndBufferedIoAllSizes) {
  std::string shm = testing::RunCommand("mktemp -d /dev/shm/clip-disk-XXXXXX").value();
  shm.pop_back();
  for (const std::string& root : {testing::MakeTempDir("disk"), shm}) {
    SCOPED_TRACE(root);
    auto disk = Open(root, 1 << 30);
    for (size_t size : {size_t{0}, size_t{1}, size_t{4080}, size_t{4096}, size_t{100000},
                        size_t{(2 << 20) + 3}}) {
      SCOPED_TRACE(size);
      SpanBytes span = Random(size, size + 7);
      Digest key = Digest::Of(*span);
      ASSERT_THAT(disk->Put(key, span), IsOk());
      struct stat st;
      ASSERT_EQ(stat(disk->PathFor(key).c_str(), &st), 0);
      EXPECT_EQ(static_cast<size_t>(st.st_size), size + DiskCache::kTrailerSize);
      if (root != shm) {
        EXPECT_EQ(ResidentPages(disk->PathFor(key)), 0u);
      }
      auto hit = disk->Get(key);
      ASSERT_TRUE(hit.ok() && hit->has_value()) << hit.status();
      EXPECT_EQ(***hit, *span);
      if (root != shm) {
        EXPECT_EQ(ResidentPages(disk->PathFor(key)), 0u);
      }
    }
    EXPECT_EQ(disk->counters().corrupt.Value(), 0u);
  }
  EXPECT_THAT(testing::RunCommand("rm -rf " + shm), IsOk());
}

// A file swapped for another well-formed entry passes the CRC; verify_digest catches it.
TEST(DiskCacheTest, VerifyDigestCatchesSwappedEntries) {
  std::string root = testing::MakeTempDir("disk");
  auto plain = Open(root, 1 << 30);
  SpanBytes a = Random(4000, 20), b = Random(4000, 21);
  Digest ka = Digest::Of(*a), kb = Digest::Of(*b);
  ASSERT_THAT(plain->Put(ka, a), IsOk());
  ASSERT_THAT(plain->Put(kb, b), IsOk());
  ASSERT_EQ(rename(plain->PathFor(kb).c_str(), plain->PathFor(ka).c_str()), 0);
  auto strict = DiskCache::Open({root, 1 << 30, /*verify_digest=*/true}).value();
  EXPECT_FALSE((*strict->Get(ka)).has_value());
  EXPECT_EQ(strict->counters().corrupt.Value(), 1u);
}

TEST(DiskCacheTest, EvictsLeastRecentlyUsedAlsoAcrossRestarts) {
  std::string root = testing::MakeTempDir("disk");
  std::vector<SpanBytes> spans;
  std::vector<Digest> keys;
  {
    auto disk = Open(root, 10 * (10000 + DiskCache::kTrailerSize));
    for (int i = 0; i < 10; ++i) {
      spans.push_back(Random(10000, 100 + i));
      keys.push_back(Digest::Of(*spans.back()));
      ASSERT_THAT(disk->Put(keys.back(), spans.back()), IsOk());
      absl::SleepFor(absl::Milliseconds(5));  // distinct mtimes
    }
    ASSERT_TRUE((*disk->Get(keys[0])).has_value());  // 0 becomes the most recent
    absl::SleepFor(absl::Milliseconds(5));
    SpanBytes extra = Random(10000, 999);
    ASSERT_THAT(disk->Put(Digest::Of(*extra), extra), IsOk());  // evicts 1, the LRU
    EXPECT_FALSE(disk->Contains(keys[1]));
    EXPECT_TRUE(disk->Contains(keys[0]));
    EXPECT_LE(disk->size_bytes(), 10 * (10000 + DiskCache::kTrailerSize));
    EXPECT_EQ(disk->counters().evictions.Value(), 1u);
  }
  // Reopened with half the budget: the order comes from mtimes, so the oldest go.
  auto disk = Open(root, 5 * (10000 + DiskCache::kTrailerSize));
  EXPECT_LE(disk->size_bytes(), 5 * (10000 + DiskCache::kTrailerSize));
  EXPECT_TRUE(disk->Contains(keys[0]));
  EXPECT_TRUE(disk->Contains(keys[9]));
  EXPECT_FALSE(disk->Contains(keys[2]));
}

TEST(DiskCacheTest, ManyThreadsSameAndDifferentSpans) {
  std::string root = testing::MakeTempDir("disk");
  auto disk = Open(root, 1 << 30);
  std::vector<SpanBytes> spans;
  for (int i = 0; i < 16; ++i) spans.push_back(Random(64 << 10, 200 + i));
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 200; ++i) {
        const SpanBytes& s = spans[rng() % (i % 2 ? 2 : spans.size())];
        Digest k = Digest::Of(*s);
        if (!disk->Put(k, s).ok()) ++bad;
        auto got = disk->Get(k);
        if (!got.ok() || (got->has_value() && ***got != *s)) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(DiskCacheTest, TwoProcessesShareTheDirectory) {
  std::string root = testing::MakeTempDir("disk");
  SpanBytes span = Random(200000, 7);
  Digest key = Digest::Of(*span);
  pid_t child = fork();
  if (child == 0) {
    auto c = DiskCache::Open({root, 1 << 30});
    _exit(c.ok() && (*c)->Put(key, span).ok() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto disk = Open(root, 1 << 30);
  auto hit = disk->Get(key);
  ASSERT_TRUE(hit.ok() && hit->has_value());
  EXPECT_EQ(***hit, *span);
}

// A writer killed mid-write leaves no visible partial file; reopening cleans its
// temp files and every visible entry verifies.
TEST(DiskCacheTest, CrashedWriterLeavesNoPartialFile) {
  std::string root = testing::MakeTempDir("disk");
  { Open(root, 1 << 30); }
  pid_t child = fork();
  if (child == 0) {
    auto c = DiskCache::Open({root, uint64_t{1} << 34});
    for (uint64_t i = 0;; ++i) {
      SpanBytes s = Random(8 << 20, 1000 + i);
      (void)(*c)->Put(Digest::Of(*s), s);
    }
  }
  // Kill it mid-write once it has stored something (a loaded machine may take a while
  // for the first 8 MiB entry: wait for it rather than for a fixed time).
  const std::string count_entries =
      "cd " + root + " && find . -type f -path './[0-9a-f][0-9a-f]/*' | wc -l";
  for (int i = 0; i < 300 && testing::RunCommand(count_entries).value_or("0\n") == "0\n"; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  absl::SleepFor(absl::Milliseconds(30));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  auto disk = Open(root, uint64_t{1} << 34);
  ASSERT_THAT(disk->Rescan(), IsOk());
  std::string listing =
      testing::RunCommand("cd " + root + " && find . -type f -path './[0-9a-f][0-9a-f]/*'").value();
  int entries = 0;
  for (absl::string_view line : absl::StrSplit(listing, '\n', absl::SkipEmpty())) {
    std::string hex(line.substr(line.rfind('/') + 1));
    auto key = Digest::ParseHex(hex);
    ASSERT_THAT(key, IsOk()) << line;
    auto hit = disk->Get(*key);
    ASSERT_TRUE(hit.ok() && hit->has_value()) << "entry " << hex << " does not verify";
    ++entries;
  }
  EXPECT_GT(entries, 0);
  EXPECT_EQ(disk->counters().corrupt.Value(), 0u);
  EXPECT_EQ(testing::RunCommand("ls " + root + "/tmp | wc -l").value(), "0\n");
}

}  // namespace
}  // namespace clip
