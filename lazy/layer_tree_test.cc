// Layer trees: written from each fixture layer (GNU tar, PAX, pigz, concatenated gzip
// members, plain tar; every entry type, setuid bits, xattrs incl. security.capability,
// hardlinks, device nodes, names that are not UTF-8, whiteouts and an opaque
// directory), each tree equals `tar -x` of the layer in overlay's form (the manifest
// mount_test compares FUSE mounts with); a failure at any entry, a kill -9 at any point
// and a full disk leave nothing at the tree's path, and the next write succeeds.
#include "lazy/layer_tree.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_blob_reader.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"
#include "index/layer_indexer.h"
#include "index/span_inflater.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

std::string Runfile(const std::string& path) {
  return absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"), "/", path);
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Entries of `dir` named like an unfinished tree.
int Unfinished(const std::string& dir) {
  auto out = testing::RunCommand("ls -A " + dir + " | grep -c '\\.tmp-' || true");
  return out.ok() ? std::stoi(*out) : -1;
}

// One layer of the fixtures, opened as the FUSE mount would serve it.
struct Layer {
  std::unique_ptr<BlobReader> blob;
  std::unique_ptr<LayerFs> fs;
};
Layer Open(const std::string& path) {
  Layer l;
  l.blob = FileBlobReader::Open(path).value();
  auto index = std::make_shared<const index::v1::LayerIndex>(BuildLayerIndex(*l.blob).value());
  l.fs = std::make_unique<LayerFs>(index, std::make_shared<SpanInflater>(index, *l.blob));
  return l;
}

class LayerTreeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    layers_ = new std::string(testing::MakeTempDir("layers"));
    // The real-files fixture only for the target that asks for it (CLIP_TREE_REAL=1).
    const bool real = getenv("CLIP_TREE_REAL") != nullptr;
    ASSERT_THAT(testing::RunCommand(std::string(real ? "" : "CLIP_FIXTURES_SKIP_REAL=1 ") +
                                    "bash " + Runfile("index/testdata/make_layers.sh") + " " +
                                    *layers_ + " >/dev/null 2>&1"),
                IsOk());
  }
  void SetUp() override { dir_ = testing::MakeTempDir("trees"); }

  static std::string* layers_;
  std::string dir_;
};
std::string* LayerTreeTest::layers_;

TEST_F(LayerTreeTest, EqualsTarExtractInOverlaysForm) {
  const std::string manifest = "python3 " + Runfile("fs/testdata/tree_manifest.py") + " ";
  for (const char* name :
       {"gnu.tar.gz", "posix.tar.gz", "pigz.tar.gz", "multi.tar.gz", "posix.tar"}) {
    SCOPED_TRACE(name);
    const std::string layer = *layers_ + "/" + name, tree = dir_ + "/tree-" + name,
                      x = dir_ + "/x-" + name;
    Layer l = Open(layer);
    ASSERT_THAT(WriteLayerTree(*l.fs, tree), IsOk());
    ASSERT_THAT(testing::RunCommand("mkdir -p " + x +
                                    " && tar --xattrs --xattrs-include='*' "
                                    "--numeric-owner -xpf " +
                                    layer + " -C " + x),
                IsOk());
    auto want = testing::RunCommand(manifest + x + " --tar-whiteouts");
    auto got = testing::RunCommand(manifest + tree);
    ASSERT_THAT(want, IsOk());
    ASSERT_THAT(got, IsOk());
    EXPECT_GT(std::count(got->begin(), got->end(), '\n'), 40);
    EXPECT_EQ(*got, *want);
    // What the manifest shows of the entries this is about, spelled out.
    // What this is about, spelled out: capabilities, overlay's opaque directory and
    // whiteout, device nodes and a fifo, setuid/setgid/sticky, a file with three names.
    for (const char* must :
         {"security.capability", "trusted.overlay.opaque", " whiteout ", " 20000 ", " 60000 ",
          " 10000 ", " 4755 ", " 2710 ", " 1777 ", "nlink=3 "}) {
      if (std::string(name) == "gnu.tar.gz" && std::string(must) == "security.capability") {
        continue;  // GNU tar's format carries no xattrs
      }
      EXPECT_NE(got->find(must), std::string::npos) << must;
    }
    EXPECT_THAT(WriteLayerTree(*l.fs, tree), StatusIs(absl::StatusCode::kAlreadyExists));
    EXPECT_EQ(Unfinished(dir_), 0);
  }
}

