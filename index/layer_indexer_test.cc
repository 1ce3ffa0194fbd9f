// End-to-end tests of index building and reading on layers made by GNU tar, gzip,
// pigz and Python's tarfile (testdata/make_layers.sh), checked against `gzip -dc`,
// `tar -x` and `tar -tv` of the same layers.
#include "index/layer_indexer.h"

#include <zlib.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cmd/index_commands.h"
#include "common/digest.h"
#include "common/file_blob_reader.h"
#include "common/memory_blob_reader.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "index/entry_tree.h"
#include "index/index_format.h"
#include "index/layer_reader.h"
#include "index/span_inflater.h"
#include "index/span_source.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

using index::v1::LayerIndex;

std::string g_dir;

std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  EXPECT_EQ(rc, 0) << cmd;
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class Environment : public ::testing::Environment {
 public:
  void SetUp() override {
    g_dir = absl::StrCat(getenv("TEST_TMPDIR"), "/layers");
    std::string script = absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                                      "/index/testdata/make_layers.sh");
    Shell(absl::StrCat("bash ", script, " ", g_dir));
  }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new Environment);

absl::StatusOr<LayerIndex> Build(const std::string& name) {
  auto blob = FileBlobReader::Open(g_dir + "/" + name);
  if (!blob.ok()) return blob.status();
  return BuildLayerIndex(**blob);
}

std::string Uncompressed(const std::string& name) {
  if (!absl::EndsWith(name, ".gz")) return ReadFile(g_dir + "/" + name);
  return Shell(absl::StrCat("gzip -dc ", g_dir, "/", name));
}

// All deflate block boundaries (uncompressed offsets) where inflation may start,
// found independently of the indexer: zlib with Z_BLOCK and a tiny output buffer.
std::vector<uint64_t> Boundaries(const std::string& gz) {
  std::vector<uint64_t> out;
  z_stream s{};
  inflateInit2(&s, 31);
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  s.avail_in = static_cast<uInt>(gz.size());
  std::string buf(1 << 16, '\0');
  uint64_t total = 0;
  while (s.avail_in > 0) {
    s.next_out = reinterpret_cast<Bytef*>(buf.data());
    s.avail_out = static_cast<uInt>(buf.size());
    int ret = inflate(&s, Z_BLOCK);
    total += buf.size() - s.avail_out;
    if (ret == Z_STREAM_END) {
      inflateReset(&s);
      continue;
    }
    if (ret != Z_OK) break;
    if ((s.data_type & 128) && !(s.data_type & 64)) out.push_back(total);
  }
  inflateEnd(&s);
  return out;
}

// Test names from layer file names: gnu.tar.gz -> gnu_tar_gz.
std::string LayerTestName(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  for (char& c : n) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return n;
}

class GoodLayerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoodLayerTest, DigestsAndDeterminism) {
  auto index = Build(GetParam());
  ASSERT_THAT(index, IsOk());
  std::string raw = ReadFile(g_dir + "/" + GetParam());
  std::string tar = Uncompressed(GetParam());
  EXPECT_EQ(index->layer_digest(), Digest::Of(raw).ToString());
  EXPECT_EQ(index->compressed_size(), raw.size());
  EXPECT_EQ(index->diff_id(), Digest::Of(tar).ToString());
  EXPECT_EQ(index->uncompressed_size(), tar.size());
  // Same bytes in, same index out (from a file or from memory, as from a registry).
  MemoryBlobReader mem(raw);
  auto again = BuildLayerIndex(mem);
  ASSERT_THAT(again, IsOk());
  std::string encoded = EncodeIndex(*index);
  EXPECT_EQ(EncodeIndex(*again), encoded);
  auto decoded = DecodeIndex(encoded);
  ASSERT_THAT(decoded, IsOk());
  EXPECT_EQ(decoded->SerializeAsString(), index->SerializeAsString());
  // Size target: under 1% of the uncompressed layer for these multi-MB layers.
  EXPECT_LT(encoded.size(), tar.size() / 100);
}

