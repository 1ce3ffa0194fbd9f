// FuseServer's takeover on what a holder hands back: a faithful entry is taken over
// (the same live connection), anything else (truncated or foreign data, an fd that is
// not /dev/fuse) is refused with a log line and the layer mounted again, never a crash.
// Real FUSE mounts, as root.
#include "fs/fuse_server.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "common/file_blob_reader.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"
#include "index/layer_indexer.h"
#include "index/span_inflater.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;

// An FdStore in memory: what Put was given, by name (fds owned here).
class MemoryFdStore final : public FdStore {
 public:
  ~MemoryFdStore() override {
    for (auto& [name, h] : held_) close(h.fd);
  }
  absl::Status Put(const std::string& name, const std::string& data, int fd) override {
    (void)Drop(name);
    held_[name] = HeldFd{name, data, dup(fd)};
    return absl::OkStatus();
  }
  absl::Status Drop(const std::string& name) override {
    if (auto it = held_.find(name); it != held_.end()) {
      close(it->second.fd);
      held_.erase(it);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<HeldFd>> List() override {
    std::vector<HeldFd> out;
    for (const auto& [name, h] : held_) out.push_back(HeldFd{name, h.data, dup(h.fd)});
    return out;
  }
  absl::Status Quit() override { return absl::OkStatus(); }

 private:
  std::map<std::string, HeldFd> held_;
};

class FuseServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir("fuse"));
    std::string script = absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                                      "/index/testdata/make_layers.sh");
    ASSERT_THAT(testing::RunCommand("CLIP_FIXTURES_SKIP_REAL=1 bash " + script + " " + *dir_ +
                                    " >/dev/null 2>&1"),
                IsOk());
    blob_ = FileBlobReader::Open(*dir_ + "/posix.tar.gz").value().release();
    auto index = std::make_shared<const index::v1::LayerIndex>(BuildLayerIndex(*blob_).value());
    fs_ = new std::shared_ptr<const LayerFs>(
        std::make_shared<LayerFs>(index, std::make_shared<SpanInflater>(index, *blob_)));
  }
  void SetUp() override {
    mnt_ = absl::StrCat(*dir_, "/mnt-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    mkdir(mnt_.c_str(), 0755);
  }
  void TearDown() override { umount2(mnt_.c_str(), MNT_DETACH); }

  static std::string Read(const std::string& path) { return testing::ReadFileOrEmpty(path); }

  // A first server mounts and hands the connection to `store`; it is detached (as a
  // daemon that was killed) and the entry is returned as a new server would list it.
  HeldFd MountAndDetach(MemoryFdStore& store) {
    FuseServer first(2, &store);
    auto id = first.Mount(mnt_, *fs_);
    EXPECT_THAT(id, IsOk());
    EXPECT_EQ(Read(mnt_ + "/opaque-dir/kept"), "kept\n");
    first.Detach();
    auto listed = store.List();
    EXPECT_THAT(listed, IsOk());
    EXPECT_EQ(listed->size(), 1u);
    return listed->empty() ? HeldFd{} : (*listed)[0];
  }

  static std::string* dir_;
  static FileBlobReader* blob_;
  static std::shared_ptr<const LayerFs>* fs_;
  std::string mnt_;
};
std::string* FuseServerTest::dir_;
FileBlobReader* FuseServerTest::blob_;
std::shared_ptr<const LayerFs>* FuseServerTest::fs_;

TEST_F(FuseServerTest, TakesOverAFaithfulEntry) {
  MemoryFdStore store;
  HeldFd held = MountAndDetach(store);
  FuseServer second(2, &store);
  second.OfferHeld({held});
  auto id = second.Mount(mnt_, *fs_);
  ASSERT_THAT(id, IsOk());
  EXPECT_TRUE(second.IsAdopted(*id));
  EXPECT_EQ(Read(mnt_ + "/opaque-dir/kept"), "kept\n");
  ASSERT_THAT(second.Unmount(*id), IsOk());
}

// Each damaged entry: refused, the layer mounted again and served.
TEST_F(FuseServerTest, MountsAgainWhenTheHeldEntryIsDamaged) {
  MemoryFdStore store;
  HeldFd good = MountAndDetach(store);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  struct Case {
    const char* what;
    std::string data;
    int fd;
  };
  std::vector<Case> cases = {
      {"truncated INIT", good.data.substr(0, good.data.size() / 2), dup(good.fd)},
      {"prefix only", good.data.substr(0, good.data.find('\n') + 1), dup(good.fd)},
      {"unknown version", "clip-fuse-init-v9\n" + good.data.substr(good.data.find('\n') + 1),
       dup(good.fd)},
      {"empty", "", dup(good.fd)},
      {"not /dev/fuse", good.data, pipe_fds[0]},
  };
  close(pipe_fds[1]);
  for (Case& c : cases) {
    SCOPED_TRACE(c.what);
    umount2(mnt_.c_str(), MNT_DETACH);  // the previous case's mount (or the first's)
    FuseServer server(2, &store);
    server.OfferHeld({HeldFd{mnt_, c.data, c.fd}});
    auto id = server.Mount(mnt_, *fs_);
    ASSERT_THAT(id, IsOk());
    EXPECT_FALSE(server.IsAdopted(*id));
    EXPECT_EQ(Read(mnt_ + "/opaque-dir/kept"), "kept\n");
    ASSERT_THAT(server.Unmount(*id), IsOk());
  }
  close(good.fd);
}

}  // namespace
}  // namespace clip
