// Round trip of every snapshots v1 RPC through the generated gRPC code over a unix
// socket, plus golden wire bytes that pin field numbers to containerd's API.

#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "containerd/services/snapshots/v1/snapshots.grpc.pb.h"
#include "containerd/services/snapshots/v1/snapshots.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace {

namespace snapshots = ::containerd::services::snapshots::v1;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;

// A trivial service: it records each request it gets and answers with values derived
// from that request, so the client side can check both directions of the wire.
class RecordingSnapshots final : public snapshots::Snapshots::Service {
 public:
  grpc::Status Prepare(grpc::ServerContext*, const snapshots::PrepareSnapshotRequest* req,
                       snapshots::PrepareSnapshotResponse* resp) override {
    Record(*req);
    auto* m = resp->add_mounts();
    m->set_type("overlay");
    m->set_source("overlay");
    m->add_options("lowerdir=/l/" + req->parent());
    m->add_options("upperdir=/u/" + req->key());
    return grpc::Status::OK;
  }
  grpc::Status View(grpc::ServerContext*, const snapshots::ViewSnapshotRequest* req,
                    snapshots::ViewSnapshotResponse* resp) override {
    Record(*req);
    auto* m = resp->add_mounts();
    m->set_type("bind");
    m->set_source("/l/" + req->parent());
    m->add_options("ro");
    m->add_options("rbind");
    return grpc::Status::OK;
  }
  grpc::Status Mounts(grpc::ServerContext*, const snapshots::MountsRequest* req,
                      snapshots::MountsResponse* resp) override {
    Record(*req);
    auto* m = resp->add_mounts();
    m->set_type("bind");
    m->set_source("/s/" + req->key());
    m->set_target("/target");
    return grpc::Status::OK;
  }
  grpc::Status Commit(grpc::ServerContext*, const snapshots::CommitSnapshotRequest* req,
                      google::protobuf::Empty*) override {
    Record(*req);
    if (req->name() == "exists") {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "snapshot exists already");
    }
    return grpc::Status::OK;
  }
  grpc::Status Remove(grpc::ServerContext*, const snapshots::RemoveSnapshotRequest* req,
                      google::protobuf::Empty*) override {
    Record(*req);
    if (req->key() == "missing") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "snapshot missing: not found");
    }
    return grpc::Status::OK;
  }
  grpc::Status Stat(grpc::ServerContext*, const snapshots::StatSnapshotRequest* req,
                    snapshots::StatSnapshotResponse* resp) override {
    Record(*req);
    FillInfo(req->key(), resp->mutable_info());
    return grpc::Status::OK;
  }
  grpc::Status Update(grpc::ServerContext*, const snapshots::UpdateSnapshotRequest* req,
                      snapshots::UpdateSnapshotResponse* resp) override {
    Record(*req);
    *resp->mutable_info() = req->info();
    resp->mutable_info()->mutable_updated_at()->set_seconds(req->info().created_at().seconds() + 1);
    return grpc::Status::OK;
  }
  grpc::Status List(grpc::ServerContext*, const snapshots::ListSnapshotsRequest* req,
                    grpc::ServerWriter<snapshots::ListSnapshotsResponse>* writer) override {
    Record(*req);
    // One message per filter, two infos each: exercises streaming and repeated fields.
    for (const std::string& filter : req->filters()) {
      snapshots::ListSnapshotsResponse resp;
      FillInfo(filter + "/a", resp.add_info());
      FillInfo(filter + "/b", resp.add_info());
      if (!writer->Write(resp)) return grpc::Status(grpc::StatusCode::CANCELLED, "write");
    }
    return grpc::Status::OK;
  }
  grpc::Status Usage(grpc::ServerContext*, const snapshots::UsageRequest* req,
                     snapshots::UsageResponse* resp) override {
    Record(*req);
    resp->set_size(int64_t{1} << 40);  // Beyond 32 bits on purpose.
    resp->set_inodes(static_cast<int64_t>(req->key().size()));
    return grpc::Status::OK;
  }
  grpc::Status Cleanup(grpc::ServerContext*, const snapshots::CleanupRequest* req,
                       google::protobuf::Empty*) override {
    Record(*req);
    return grpc::Status::OK;
  }

  // The last request the service received, as its type name and serialized bytes.
  std::pair<std::string, std::string> last() {
    absl::MutexLock lock(&mu_);
    return last_;
  }

 private:
  static void FillInfo(const std::string& name, snapshots::Info* info) {
    info->set_name(name);
    info->set_parent("parent-of-" + name);
    info->set_kind(snapshots::COMMITTED);
    info->mutable_created_at()->set_seconds(1700000000);
    info->mutable_created_at()->set_nanos(123456789);
    info->mutable_updated_at()->set_seconds(1700000001);
    (*info->mutable_labels())["containerd.io/snapshot.ref"] = name;
  }

  void Record(const google::protobuf::Message& m) {
    absl::MutexLock lock(&mu_);
    last_ = {m.GetTypeName(), m.SerializeAsString()};
  }

  absl::Mutex mu_;
  std::pair<std::string, std::string> last_ ABSL_GUARDED_BY(mu_);
};

class SnapshotsRoundTripTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A short private directory: unix socket paths are limited to ~107 bytes.
    char dir[] = "/tmp/clip-proto-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ + "/snapshots.sock";
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = snapshots::Snapshots::NewStub(
        grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    unlink(socket_.c_str());
    rmdir(dir_.c_str());
  }

  // Checks the server saw exactly `sent`.
  void ExpectReceived(const google::protobuf::Message& sent) {
    auto [type, bytes] = service_.last();
    EXPECT_EQ(type, sent.GetTypeName());
    std::unique_ptr<google::protobuf::Message> got(sent.New());
    ASSERT_TRUE(got->ParseFromString(bytes));
    EXPECT_TRUE(MessageDifferencer::Equals(*got, sent))
        << "sent: " << sent.DebugString() << "\nreceived: " << got->DebugString();
  }

  std::string dir_;
  std::string socket_;
  RecordingSnapshots service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<snapshots::Snapshots::Stub> stub_;
};

TEST_F(SnapshotsRoundTripTest, Prepare) {
  snapshots::PrepareSnapshotRequest req;
  req.set_snapshotter("clip");
  req.set_key("extract-1 sha256:abc");
  req.set_parent("sha256:parent");
  (*req.mutable_labels())["containerd.io/snapshot.ref"] = "sha256:abc";
  (*req.mutable_labels())["containerd.io/snapshot/cri.layer-digest"] = "sha256:def";
  snapshots::PrepareSnapshotResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Prepare(&ctx, req, &resp).ok());
  ExpectReceived(req);
  ASSERT_EQ(resp.mounts_size(), 1);
  EXPECT_EQ(resp.mounts(0).type(), "overlay");
  EXPECT_THAT(resp.mounts(0).options(),
              ElementsAre("lowerdir=/l/sha256:parent", "upperdir=/u/extract-1 sha256:abc"));
}

TEST_F(SnapshotsRoundTripTest, View) {
  snapshots::ViewSnapshotRequest req;
  req.set_snapshotter("clip");
  req.set_key("view-1");
  req.set_parent("sha256:top");
  (*req.mutable_labels())["k"] = "v";
  snapshots::ViewSnapshotResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->View(&ctx, req, &resp).ok());
  ExpectReceived(req);
  ASSERT_EQ(resp.mounts_size(), 1);
  EXPECT_EQ(resp.mounts(0).source(), "/l/sha256:top");
  EXPECT_THAT(resp.mounts(0).options(), ElementsAre("ro", "rbind"));
}

TEST_F(SnapshotsRoundTripTest, Mounts) {
  snapshots::MountsRequest req;
  req.set_snapshotter("clip");
  req.set_key("container-1");
  snapshots::MountsResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Mounts(&ctx, req, &resp).ok());
  ExpectReceived(req);
  ASSERT_EQ(resp.mounts_size(), 1);
  EXPECT_EQ(resp.mounts(0).source(), "/s/container-1");
  EXPECT_EQ(resp.mounts(0).target(), "/target");
}

