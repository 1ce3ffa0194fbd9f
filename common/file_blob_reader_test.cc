#include "common/file_blob_reader.h"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/memory_blob_reader.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

std::string TempDir() {
  const char* t = getenv("TEST_TMPDIR");
  return t ? t : "/tmp";
}

std::string WriteFile(const std::string& name, const std::string& bytes) {
  std::string path = TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 977) & 0xff);
  return s;
}

// The same contract checks run against the file reader and the in-memory fake.
void CheckContract(const BlobReader& blob, const std::string& want) {
  ASSERT_EQ(*blob.Size(), want.size());
  std::string buf(100, 'x');
  auto n = blob.ReadAt(10, absl::MakeSpan(buf));
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(*n, 100u);
  EXPECT_EQ(buf, want.substr(10, 100));
  // Short only at the end.
  n = blob.ReadAt(want.size() - 30, absl::MakeSpan(buf));
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(*n, 30u);
  EXPECT_EQ(buf.substr(0, 30), want.substr(want.size() - 30));
  EXPECT_EQ(*blob.ReadAt(want.size(), absl::MakeSpan(buf)), 0u);
  EXPECT_EQ(*blob.ReadAt(want.size() + 1000, absl::MakeSpan(buf)), 0u);
  EXPECT_EQ(*blob.ReadAt(0, absl::Span<char>()), 0u);
  EXPECT_THAT(ReadExactly(blob, 0, absl::MakeSpan(buf)), IsOk());
  EXPECT_EQ(ReadExactly(blob, want.size() - 1, absl::MakeSpan(buf)).code(),
            absl::StatusCode::kOutOfRange);
}

TEST(FileBlobReaderTest, Contract) {
  std::string data = Pattern(1 << 20);
  auto blob = FileBlobReader::Open(WriteFile("contract", data));
  ASSERT_THAT(blob, IsOk());
  CheckContract(**blob, data);
  CheckContract(MemoryBlobReader(data), data);
}

TEST(FileBlobReaderTest, ConcurrentRandomReads) {
  std::string data = Pattern(4 << 20);
  auto blob = FileBlobReader::Open(WriteFile("concurrent", data));
  ASSERT_THAT(blob, IsOk());
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::string buf;
      for (int i = 0; i < 500; ++i) {
        uint64_t off = rng() % data.size();
        buf.assign(rng() % 65536, '\0');
        auto n = (*blob)->ReadAt(off, absl::MakeSpan(buf));
        size_t expect = std::min<size_t>(buf.size(), data.size() - off);
        if (!n.ok() || *n != expect || buf.compare(0, expect, data, off, expect) != 0) {
          ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(FileBlobReaderTest, OpenErrors) {
  EXPECT_EQ(FileBlobReader::Open(TempDir() + "/does-not-exist").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(FileBlobReader::Open(TempDir()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FileBlobReaderTest, FileThatShrinksWhileOpenIsDataLoss) {
  std::string path = WriteFile("shrinks", Pattern(8192));
  auto blob = FileBlobReader::Open(path);
  ASSERT_THAT(blob, IsOk());
  ASSERT_EQ(truncate(path.c_str(), 100), 0);
  std::string buf(4096, '\0');
  EXPECT_EQ((*blob)->ReadAt(0, absl::MakeSpan(buf)).status().code(), absl::StatusCode::kDataLoss);
}

TEST(FileBlobReaderTest, EmptyFile) {
  auto blob = FileBlobReader::Open(WriteFile("empty", ""));
  ASSERT_THAT(blob, IsOk());
  EXPECT_EQ(*(*blob)->Size(), 0u);
  char c;
  EXPECT_EQ(*(*blob)->ReadAt(0, absl::MakeSpan(&c, 1)), 0u);
}

}  // namespace
}  // namespace clip