// Real files (a few hundred MB of this machine's /usr: headers, Python's standard
// library, GCC's files), in its own target (//lazy:layer_tree_real_test, which builds
// that fixture).
TEST_F(LayerTreeTest, RealFilesEqualTarExtract) {
  const std::string layer = *layers_ + "/real.tar.gz";
  ASSERT_EQ(access(layer.c_str(), F_OK), 0) << "no real.tar.gz: run as //lazy:layer_tree_real_test";
  const std::string manifest = "python3 " + Runfile("fs/testdata/tree_manifest.py") + " ";
  const std::string tree = dir_ + "/tree", x = dir_ + "/x";
  Layer l = Open(layer);
  ASSERT_THAT(WriteLayerTree(*l.fs, tree), IsOk());
  ASSERT_THAT(testing::RunCommand("mkdir -p " + x + " && tar --xattrs --xattrs-include='*' " +
                                  "--numeric-owner -xpf " + layer + " -C " + x),
              IsOk());
  auto want = testing::RunCommand(manifest + x + " --tar-whiteouts");
  auto got = testing::RunCommand(manifest + tree);
  ASSERT_THAT(want, IsOk());
  ASSERT_THAT(got, IsOk());
  EXPECT_GT(std::count(got->begin(), got->end(), '\n'), 5000);
  // Directories the tar only implies (its root, usr, usr/lib: no member of their own)
  // get the unpacker's time (tar -x and containerd: now; clip: 0): not compared.
  auto members = testing::RunCommand("tar -tzf " + layer + " | sed 's|^\\./||; s|/$||'");
  ASSERT_THAT(members, IsOk());
  std::set<std::string> listed;
  for (absl::string_view m : absl::StrSplit(*members, '\n', absl::SkipEmpty())) {
    listed.insert(std::string(m));
  }
  auto implied_mtimes_out = [&](const std::string& text) {
    std::string out;
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      std::string l(line);
      const std::string path = l.substr(0, l.find(' '));
      const size_t m = l.find(" mtime=");
      if (listed.count(path) == 0 && m != std::string::npos) l.erase(m, l.find(' ', m + 1) - m);
      absl::StrAppend(&out, l, "\n");
    }
    return out;
  };
  *want = implied_mtimes_out(*want);
  *got = implied_mtimes_out(*got);
  if (*got != *want) {  // the first lines that differ
    std::vector<std::string> g = absl::StrSplit(*got, '\n'), w = absl::StrSplit(*want, '\n');
    int shown = 0;
    for (size_t i = 0; i < std::min(g.size(), w.size()) && shown < 5; ++i) {
      if (g[i] == w[i]) continue;
      ADD_FAILURE() << "tree:  " << g[i] << "\ntar -x: " << w[i];
      ++shown;
    }
    EXPECT_EQ(g.size(), w.size());
  }
}

TEST_F(LayerTreeTest, AFailureAtAnyEntryLeavesNothing) {
  Layer l = Open(*layers_ + "/posix.tar.gz");
  const std::string tree = dir_ + "/tree";
  int entries = 0;
  LayerTreeOptions count;
  count.before_entry = [&](const std::string&) {
    ++entries;
    return absl::OkStatus();
  };
  ASSERT_THAT(WriteLayerTree(*l.fs, dir_ + "/counted", count), IsOk());
  ASSERT_GT(entries, 40);
  for (int k = 1; k <= entries; ++k) {
    int seen = 0;
    LayerTreeOptions fail;
    fail.before_entry = [&](const std::string& path) {
      return ++seen == k ? absl::InternalError("injected at " + path) : absl::OkStatus();
    };
    EXPECT_THAT(WriteLayerTree(*l.fs, tree, fail), StatusIs(absl::StatusCode::kInternal)) << k;
    EXPECT_FALSE(Exists(tree)) << k;
    EXPECT_EQ(Unfinished(dir_), 0) << k;
  }
  EXPECT_THAT(WriteLayerTree(*l.fs, tree), IsOk());
}

// A process killed (SIGKILL) while it writes: only an unfinished directory is left,
// never the tree's path; RemoveUnfinishedTrees clears it and the write starts again.
TEST_F(LayerTreeTest, KilledAtAnyPointLeavesNoTree) {
  Layer l = Open(*layers_ + "/posix.tar.gz");
  const std::string tree = dir_ + "/tree";
  for (int k : {1, 2, 5, 10, 20, 30, 40}) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int seen = 0;
      LayerTreeOptions die;
      die.before_entry = [&](const std::string&) {
        if (++seen == k) raise(SIGKILL);
        return absl::OkStatus();
      };
      (void)WriteLayerTree(*l.fs, tree, die);
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << k;
    EXPECT_FALSE(Exists(tree)) << k;
    EXPECT_EQ(Unfinished(dir_), 1) << k;
    ASSERT_THAT(RemoveUnfinishedTrees(dir_), IsOk());
    EXPECT_EQ(Unfinished(dir_), 0) << k;
  }
  EXPECT_THAT(WriteLayerTree(*l.fs, tree), IsOk());
}