TEST_P(GoodLayerTest, CheckpointPlacementFollowsTheRules) {
  auto index = Build(GetParam());
  ASSERT_THAT(index, IsOk());
  const auto& cps = index->checkpoints();
  std::set<uint64_t> at;
  for (const auto& cp : cps) at.insert(cp.uncompressed_offset());
  ASSERT_EQ(*at.begin(), 0u);
  std::vector<uint64_t> boundaries;
  if (index->compression() == index::v1::GZIP) {
    boundaries = Boundaries(ReadFile(g_dir + "/" + GetParam()));
    for (uint64_t off : at) {
      if (off != 0) {
        EXPECT_TRUE(std::binary_search(boundaries.begin(), boundaries.end(), off)) << off;
      }
    }
  }
  auto boundary_at_or_before = [&](uint64_t d) -> uint64_t {
    if (index->compression() == index::v1::NONE) return d;
    auto it = std::upper_bound(boundaries.begin(), boundaries.end(), d);
    return it == boundaries.begin() ? 0 : *(it - 1);
  };
  auto first_boundary_at_or_after = [&](uint64_t d) -> uint64_t {
    if (index->compression() == index::v1::NONE) return d;
    auto it = std::lower_bound(boundaries.begin(), boundaries.end(), d);
    return it == boundaries.end() ? UINT64_MAX : *it;
  };
  // Large files: a checkpoint at the last boundary at or before their data.
  for (const auto& e : index->entries()) {
    if (e.type() == index::v1::REGULAR && e.size() > index->large_file_threshold()) {
      EXPECT_TRUE(at.count(boundary_at_or_before(e.data_offset()))) << e.name();
    }
  }
  // Interval: each next checkpoint comes no later than the first boundary 2 MiB on.
  for (int i = 0; i + 1 < cps.size(); ++i) {
    uint64_t limit =
        first_boundary_at_or_after(cps[i].uncompressed_offset() + index->checkpoint_interval());
    EXPECT_LE(cps[i + 1].uncompressed_offset(), limit) << i;
  }
  uint64_t last_limit = first_boundary_at_or_after(cps[cps.size() - 1].uncompressed_offset() +
                                                   index->checkpoint_interval());
  EXPECT_TRUE(last_limit == UINT64_MAX || last_limit >= index->uncompressed_size());
}

TEST_P(GoodLayerTest, RandomReadsEqualGunzip) {
  auto built = Build(GetParam());
  ASSERT_THAT(built, IsOk());
  auto index = std::make_shared<const LayerIndex>(*std::move(built));
  std::string tar = Uncompressed(GetParam());
  auto blob = FileBlobReader::Open(g_dir + "/" + GetParam());
  ASSERT_THAT(blob, IsOk());
  auto spans = std::make_shared<SpanInflater>(index, **blob);
  std::mt19937_64 rng(42);
  std::string buf;
  for (int i = 0; i < 300; ++i) {
    LayerReader reader(index, spans);  // Fresh: no span memo between reads.
    uint64_t off = rng() % tar.size();
    buf.assign(1 + rng() % (i % 3 == 0 ? 5 << 20 : 8192), '\0');
    auto n = reader.ReadAt(off, absl::MakeSpan(buf));
    ASSERT_THAT(n, IsOk());
    size_t want = std::min<size_t>(buf.size(), tar.size() - off);
    ASSERT_EQ(*n, want);
    ASSERT_EQ(buf.substr(0, want), tar.substr(off, want)) << "offset " << off;
  }
  // Every span on its own, verified.
  for (size_t s = 0; s < SpanCount(*index); ++s) {
    auto bytes = spans->GetSpan(s);
    ASSERT_THAT(bytes, IsOk());
    SpanInfo info = GetSpanInfo(*index, s);
    EXPECT_EQ(**bytes, tar.substr(info.offset, info.size));
  }
}

TEST_P(GoodLayerTest, EveryFileEqualsTarExtraction) {
  auto built = Build(GetParam());
  ASSERT_THAT(built, IsOk());
  auto index = std::make_shared<const LayerIndex>(*std::move(built));
  std::string out = absl::StrCat(g_dir, "/x-", GetParam());
  Shell(absl::StrCat("rm -rf '", out, "' && mkdir -p '", out, "' && tar --xattrs -xf ", g_dir, "/",
                     GetParam(), " -C '", out, "'"));
  auto blob = FileBlobReader::Open(g_dir + "/" + GetParam());
  ASSERT_THAT(blob, IsOk());
  LayerReader reader(index, std::make_shared<SpanInflater>(index, **blob));
  EntryTree tree(*index);
  int files = 0;
  for (uint32_t id = 0; id < static_cast<uint32_t>(index->entries_size()); ++id) {
    const auto& e = index->entries(static_cast<int>(id));
    if (e.type() != index::v1::REGULAR && e.type() != index::v1::HARDLINK) continue;
    std::string want = ReadFile(out + "/" + tree.Path(id));
    std::string got(want.size() + 10, '\0');
    auto n = reader.ReadFile(id, 0, absl::MakeSpan(got));
    ASSERT_THAT(n, IsOk());
    got.resize(*n);
    EXPECT_EQ(got.size(), want.size()) << tree.Path(id);
    EXPECT_TRUE(got == want) << tree.Path(id);
    ++files;
  }
  EXPECT_GT(files, 15);
}