TEST_F(SnapshotsRoundTripTest, CommitAndItsErrorCode) {
  snapshots::CommitSnapshotRequest req;
  req.set_snapshotter("clip");
  req.set_name("sha256:layer");
  req.set_key("extract-1");
  (*req.mutable_labels())["containerd.io/snapshot.ref"] = "sha256:layer";
  google::protobuf::Empty empty;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Commit(&ctx, req, &empty).ok());
    ExpectReceived(req);
  }
  req.set_name("exists");
  grpc::ClientContext ctx;
  grpc::Status status = stub_->Commit(&ctx, req, &empty);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(status.error_message(), "snapshot exists already");
}

TEST_F(SnapshotsRoundTripTest, RemoveAndItsErrorCode) {
  snapshots::RemoveSnapshotRequest req;
  req.set_snapshotter("clip");
  req.set_key("container-1");
  google::protobuf::Empty empty;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Remove(&ctx, req, &empty).ok());
    ExpectReceived(req);
  }
  req.set_key("missing");
  grpc::ClientContext ctx;
  EXPECT_EQ(stub_->Remove(&ctx, req, &empty).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SnapshotsRoundTripTest, Stat) {
  snapshots::StatSnapshotRequest req;
  req.set_snapshotter("clip");
  req.set_key("sha256:abc");
  snapshots::StatSnapshotResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Stat(&ctx, req, &resp).ok());
  ExpectReceived(req);
  EXPECT_EQ(resp.info().name(), "sha256:abc");
  EXPECT_EQ(resp.info().parent(), "parent-of-sha256:abc");
  EXPECT_EQ(resp.info().kind(), snapshots::COMMITTED);
  EXPECT_EQ(resp.info().created_at().seconds(), 1700000000);
  EXPECT_EQ(resp.info().created_at().nanos(), 123456789);
  EXPECT_EQ(resp.info().labels().at("containerd.io/snapshot.ref"), "sha256:abc");
}

TEST_F(SnapshotsRoundTripTest, Update) {
  snapshots::UpdateSnapshotRequest req;
  req.set_snapshotter("clip");
  req.mutable_info()->set_name("sha256:abc");
  req.mutable_info()->set_kind(snapshots::ACTIVE);
  req.mutable_info()->mutable_created_at()->set_seconds(42);
  (*req.mutable_info()->mutable_labels())["a"] = "1";
  req.mutable_update_mask()->add_paths("labels.a");
  req.mutable_update_mask()->add_paths("labels");
  snapshots::UpdateSnapshotResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Update(&ctx, req, &resp).ok());
  ExpectReceived(req);
  EXPECT_EQ(resp.info().name(), "sha256:abc");
  EXPECT_EQ(resp.info().kind(), snapshots::ACTIVE);
  EXPECT_EQ(resp.info().updated_at().seconds(), 43);
  EXPECT_EQ(resp.info().labels().at("a"), "1");
}

TEST_F(SnapshotsRoundTripTest, ListStreams) {
  snapshots::ListSnapshotsRequest req;
  req.set_snapshotter("clip");
  req.add_filters("parent==sha256:p");
  req.add_filters("labels.\"containerd.io/snapshot.ref\"==sha256:x");
  grpc::ClientContext ctx;
  auto reader = stub_->List(&ctx, req);
  std::vector<std::string> names;
  snapshots::ListSnapshotsResponse resp;
  while (reader->Read(&resp)) {
    for (const auto& info : resp.info()) names.push_back(info.name());
  }
  ASSERT_TRUE(reader->Finish().ok());
  ExpectReceived(req);
  EXPECT_THAT(names, ElementsAre("parent==sha256:p/a", "parent==sha256:p/b",
                                 "labels.\"containerd.io/snapshot.ref\"==sha256:x/a",
                                 "labels.\"containerd.io/snapshot.ref\"==sha256:x/b"));
}