TEST_F(LayerTreeTest, AFullDiskIsAClearErrorAndLeavesNothing) {
  const std::string small = dir_ + "/small";
  ASSERT_EQ(mkdir(small.c_str(), 0700), 0);
  ASSERT_THAT(testing::RunCommand("mount -t tmpfs -o size=512k tmpfs " + small), IsOk());
  Layer l = Open(*layers_ + "/posix.tar.gz");  // a few MB of files
  absl::Status st = WriteLayerTree(*l.fs, small + "/tree");
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_NE(st.message().find("the disk is full"), absl::string_view::npos) << st;
  EXPECT_FALSE(Exists(small + "/tree"));
  EXPECT_EQ(Unfinished(small), 0);
  (void)testing::RunCommand("umount -l " + small);
}

// A blob whose every read fails: the spans are gone (dropped from the cache, registry
// unreachable).
class GoneBlob final : public BlobReader {
 public:
  explicit GoneBlob(uint64_t size) : size_(size) {}
  absl::StatusOr<size_t> ReadAt(uint64_t, absl::Span<char>) const override {
    return absl::UnavailableError("the spans are gone");
  }
  absl::StatusOr<uint64_t> Size() const override { return size_; }

 private:
  uint64_t size_;
};

// A running container's mount switched to the tree reads every file from it, also
// when the spans are gone, whole and by pieces, through both read paths FUSE uses.
TEST_F(LayerTreeTest, AMountSwitchedToItsTreeReadsFromTheTree) {
  Layer l = Open(*layers_ + "/posix.tar.gz");
  const std::string tree = dir_ + "/tree";
  ASSERT_THAT(WriteLayerTree(*l.fs, tree), IsOk());
  auto index = std::make_shared<const index::v1::LayerIndex>(BuildLayerIndex(*l.blob).value());
  GoneBlob gone(*l.blob->Size());
  LayerFs fs(index, std::make_shared<SpanInflater>(index, gone));
  auto file = [&](const std::string& path) {
    uint64_t ino = kRootInode;
    for (absl::string_view part : absl::StrSplit(path, '/')) ino = fs.Lookup(ino, part)->ino;
    return *fs.GetAttr(ino);
  };
  std::vector<char> buf(1 << 20);
  const Attr big = file("usr/bin/random3m");
  EXPECT_FALSE(fs.Read(big.ino, 0, absl::MakeSpan(buf)).ok());  // spans only: gone
  EXPECT_FALSE(fs.uses_tree());
  ASSERT_THAT(fs.UseTree(tree), IsOk());
  EXPECT_TRUE(fs.uses_tree());
  for (const char* path :
       {"usr/bin/random3m", "etc/hello.txt", "usr/bin/hard1", "etc/app/seq.txt"}) {
    SCOPED_TRACE(path);
    const Attr a = file(path);
    std::string want = testing::ReadFileOrEmpty(tree + "/" + path), got;
    ASSERT_EQ(want.size(), a.size);
    for (uint64_t off = 0; off < a.size;) {
      auto n = fs.Read(a.ino, off, absl::MakeSpan(buf.data(), 100000));
      ASSERT_THAT(n, IsOk());
      ASSERT_GT(*n, 0u);
      got.append(buf.data(), *n);
      off += *n;
    }
    EXPECT_TRUE(got == want);
    auto slices = fs.ReadSlices(a.ino, a.size / 3, 70000);
    ASSERT_THAT(slices, IsOk());
    std::string sliced;
    for (const SpanSlice& sl : *slices) sliced.append(sl.data, sl.size);
    EXPECT_TRUE(sliced == want.substr(a.size / 3, 70000));
    EXPECT_TRUE(fs.ReadSlices(a.ino, a.size, 10)->empty());  // at the end
  }
}

TEST_F(LayerTreeTest, RemoveUnfinishedTreesOfAMissingDirectory) {
  EXPECT_THAT(RemoveUnfinishedTrees(dir_ + "/none"), IsOk());
}

}  // namespace
}  // namespace clip