// Listing equals `tar -tv` (fields, not spacing) line by line in archive order, names
// quoted as tar quotes them (bytes that are not UTF-8 as \ooo), whiteouts by name. The
// opaque marker is printed after its directory, so it is compared apart from the order.
TEST_P(GoodLayerTest, ListingMatchesTarTvInArchiveOrder) {
  auto index = Build(GetParam());
  ASSERT_THAT(index, IsOk());
  std::string idx = absl::StrCat(g_dir, "/", GetParam(), ".idx");
  std::ofstream(idx, std::ios::binary) << EncodeIndex(*index);
  std::ostringstream ours;
  ASSERT_THAT(IndexInspectCommand(idx, false, ours), IsOk());
  std::string theirs =
      Shell(absl::StrCat("TZ=UTC LC_ALL=C.UTF-8 tar -tvf ", g_dir, "/", GetParam()));
  struct Listing {
    std::vector<std::string> lines;
    std::multiset<std::string> opaque;
  };
  auto normalize = [](absl::string_view listing) {
    Listing out;
    for (absl::string_view line : absl::StrSplit(listing, '\n', absl::SkipEmpty())) {
      if (absl::StartsWith(line, "#")) continue;  // Our summary line.
      std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      for (auto& field : f) {
        while (absl::StartsWith(field, "./") && field.size() > 2) field = field.substr(2);
      }
      if (f.size() >= 6 && absl::EndsWith(f[5], ".wh..wh..opq")) {
        out.opaque.insert(f[5]);
      } else if (f.size() >= 6 && absl::StrContains(f[5], ".wh.")) {
        out.lines.push_back(absl::StrCat("whiteout ", f[5]));
      } else {
        out.lines.push_back(absl::StrJoin(f, " "));
      }
    }
    return out;
  };
  Listing a = normalize(ours.str());
  Listing b = normalize(theirs);
  EXPECT_EQ(a.lines, b.lines) << "ours:\n" << ours.str() << "\ntar -tv:\n" << theirs;
  EXPECT_EQ(a.opaque, b.opaque);
  if (GetParam() != std::string("real.tar.gz")) {
    EXPECT_THAT(ours.str(), ::testing::HasSubstr(" caf\\351"));
    EXPECT_THAT(ours.str(), ::testing::HasSubstr(" link-\\340 -> caf\\351\n"));
    EXPECT_THAT(ours.str(), ::testing::HasSubstr(" bytes-\\377\\376/\\351t\\351\n"));
  }
}

INSTANTIATE_TEST_SUITE_P(Layers, GoodLayerTest,
                         ::testing::Values("gnu.tar.gz", "posix.tar.gz", "posix.tar", "pigz.tar.gz",
                                           "multi.tar.gz", "real.tar.gz"),
                         LayerTestName);

TEST(PythonLayerTest, TarSemantics) {
  auto index = Build("python.tar.gz");
  ASSERT_THAT(index, IsOk());
  EntryTree tree(*index);
  auto entry = [&](const std::string& path) -> const index::v1::Entry* {
    auto id = tree.Resolve(path);
    return id ? &index->entries(static_cast<int>(*id)) : nullptr;
  };
  ASSERT_NE(entry("implicit/parent"), nullptr);
  EXPECT_TRUE(entry("implicit/parent")->implicit());
  EXPECT_EQ(entry("implicit/parent/file.txt")->mode(), 0640u);
  EXPECT_EQ(entry("implicit/parent/file.txt")->mtime_sec(), 1700000000);
  EXPECT_EQ(entry("implicit/parent/file.txt")->mtime_nsec(), 250000000u);
  EXPECT_NE(entry("abs/leading-slash.txt"), nullptr);
  EXPECT_EQ(entry("dup.txt")->size(), 20u);  // The later member wins.
  EXPECT_EQ(entry("dir-then-file")->type(), index::v1::REGULAR);
  EXPECT_EQ(entry("dir-then-file/child"), nullptr);
  EXPECT_NE(entry(std::string(120, 'a') + "/" + std::string(120, 'b') + "/long-name.txt"), nullptr);
  EXPECT_EQ(entry("link-long")->link_target(), std::string(300, 't'));
  EXPECT_EQ(entry("big-uid")->uid(), 9999999u);
  EXPECT_EQ(entry("big-uid")->gid(), 8888888u);
  EXPECT_EQ(entry("big-uid")->uname(), "someone");
  EXPECT_EQ(entry("hl-link")->type(), index::v1::HARDLINK);
  EXPECT_EQ(index->entries(static_cast<int>(entry("hl-link")->link_entry())).name(), "hl-target");
  EXPECT_EQ(entry("dev/loop-like")->type(), index::v1::BLOCK_DEVICE);
  EXPECT_EQ(entry("dev/loop-like")->dev_minor(), 123u);
  ASSERT_EQ(entry("xattr-file")->xattrs_size(), 2);
  EXPECT_EQ(entry("xattr-file")->xattrs(0).key(), "security.selinux");
  EXPECT_EQ(entry("xattr-file")->xattrs(1).value(), "v");
  // PAX `path`/`linkpath` with hdrcharset=BINARY: the bytes, not UTF-8.
  ASSERT_NE(entry("py-caf\xe9/\xff-file"), nullptr);
  EXPECT_EQ(entry("py-caf\xe9/\xff-file")->size(), 16u);
  EXPECT_EQ(entry("py-link-\xe9")->link_target(), "py-caf\xe9/\xff-file");
  EXPECT_FALSE(entry("")->implicit());  // "./" member present.
  EXPECT_EQ(entry("")->mtime_sec(), 1000);

  auto gnu = Build("python-gnu.tar.gz");
  ASSERT_THAT(gnu, IsOk());
  EntryTree gtree(*gnu);
  EXPECT_TRUE(gtree.Resolve(std::string(200, 'g') + "/file"));
  auto gl = gtree.Resolve("gnu-link");
  ASSERT_TRUE(gl);
  EXPECT_EQ(gnu->entries(static_cast<int>(*gl)).link_target(), std::string(200, 'l'));
  auto bu = gtree.Resolve("gnu-big-uid");
  ASSERT_TRUE(bu);
  EXPECT_EQ(gnu->entries(static_cast<int>(*bu)).uid(), 3000000u);  // base-256 number
}

