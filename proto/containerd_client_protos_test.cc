// Wire-compatibility checks for the containerd 1.6 client APIs (descriptor, content,
// images, leases, namespaces): hand-encoded golden bytes pin field numbers and wire
// types, parsing checks the other direction, and the service descriptors pin the
// gRPC method paths and streaming shapes containerd serves.

#include <string>

#include "containerd/services/content/v1/content.grpc.pb.h"
#include "containerd/services/content/v1/content.pb.h"
#include "containerd/services/images/v1/images.grpc.pb.h"
#include "containerd/services/images/v1/images.pb.h"
#include "containerd/services/leases/v1/leases.grpc.pb.h"
#include "containerd/services/leases/v1/leases.pb.h"
#include "containerd/services/namespaces/v1/namespace.grpc.pb.h"
#include "containerd/services/namespaces/v1/namespace.pb.h"
#include "containerd/types/descriptor.pb.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"

namespace {

namespace content = ::containerd::services::content::v1;
namespace images = ::containerd::services::images::v1;
namespace leases = ::containerd::services::leases::v1;
namespace namespaces = ::containerd::services::namespaces::v1;
using ::containerd::types::Descriptor;

// Builds a byte string from a list of byte values (chars allowed for readability).
std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

std::string Serialize(const google::protobuf::Message& m) {
  std::string out;
  EXPECT_TRUE(m.SerializeToString(&out));
  return out;
}

// ---- containerd.types.Descriptor ----

TEST(DescriptorTest, MediaTypeIsField1) {
  Descriptor d;
  d.set_media_type("a");
  EXPECT_EQ(Serialize(d), Bytes({0x0a, 0x01, 'a'}));
}

TEST(DescriptorTest, AllFieldsGolden) {
  Descriptor d;
  d.set_media_type("m");
  d.set_digest("d");
  d.set_size(300);
  (*d.mutable_annotations())["k"] = "v";
  // 1:"m", 2:"d", 3:varint 300 (0xac 0x02), 5:{1:"k", 2:"v"}.
  EXPECT_EQ(Serialize(d), Bytes({0x0a, 0x01, 'm', 0x12, 0x01, 'd', 0x18, 0xac, 0x02, 0x2a, 0x06,
                                 0x0a, 0x01, 'k', 0x12, 0x01, 'v'}));
}

TEST(DescriptorTest, ParsesHandEncoded) {
  Descriptor d;
  ASSERT_TRUE(d.ParseFromString(Bytes(
      {0x12, 0x03, 's', 'h', 'a', 0x18, 0x05, 0x2a, 0x06, 0x0a, 0x01, 'x', 0x12, 0x01, 'y'})));
  EXPECT_EQ(d.digest(), "sha");
  EXPECT_EQ(d.size(), 5);
  EXPECT_EQ(d.annotations().at("x"), "y");
  EXPECT_EQ(d.media_type(), "");
}

// ---- containerd.services.images.v1 ----

TEST(ImagesTest, ImageTargetIsField3AndTimestampsAre7And8) {
  images::Image img;
  img.set_name("n");
  img.mutable_target()->set_media_type("a");
  img.mutable_created_at()->set_seconds(1);
  img.mutable_updated_at()->set_seconds(2);
  EXPECT_EQ(Serialize(img), Bytes({0x0a, 0x01, 'n',              // 1: name
                                   0x1a, 0x03, 0x0a, 0x01, 'a',  // 3: target
                                   0x3a, 0x02, 0x08, 0x01,       // 7: created_at
                                   0x42, 0x02, 0x08, 0x02}));    // 8: updated_at
}

TEST(ImagesTest, ParsesHandEncodedImage) {
  images::GetImageResponse resp;
  // 1: image { 2: labels {"l":"v"}, 3: target { 2: "d", 3: 7 } }
  ASSERT_TRUE(resp.ParseFromString(Bytes({0x0a, 0x0f,                                    //
                                          0x12, 0x06, 0x0a, 0x01, 'l', 0x12, 0x01, 'v',  //
                                          0x1a, 0x05, 0x12, 0x01, 'd', 0x18, 0x07})));
  ASSERT_TRUE(resp.has_image());
  EXPECT_EQ(resp.image().labels().at("l"), "v");
  EXPECT_EQ(resp.image().target().digest(), "d");
  EXPECT_EQ(resp.image().target().size(), 7);
}

TEST(ImagesTest, RequestsGolden) {
  images::DeleteImageRequest del;
  del.set_name("x");
  del.set_sync(true);
  EXPECT_EQ(Serialize(del), Bytes({0x0a, 0x01, 'x', 0x10, 0x01}));

  images::UpdateImageRequest upd;
  upd.mutable_image()->set_name("x");
  upd.mutable_update_mask()->add_paths("p");
  EXPECT_EQ(Serialize(upd), Bytes({0x0a, 0x03, 0x0a, 0x01, 'x', 0x12, 0x03, 0x0a, 0x01, 'p'}));

  images::ListImagesRequest list;
  list.add_filters("f");
  EXPECT_EQ(Serialize(list), Bytes({0x0a, 0x01, 'f'}));

  images::CreateImageRequest create;
  create.mutable_image()->set_name("x");
  EXPECT_EQ(Serialize(create), Bytes({0x0a, 0x03, 0x0a, 0x01, 'x'}));
}

// ---- containerd.services.content.v1 ----

TEST(ContentTest, WriteActionValues) {
  EXPECT_EQ(content::STAT, 0);
  EXPECT_EQ(content::WRITE, 1);
  EXPECT_EQ(content::COMMIT, 2);
}

TEST(ContentTest, WriteContentRequestGolden) {
  content::WriteContentRequest req;
  req.set_action(content::COMMIT);
  req.set_ref("r");
  req.set_total(3);
  req.set_expected("e");
  req.set_offset(4);
  req.set_data("D");
  (*req.mutable_labels())["k"] = "v";
  EXPECT_EQ(Serialize(req), Bytes({0x08, 0x02,       // 1: action COMMIT
                                   0x12, 0x01, 'r',  // 2: ref
                                   0x18, 0x03,       // 3: total
                                   0x22, 0x01, 'e',  // 4: expected
                                   0x28, 0x04,       // 5: offset
                                   0x32, 0x01, 'D',  // 6: data
                                   0x3a, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v'}));  // 7: labels
}

TEST(ContentTest, ParsesHandEncodedWriteContentResponse) {
  content::WriteContentResponse resp;
  ASSERT_TRUE(resp.ParseFromString(Bytes({0x08, 0x01,              // 1: action WRITE
                                          0x12, 0x02, 0x08, 0x05,  // 2: started_at
                                          0x1a, 0x02, 0x08, 0x06,  // 3: updated_at
                                          0x20, 0x0a,              // 4: offset
                                          0x28, 0x14,              // 5: total
                                          0x32, 0x01, 'd'})));     // 6: digest
  EXPECT_EQ(resp.action(), content::WRITE);
  EXPECT_EQ(resp.started_at().seconds(), 5);
  EXPECT_EQ(resp.updated_at().seconds(), 6);
  EXPECT_EQ(resp.offset(), 10);
  EXPECT_EQ(resp.total(), 20);
  EXPECT_EQ(resp.digest(), "d");
}

TEST(ContentTest, InfoAndReadGolden) {
  content::Info info;
  info.set_digest("d");
  info.set_size(2);
  info.mutable_created_at()->set_seconds(1);
  info.mutable_updated_at()->set_seconds(1);
  (*info.mutable_labels())["k"] = "v";
  EXPECT_EQ(Serialize(info),
            Bytes({0x0a, 0x01, 'd',  0x10, 0x02, 0x1a, 0x02, 0x08, 0x01, 0x22, 0x02,
                   0x08, 0x01, 0x2a, 0x06, 0x0a, 0x01, 'k',  0x12, 0x01, 'v'}));

  content::ReadContentRequest read;
  read.set_digest("d");
  read.set_offset(1);
  read.set_size(2);
  EXPECT_EQ(Serialize(read), Bytes({0x0a, 0x01, 'd', 0x10, 0x01, 0x18, 0x02}));

  content::ReadContentResponse chunk;
  ASSERT_TRUE(chunk.ParseFromString(Bytes({0x08, 0x03, 0x12, 0x02, 'h', 'i'})));
  EXPECT_EQ(chunk.offset(), 3);
  EXPECT_EQ(chunk.data(), "hi");
}

TEST(ContentTest, StatusGolden) {
  content::Status st;
  st.set_ref("r");
  st.set_offset(1);
  st.set_total(2);
  st.set_expected("e");
  EXPECT_EQ(Serialize(st), Bytes({0x1a, 0x01, 'r', 0x20, 0x01, 0x28, 0x02, 0x32, 0x01, 'e'}));
}

// ---- containerd.services.leases.v1 ----

TEST(LeasesTest, CreateRequestLabelsAreField3) {
  leases::CreateRequest req;
  req.set_id("i");
  (*req.mutable_labels())["k"] = "v";
  EXPECT_EQ(Serialize(req), Bytes({0x0a, 0x01, 'i', 0x1a, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v'}));
}

TEST(LeasesTest, ResourceRequestsGolden) {
  leases::AddResourceRequest add;
  add.set_id("l");
  add.mutable_resource()->set_id("d");
  add.mutable_resource()->set_type("content");
  EXPECT_EQ(Serialize(add), Bytes({0x0a, 0x01, 'l', 0x12, 0x0c, 0x0a, 0x01, 'd', 0x12, 0x07, 'c',
                                   'o', 'n', 't', 'e', 'n', 't'}));

  leases::DeleteRequest del;
  del.set_id("l");
  del.set_sync(true);
  EXPECT_EQ(Serialize(del), Bytes({0x0a, 0x01, 'l', 0x10, 0x01}));
}

TEST(LeasesTest, ParsesHandEncodedLease) {
  leases::CreateResponse resp;
  // 1: lease { 1: "i", 2: created_at { 1: 9 }, 3: labels {"k":"v"} }
  ASSERT_TRUE(resp.ParseFromString(Bytes({0x0a, 0x0f, 0x0a, 0x01, 'i', 0x12, 0x02, 0x08, 0x09, 0x1a,
                                          0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v'})));
  EXPECT_EQ(resp.lease().id(), "i");
  EXPECT_EQ(resp.lease().created_at().seconds(), 9);
  EXPECT_EQ(resp.lease().labels().at("k"), "v");
}

// ---- containerd.services.namespaces.v1 ----

TEST(NamespacesTest, Golden) {
  namespaces::ListNamespacesRequest list;
  list.set_filter("f");
  EXPECT_EQ(Serialize(list), Bytes({0x0a, 0x01, 'f'}));

  namespaces::CreateNamespaceRequest create;
  create.mutable_namespace_()->set_name("n");
  (*create.mutable_namespace_()->mutable_labels())["k"] = "v";
  EXPECT_EQ(Serialize(create),
            Bytes({0x0a, 0x0b, 0x0a, 0x01, 'n', 0x12, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v'}));
}

// ---- gRPC method paths and streaming shapes ----

struct MethodShape {
  const char* name;
  const char* input;
  const char* output;
  bool client_streaming;
  bool server_streaming;
};

void ExpectService(const google::protobuf::ServiceDescriptor* service, const char* full_name,
                   std::initializer_list<MethodShape> methods) {
  ASSERT_NE(service, nullptr);
  EXPECT_EQ(service->full_name(), full_name);
  ASSERT_EQ(service->method_count(), static_cast<int>(methods.size()));
  int i = 0;
  for (const MethodShape& want : methods) {
    const google::protobuf::MethodDescriptor* m = service->method(i++);
    SCOPED_TRACE(want.name);
    EXPECT_EQ(m->name(), want.name);
    EXPECT_EQ(m->input_type()->full_name(), want.input);
    EXPECT_EQ(m->output_type()->full_name(), want.output);
    EXPECT_EQ(m->client_streaming(), want.client_streaming);
    EXPECT_EQ(m->server_streaming(), want.server_streaming);
  }
}

TEST(ServicesTest, Content) {
  ExpectService(content::Info::descriptor()->file()->FindServiceByName("Content"),
                "containerd.services.content.v1.Content",
                {
                    {"Info", "containerd.services.content.v1.InfoRequest",
                     "containerd.services.content.v1.InfoResponse", false, false},
                    {"Update", "containerd.services.content.v1.UpdateRequest",
                     "containerd.services.content.v1.UpdateResponse", false, false},
                    {"List", "containerd.services.content.v1.ListContentRequest",
                     "containerd.services.content.v1.ListContentResponse", false, true},
                    {"Delete", "containerd.services.content.v1.DeleteContentRequest",
                     "google.protobuf.Empty", false, false},
                    {"Read", "containerd.services.content.v1.ReadContentRequest",
                     "containerd.services.content.v1.ReadContentResponse", false, true},
                    {"Status", "containerd.services.content.v1.StatusRequest",
                     "containerd.services.content.v1.StatusResponse", false, false},
                    {"ListStatuses", "containerd.services.content.v1.ListStatusesRequest",
                     "containerd.services.content.v1.ListStatusesResponse", false, false},
                    {"Write", "containerd.services.content.v1.WriteContentRequest",
                     "containerd.services.content.v1.WriteContentResponse", true, true},
                    {"Abort", "containerd.services.content.v1.AbortRequest",
                     "google.protobuf.Empty", false, false},
                });
}

TEST(ServicesTest, Images) {
  ExpectService(images::Image::descriptor()->file()->FindServiceByName("Images"),
                "containerd.services.images.v1.Images",
                {
                    {"Get", "containerd.services.images.v1.GetImageRequest",
                     "containerd.services.images.v1.GetImageResponse", false, false},
                    {"List", "containerd.services.images.v1.ListImagesRequest",
                     "containerd.services.images.v1.ListImagesResponse", false, false},
                    {"Create", "containerd.services.images.v1.CreateImageRequest",
                     "containerd.services.images.v1.CreateImageResponse", false, false},
                    {"Update", "containerd.services.images.v1.UpdateImageRequest",
                     "containerd.services.images.v1.UpdateImageResponse", false, false},
                    {"Delete", "containerd.services.images.v1.DeleteImageRequest",
                     "google.protobuf.Empty", false, false},
                });
}

TEST(ServicesTest, Leases) {
  ExpectService(leases::Lease::descriptor()->file()->FindServiceByName("Leases"),
                "containerd.services.leases.v1.Leases",
                {
                    {"Create", "containerd.services.leases.v1.CreateRequest",
                     "containerd.services.leases.v1.CreateResponse", false, false},
                    {"Delete", "containerd.services.leases.v1.DeleteRequest",
                     "google.protobuf.Empty", false, false},
                    {"List", "containerd.services.leases.v1.ListRequest",
                     "containerd.services.leases.v1.ListResponse", false, false},
                    {"AddResource", "containerd.services.leases.v1.AddResourceRequest",
                     "google.protobuf.Empty", false, false},
                    {"DeleteResource", "containerd.services.leases.v1.DeleteResourceRequest",
                     "google.protobuf.Empty", false, false},
                    {"ListResources", "containerd.services.leases.v1.ListResourcesRequest",
                     "containerd.services.leases.v1.ListResourcesResponse", false, false},
                });
}

TEST(ServicesTest, Namespaces) {
  ExpectService(namespaces::Namespace::descriptor()->file()->FindServiceByName("Namespaces"),
                "containerd.services.namespaces.v1.Namespaces",
                {
                    {"Get", "containerd.services.namespaces.v1.GetNamespaceRequest",
                     "containerd.services.namespaces.v1.GetNamespaceResponse", false, false},
                    {"List", "containerd.services.namespaces.v1.ListNamespacesRequest",
                     "containerd.services.namespaces.v1.ListNamespacesResponse", false, false},
                    {"Create", "containerd.services.namespaces.v1.CreateNamespaceRequest",
                     "containerd.services.namespaces.v1.CreateNamespaceResponse", false, false},
                    {"Update", "containerd.services.namespaces.v1.UpdateNamespaceRequest",
                     "containerd.services.namespaces.v1.UpdateNamespaceResponse", false, false},
                    {"Delete", "containerd.services.namespaces.v1.DeleteNamespaceRequest",
                     "google.protobuf.Empty", false, false},
                });
}

// The generated stubs exist and are instantiable types (compile-time check).
static_assert(sizeof(content::Content::Stub) > 0, "content stub");
static_assert(sizeof(images::Images::Stub) > 0, "images stub");
static_assert(sizeof(leases::Leases::Stub) > 0, "leases stub");
static_assert(sizeof(namespaces::Namespaces::Stub) > 0, "namespaces stub");

}  // namespace