TEST_F(SnapshotsRoundTripTest, Usage) {
  snapshots::UsageRequest req;
  req.set_snapshotter("clip");
  req.set_key("container-1");
  snapshots::UsageResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Usage(&ctx, req, &resp).ok());
  ExpectReceived(req);
  EXPECT_EQ(resp.size(), int64_t{1} << 40);
  EXPECT_EQ(resp.inodes(), 11);
}

TEST_F(SnapshotsRoundTripTest, Cleanup) {
  snapshots::CleanupRequest req;
  req.set_snapshotter("clip");
  google::protobuf::Empty empty;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Cleanup(&ctx, req, &empty).ok());
  ExpectReceived(req);
}

// containerd dispatches on these exact method paths.
TEST(SnapshotsWireTest, ServiceAndMethodNames) {
  EXPECT_STREQ(snapshots::Snapshots::service_full_name(),
               "containerd.services.snapshots.v1.Snapshots");
  const auto* service = snapshots::Info::descriptor()->file()->FindServiceByName("Snapshots");
  ASSERT_NE(service, nullptr);
  EXPECT_EQ(service->full_name(), "containerd.services.snapshots.v1.Snapshots");
  std::vector<std::string> methods;
  for (int i = 0; i < service->method_count(); ++i) methods.push_back(service->method(i)->name());
  EXPECT_THAT(methods, ElementsAre("Prepare", "View", "Mounts", "Commit", "Remove", "Stat",
                                   "Update", "List", "Usage", "Cleanup"));
  EXPECT_TRUE(service->FindMethodByName("List")->server_streaming());
  EXPECT_EQ(std::string(snapshots::Info::descriptor()->full_name()),
            "containerd.services.snapshots.v1.Info");
  EXPECT_EQ(std::string(containerd::types::Mount::descriptor()->full_name()),
            "containerd.types.Mount");
}

// Golden bytes written by hand from containerd's field numbers (tag = number << 3 | 2 for
// length-delimited, | 0 for varint).
TEST(SnapshotsWireTest, GoldenBytesMatchContainerdFieldNumbers) {
  snapshots::PrepareSnapshotRequest prepare;
  prepare.set_snapshotter("s");
  prepare.set_key("k");
  prepare.set_parent("p");
  (*prepare.mutable_labels())["a"] = "b";
  EXPECT_EQ(prepare.SerializeAsString(), std::string("\x0a\x01s\x12\x01k\x1a\x01p\x22\x06\x0a\x01"
                                                     "a\x12\x01"
                                                     "b",
                                                     17));

  snapshots::CommitSnapshotRequest commit;
  commit.set_name("n");
  commit.set_key("k");
  EXPECT_EQ(commit.SerializeAsString(), std::string("\x12\x01n\x1a\x01k", 6));

  snapshots::Info info;
  info.set_name("n");
  info.set_parent("p");
  info.set_kind(snapshots::COMMITTED);
  info.mutable_created_at()->set_seconds(1);
  info.mutable_updated_at()->set_seconds(2);
  EXPECT_EQ(info.SerializeAsString(),
            std::string("\x0a\x01n\x12\x01p\x18\x03\x22\x02\x08\x01\x2a\x02\x08\x02", 16));

  containerd::types::Mount mount;
  mount.set_type("t");
  mount.set_source("s");
  mount.set_target("g");
  mount.add_options("o");
  EXPECT_EQ(mount.SerializeAsString(), std::string("\x0a\x01t\x12\x01s\x1a\x01g\x22\x01o", 12));

  snapshots::UpdateSnapshotRequest update;
  update.mutable_update_mask()->add_paths("labels");
  EXPECT_EQ(update.SerializeAsString(), std::string("\x1a\x08\x0a\x06labels", 10));

  snapshots::UsageResponse usage;
  usage.set_size(1);
  usage.set_inodes(2);
  EXPECT_EQ(usage.SerializeAsString(), std::string("\x08\x01\x10\x02", 4));

  snapshots::ListSnapshotsRequest list;
  list.add_filters("f");
  EXPECT_EQ(list.SerializeAsString(), std::string("\x12\x01"
                                                  "f",
                                                  3));
}

}  // namespace