// One reader shared by many threads (its span memo included) returns the right bytes.
TEST(LayerReaderTest, ConcurrentReadersShareOneReader) {
  auto built = Build("posix.tar.gz");
  ASSERT_THAT(built, IsOk());
  auto index = std::make_shared<const LayerIndex>(*std::move(built));
  std::string tar = Uncompressed("posix.tar.gz");
  auto blob = FileBlobReader::Open(g_dir + "/posix.tar.gz");
  ASSERT_THAT(blob, IsOk());
  LayerReader reader(index, std::make_shared<SpanInflater>(index, **blob));
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::string buf;
      for (int i = 0; i < 60; ++i) {
        uint64_t off = rng() % tar.size();
        buf.assign(1 + rng() % 300000, '\0');
        auto n = reader.ReadAt(off, absl::MakeSpan(buf));
        size_t want = std::min<size_t>(buf.size(), tar.size() - off);
        if (!n.ok() || *n != want || buf.compare(0, want, tar, off, want) != 0) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

// Small-file checkpoints: with the budget unbounded, no span of small files runs past
// the first boundary `small_file_interval` on; none is cut inside a large file's data
// (those keep the 2 MiB rule); every span still inflates to the tar's bytes; the same
// layer gives the same index. With the 1% budget the index stays under 1% of the
// layer and still gains checkpoints on a layer of many small files (real.tar.gz).
class SmallFileCheckpointTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SmallFileCheckpointTest, ShortSpansAmongSmallFilesWithinTheBudget) {
  const std::string name = GetParam();
  auto blob = FileBlobReader::Open(g_dir + "/" + name);
  ASSERT_THAT(blob, IsOk());
  std::string tar = Uncompressed(name);
  auto plain = BuildLayerIndex(**blob);
  ASSERT_THAT(plain, IsOk());
  IndexOptions o;
  o.small_file_interval = name == "real.tar.gz" ? 128 << 10 : 16 << 10;  // fixtures' sizes
  o.max_index_ratio = 1.0;
  auto built = BuildLayerIndex(**blob, o);
  ASSERT_THAT(built, IsOk());
  auto index = std::make_shared<const LayerIndex>(*std::move(built));
  EXPECT_EQ(index->small_file_interval(), o.small_file_interval);
  // pigz.tar.gz's few small files sit in one deflate block: no boundary to add there.
  if (name != "pigz.tar.gz") {
    EXPECT_GT(index->checkpoints_size(), plain->checkpoints_size());
  }

  std::vector<uint64_t> boundaries;
  if (index->compression() == index::v1::GZIP)
    boundaries = Boundaries(ReadFile(g_dir + "/" + name));
  auto first_boundary_at_or_after = [&](uint64_t d) -> uint64_t {
    if (index->compression() == index::v1::NONE) return d;
    auto it = std::lower_bound(boundaries.begin(), boundaries.end(), d);
    return it == boundaries.end() ? UINT64_MAX : *it;
  };
  auto boundary_at_or_before = [&](uint64_t d) -> uint64_t {
    if (index->compression() == index::v1::NONE) return d;
    auto it = std::upper_bound(boundaries.begin(), boundaries.end(), d);
    return it == boundaries.begin() ? 0 : *(it - 1);
  };
  std::vector<std::pair<uint64_t, uint64_t>> large;  // data ranges of large files
  std::set<uint64_t> large_rule;                     // checkpoints the large-file rule places
  for (const auto& e : index->entries()) {
    if (e.type() == index::v1::REGULAR && e.size() > index->large_file_threshold()) {
      large.emplace_back(e.data_offset(), e.data_offset() + e.size());
      large_rule.insert(boundary_at_or_before(e.data_offset()));
    }
  }
  auto overlaps_large = [&](uint64_t a, uint64_t b) {
    for (auto [s, e] : large) {
      if (s < b && a < e) return true;
    }
    return false;
  };
  const auto& cps = index->checkpoints();
  for (int i = 0; i + 1 < cps.size(); ++i) {
    uint64_t a = cps[i].uncompressed_offset(), b = cps[i + 1].uncompressed_offset();
    if (!overlaps_large(a, b)) {
      EXPECT_LE(b, first_boundary_at_or_after(a + o.small_file_interval)) << "span " << i;
    }
    for (auto [s, e] : large) {
      // Inside a large file's data only the interval rule cuts.
      if (s <= a && b < e && !large_rule.count(b)) {
        EXPECT_GE(b - a, index->checkpoint_interval()) << i;
      }
    }
  }
  auto spans = std::make_shared<SpanInflater>(index, **blob);
  for (size_t i = 0; i < SpanCount(*index); ++i) {
    auto bytes = spans->GetSpan(i);
    ASSERT_THAT(bytes, IsOk());
    SpanInfo info = GetSpanInfo(*index, i);
    ASSERT_EQ(**bytes, tar.substr(info.offset, info.size)) << "span " << i;
  }
  MemoryBlobReader mem(ReadFile(g_dir + "/" + name));
  auto again = BuildLayerIndex(mem, o);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(EncodeIndex(*again), EncodeIndex(*index));

  o.max_index_ratio = 0.01;
  auto budgeted = BuildLayerIndex(**blob, o);
  ASSERT_THAT(budgeted, IsOk());
  EXPECT_LT(EncodeIndex(*budgeted).size(), tar.size() / 100);
  EXPECT_GE(budgeted->checkpoints_size(), plain->checkpoints_size());
  EXPECT_LE(budgeted->checkpoints_size(), index->checkpoints_size());
  if (name == "real.tar.gz") {
    EXPECT_GT(budgeted->checkpoints_size(), plain->checkpoints_size());
  }
}

INSTANTIATE_TEST_SUITE_P(Layers, SmallFileCheckpointTest,
                         ::testing::Values("real.tar.gz", "posix.tar", "pigz.tar.gz"),
                         LayerTestName);

TEST(SmallFileCheckpointTest, IntervalLongerThanTheCheckpointIntervalIsRefused) {
  MemoryBlobReader mem(ReadFile(g_dir + "/gnu.tar.gz"));
  IndexOptions o;
  o.small_file_interval = o.checkpoint_interval + 1;
  EXPECT_EQ(BuildLayerIndex(mem, o).status().code(), absl::StatusCode::kInvalidArgument);
}

// posix.tar.gz indexed with 64 KiB spans: many spans in a small fixture.
void IndexWithSmallSpans(std::unique_ptr<FileBlobReader>* blob,
                         std::shared_ptr<const LayerIndex>* index) {
  auto opened = FileBlobReader::Open(g_dir + "/posix.tar.gz");
  ASSERT_THAT(opened, IsOk());
  IndexOptions o;
  o.checkpoint_interval = 64 << 10;
  auto built = BuildLayerIndex(**opened, o);
  ASSERT_THAT(built, IsOk());
  *blob = *std::move(opened);
  *index = std::make_shared<const LayerIndex>(*std::move(built));
}

// Slices: pieces of the spans themselves, in order, that add up to the bytes asked for,
// also across span boundaries (checkpoint_interval 64 KiB here), and that stay valid
// after the reader moved on to other spans.
TEST(LayerReaderTest, SlicesAcrossSpansOutliveTheReadersMemo) {
  std::unique_ptr<FileBlobReader> blob;
  std::shared_ptr<const LayerIndex> index;
  ASSERT_NO_FATAL_FAILURE(IndexWithSmallSpans(&blob, &index));
  ASSERT_GT(index->checkpoints_size(), 3);
  std::string tar = Uncompressed("posix.tar.gz");
  LayerReader reader(index, std::make_shared<SpanInflater>(index, *blob));
  const uint64_t second = index->checkpoints(1).uncompressed_offset();
  auto slices = reader.SlicesAt(second - 100, 200 << 10);  // 4 spans
  ASSERT_THAT(slices, IsOk());
  ASSERT_GE(slices->size(), 3u);
  EXPECT_EQ((*slices)[0].size, 100u);
  std::string other(1000, '\0');
  ASSERT_THAT(reader.ReadAt(tar.size() - 1000, absl::MakeSpan(other)), IsOk());  // memo moves on
  std::string joined;
  for (const SpanSlice& s : *slices) joined.append(s.data, s.size);
  EXPECT_EQ(joined, tar.substr(second - 100, 200 << 10));
  EXPECT_TRUE(reader.SlicesAt(tar.size(), 10)->empty());
  EXPECT_EQ(reader.SlicesAt(tar.size() - 10, 4096)->at(0).size, 10u);
  EXPECT_TRUE(reader.SlicesAt(0, 0)->empty());
}

// File reads tell the span source the file's last span and whether they start the
// file; stream reads (ReadAt) give no file bound.
class HintRecorder : public SpanSource {
 public:
  explicit HintRecorder(std::shared_ptr<const SpanSource> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<std::shared_ptr<const std::string>> GetSpan(size_t span) const override {
    return GetSpanForRead(span, ReadHint{});
  }
  absl::StatusOr<std::shared_ptr<const std::string>> GetSpanForRead(
      size_t span, const ReadHint& hint) const override {
    hints.push_back({span, hint});
    return inner_->GetSpan(span);
  }
  mutable std::vector<std::pair<size_t, ReadHint>> hints;

 private:
  std::shared_ptr<const SpanSource> inner_;
};

TEST(LayerReaderTest, FileReadsHintTheFilesLastSpan) {
  std::unique_ptr<FileBlobReader> blob;
  std::shared_ptr<const LayerIndex> index;
  ASSERT_NO_FATAL_FAILURE(IndexWithSmallSpans(&blob, &index));
  auto id = EntryTree(*index).Resolve("usr/bin/random3m");
  ASSERT_TRUE(id);
  const auto& e = index->entries(static_cast<int>(*id));
  const size_t first = SpanAt(*index, e.data_offset());
  const size_t last = SpanAt(*index, e.data_offset() + e.size() - 1);
  ASSERT_GT(last, first + 2);
  auto recorder = std::make_shared<HintRecorder>(std::make_shared<SpanInflater>(index, *blob));
  LayerReader reader(index, recorder);
  std::string buf(100 << 10, '\0');
  ASSERT_THAT(reader.ReadFile(*id, 0, absl::MakeSpan(buf)), IsOk());  // spans first, first + 1
  ASSERT_GE(recorder->hints.size(), 2u);
  EXPECT_EQ(recorder->hints[0].first, first);
  EXPECT_TRUE(recorder->hints[0].second.file_start);
  EXPECT_EQ(recorder->hints[0].second.last_span, last);
  EXPECT_FALSE(recorder->hints[1].second.file_start);  // the same read's next span
  EXPECT_EQ(recorder->hints[1].second.last_span, last);
  recorder->hints.clear();
  ASSERT_THAT(reader.ReadFile(*id, e.size() - 10, absl::MakeSpan(buf)), IsOk());
  ASSERT_EQ(recorder->hints.size(), 1u);
  EXPECT_EQ(recorder->hints[0].first, last);
  EXPECT_FALSE(recorder->hints[0].second.file_start);
  recorder->hints.clear();
  ASSERT_THAT(reader.ReadAt(0, absl::MakeSpan(buf)), IsOk());
  ASSERT_FALSE(recorder->hints.empty());
  EXPECT_EQ(recorder->hints[0].second.last_span, SIZE_MAX);
}

// A run of spans comes from one read of the blob and equals the spans one by one; a
// corrupt byte in the run fails it (never wrong bytes).
class CountingBlob : public BlobReader {
 public:
  explicit CountingBlob(const BlobReader& inner) : inner_(inner) {}
  absl::StatusOr<size_t> ReadAt(uint64_t offset, absl::Span<char> dst) const override {
    ++reads;
    return inner_.ReadAt(offset, dst);
  }
  absl::StatusOr<uint64_t> Size() const override { return inner_.Size(); }
  mutable std::atomic<int> reads{0};

 private:
  const BlobReader& inner_;
};

TEST(SpanInflaterTest, RunOfSpansInOneRead) {
  std::unique_ptr<FileBlobReader> blob;
  std::shared_ptr<const LayerIndex> index;
  ASSERT_NO_FATAL_FAILURE(IndexWithSmallSpans(&blob, &index));
  ASSERT_GT(index->checkpoints_size(), 5);
  CountingBlob counting(*blob);
  SpanInflater spans(index, counting);
  auto run = spans.GetSpans(2, 3);
  ASSERT_THAT(run, IsOk());
  EXPECT_EQ(counting.reads.load(), 1);
  ASSERT_EQ(run->size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(*(*run)[i], **spans.GetSpan(2 + i)) << i;
  const size_t n = static_cast<size_t>(index->checkpoints_size());
  EXPECT_THAT(spans.GetSpans(n - 2, 2), IsOk());  // the last span ends at the blob's end
  EXPECT_EQ(spans.GetSpans(n - 1, 2).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(spans.GetSpans(0, 0).status().code(), absl::StatusCode::kOutOfRange);

  std::string bytes = ReadFile(g_dir + "/posix.tar.gz");
  const auto& cp = index->checkpoints(3);
  bytes[cp.compressed_offset() + 100] ^= 0x5a;
  MemoryBlobReader bad_blob(bytes);
  SpanInflater bad(index, bad_blob);
  EXPECT_THAT(bad.GetSpans(2, 3), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(bad.GetSpans(0, 2), IsOk());
}

TEST(LayerFixtureTest, AttributesFromGnuTar) {
  auto index = Build("posix.tar.gz");
  ASSERT_THAT(index, IsOk());
  EntryTree tree(*index);
  auto entry = [&](const std::string& path) -> const index::v1::Entry& {
    auto id = tree.Resolve(path);
    EXPECT_TRUE(id) << path;
    return index->entries(static_cast<int>(id.value_or(0)));
  };
  EXPECT_EQ(entry("setuid").mode(), 04755u);
  EXPECT_EQ(entry("setgid").mode(), 02710u);
  EXPECT_EQ(entry("sticky").mode(), 01777u);
  EXPECT_EQ(entry("etc/hello.txt").mtime_sec(), 1577934245);
  EXPECT_EQ(entry("etc/hello.txt").mtime_nsec(), 123456789u);
  EXPECT_EQ(entry("empty").mtime_sec(), -14182940);  // 1969-07-20 20:17:40.5 UTC
  EXPECT_EQ(entry("empty").mtime_nsec(), 500000000u);
  EXPECT_EQ(entry("b513").uid(), 4000000u);
  EXPECT_EQ(entry("chardev").type(), index::v1::CHAR_DEVICE);
  EXPECT_EQ(entry("chardev").dev_major(), 1u);
  EXPECT_EQ(entry("chardev").dev_minor(), 3u);
  EXPECT_EQ(entry("fifo").type(), index::v1::FIFO);
  EXPECT_EQ(entry("usr/bin/abs-link").link_target(), "/etc/hello.txt");
  EXPECT_EQ(entry("removed/gone").type(), index::v1::WHITEOUT);
  EXPECT_TRUE(entry("opaque-dir").opaque());
  EXPECT_FALSE(tree.Resolve("opaque-dir/.wh..wh..opq"));
  const auto& cap = entry("usr/bin/random700k");
  ASSERT_EQ(cap.xattrs_size(), 1);
  EXPECT_EQ(cap.xattrs(0).key(), "security.capability");
  EXPECT_EQ(cap.xattrs(0).value().size(), 20u);
  const auto& dir = entry("etc/app");
  ASSERT_EQ(dir.xattrs_size(), 1);
  EXPECT_EQ(dir.xattrs(0).value(), std::string("\x00\x01"
                                               "binary",
                                               8));
  int links = 0;
  for (const auto& e : index->entries()) links += e.type() == index::v1::HARDLINK;
  EXPECT_EQ(links, 3);
}

// Names are bytes: a name, a directory, a symlink's name and target, a hardlink and an
// xattr name that are not UTF-8 are kept byte for byte, survive the file format, and
// read back through the index (GNU tar's ustar bytes and its PAX hdrcharset=BINARY).
TEST(LayerFixtureTest, NamesThatAreNotUtf8AreBytes) {
  for (const std::string name : {"gnu.tar.gz", "posix.tar.gz"}) {
    auto built = Build(name);
    ASSERT_THAT(built, IsOk());
    auto checked = EncodeCheckedIndex(*built);
    ASSERT_THAT(checked, IsOk()) << name << ": " << checked.status();
    auto decoded = DecodeIndex(*checked);
    ASSERT_THAT(decoded, IsOk());
    auto index = std::make_shared<const LayerIndex>(*std::move(decoded));
    EntryTree tree(*index);
    auto id = [&](const std::string& path) {
      auto found = tree.Resolve(path);
      EXPECT_TRUE(found) << name << ": " << path;
      return found.value_or(0);
    };
    const auto& file = index->entries(static_cast<int>(id("caf\xe9")));
    const auto& hard = index->entries(static_cast<int>(id("hard-\xe9")));
    // tar stores whichever name it met first as the file, the other as its hardlink.
    const auto& link = file.type() == index::v1::HARDLINK ? file : hard;
    EXPECT_EQ(link.type(), index::v1::HARDLINK) << name;
    EXPECT_TRUE(link.link_target() == "caf\xe9" || link.link_target() == "hard-\xe9");
    const auto& data = file.type() == index::v1::HARDLINK ? hard : file;
    if (name == "posix.tar.gz") {  // xattrs: PAX SCHILY.xattr.* (--format=gnu has none)
      ASSERT_EQ(data.xattrs_size(), 1) << name;
      EXPECT_EQ(data.xattrs(0).key(), "user.na\xefve");
      EXPECT_EQ(data.xattrs(0).value(), std::string("\xff\x00value", 7));
    }
    EXPECT_EQ(index->entries(static_cast<int>(id("link-\xe0"))).link_target(), "caf\xe9");
    EXPECT_EQ(index->entries(static_cast<int>(id("bytes-\xff\xfe"))).type(), index::v1::DIRECTORY);
    auto blob = FileBlobReader::Open(g_dir + "/" + name);
    ASSERT_THAT(blob, IsOk());
    LayerReader reader(index, std::make_shared<SpanInflater>(index, **blob));
    std::string got(64, '\0');
    auto n = reader.ReadFile(id("bytes-\xff\xfe/\xe9t\xe9"), 0, absl::MakeSpan(got));
    ASSERT_THAT(n, IsOk());
    EXPECT_EQ(got.substr(0, *n), "inside\n");
  }
}

TEST(BadLayerTest, HostileAndUnsupportedInputsAreRejected) {
  EXPECT_EQ(Build("dotdot.tar.gz").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Build("sparse.tar.gz").status().code(), absl::StatusCode::kUnimplemented);
  MemoryBlobReader zstd(std::string("\x28\xb5\x2f\xfd\x00\x00\x00\x00", 8));
  EXPECT_EQ(BuildLayerIndex(zstd).status().code(), absl::StatusCode::kUnimplemented);
  std::mt19937_64 rng(1);
  std::string garbage(100000, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  garbage[0] = 'x';
  MemoryBlobReader g(garbage);
  EXPECT_EQ(BuildLayerIndex(g).status().code(), absl::StatusCode::kDataLoss);
}

TEST(BadLayerTest, TruncatedLayersAreDataLoss) {
  for (const std::string name : {"posix.tar.gz", "posix.tar", "multi.tar.gz"}) {
    std::string raw = ReadFile(g_dir + "/" + name);
    // For gzip, cutting the 8-byte trailer is already loss; a plain tar cut inside its
    // final zero blocks is complete (GNU tar agrees), so its cuts stay inside members.
    size_t last = absl::EndsWith(name, ".gz") ? raw.size() - 5 : raw.size() * 9 / 10;
    for (size_t cut : {size_t{10}, size_t{600}, raw.size() / 3, raw.size() / 2, last}) {
      MemoryBlobReader blob(raw.substr(0, cut));
      EXPECT_EQ(BuildLayerIndex(blob).status().code(), absl::StatusCode::kDataLoss)
          << name << " cut at " << cut;
    }
  }
}

TEST(BadLayerTest, CorruptCompressedBytesAreDataLoss) {
  std::string raw = ReadFile(g_dir + "/posix.tar.gz");
  for (size_t pos : {size_t{100}, raw.size() / 2, raw.size() - 12, raw.size() - 3}) {
    std::string bad = raw;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x55);
    MemoryBlobReader blob(bad);
    EXPECT_EQ(BuildLayerIndex(blob).status().code(), absl::StatusCode::kDataLoss) << pos;
  }
}

TEST(BadLayerTest, CorruptBlobAtReadTimeIsDataLossForThatSpanOnly) {
  std::string raw = ReadFile(g_dir + "/posix.tar.gz");
  MemoryBlobReader good(raw);
  auto built = BuildLayerIndex(good);
  ASSERT_THAT(built, IsOk());
  auto index = std::make_shared<const LayerIndex>(*std::move(built));
  ASSERT_GE(SpanCount(*index), 3u);
  std::string bad = raw;
  size_t mid =
      (index->checkpoints(1).compressed_offset() + index->checkpoints(2).compressed_offset()) / 2;
  bad[mid] = static_cast<char>(bad[mid] ^ 0x01);
  MemoryBlobReader corrupt(bad);
  SpanInflater spans(index, corrupt);
  EXPECT_EQ(spans.GetSpan(1).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(spans.GetSpan(0), IsOk());
  EXPECT_THAT(spans.GetSpan(2), IsOk());
  // A blob cut short fails the reads it cannot serve, as DataLoss or OutOfRange.
  MemoryBlobReader shorter(raw.substr(0, raw.size() / 2));
  SpanInflater short_spans(index, shorter);
  EXPECT_THAT(short_spans.GetSpan(SpanCount(*index) - 1), StatusIs(absl::StatusCode::kOutOfRange));
}

TEST(IndexCommandsTest, BuildInspectCat) {
  std::string idx = g_dir + "/cmd.idx";
  std::ostringstream out;
  ASSERT_THAT(IndexBuildCommand(g_dir + "/gnu.tar.gz", idx, {}, out), IsOk());
  // --spans: one line per span, covering the layer in order.
  std::ostringstream span_lines;
  ASSERT_THAT(IndexInspectCommand(idx, true, span_lines), IsOk());
  auto built = Build("gnu.tar.gz");
  ASSERT_THAT(built, IsOk());
  std::vector<std::string> lines = absl::StrSplit(span_lines.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), SpanCount(*built));
  uint64_t next_u = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::vector<std::string> f = absl::StrSplit(lines[i], ' ');
    ASSERT_EQ(f.size(), 7u) << lines[i];
    EXPECT_EQ(f[0], "span");
    EXPECT_EQ(f[1], absl::StrCat(i));
    EXPECT_EQ(f[2], absl::StrCat(next_u));
    next_u += std::stoull(f[3]);
    EXPECT_EQ(f[6], absl::StrCat(built->checkpoints(static_cast<int>(i)).window().size()));
  }
  EXPECT_EQ(next_u, built->uncompressed_size());
  std::ostringstream cat;
  ASSERT_THAT(IndexCatCommand(idx, g_dir + "/gnu.tar.gz", "etc/app/seq.txt", cat), IsOk());
  EXPECT_EQ(cat.str(), ReadFile(g_dir + "/tree/etc/app/seq.txt"));
  std::ostringstream none;
  EXPECT_EQ(IndexCatCommand(idx, g_dir + "/gnu.tar.gz", "no/such", none).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(IndexCatCommand(idx, g_dir + "/posix.tar.gz", "etc/hello.txt", none).code(),
            absl::StatusCode::kInvalidArgument);  // Another layer.
  EXPECT_EQ(IndexBuildCommand(g_dir + "/dotdot.tar.gz", g_dir + "/bad.idx", {}, out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(IndexInspectCommand(g_dir + "/gnu.tar.gz", false, out).code(),
            absl::StatusCode::kDataLoss);
  // Names that are not UTF-8: built, written, read back and served byte for byte.
  std::ostringstream latin1;
  ASSERT_THAT(IndexCatCommand(idx, g_dir + "/gnu.tar.gz", "caf\xe9", latin1), IsOk());
  EXPECT_EQ(latin1.str(), "latin-1 name\n");
  std::ostringstream inside;
  ASSERT_THAT(IndexCatCommand(idx, g_dir + "/gnu.tar.gz", "bytes-\xff\xfe/\xe9t\xe9", inside),
              IsOk());
  EXPECT_EQ(inside.str(), "inside\n");
}

}  // namespace
}  // namespace clip
