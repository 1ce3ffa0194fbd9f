#include "fs/passthrough.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;
using ::testing::HasSubstr;

std::unique_ptr<PassthroughTable> NewTable(uint64_t inodes) {
  absl::StatusOr<std::unique_ptr<PassthroughTable>> t = PassthroughTable::Create(inodes);
  EXPECT_THAT(t, IsOk());
  return t.ok() ? *std::move(t) : nullptr;
}

std::function<absl::StatusOr<int32_t>()> GivesId(int32_t id, int* calls) {
  return [id, calls]() -> absl::StatusOr<int32_t> {
    ++*calls;
    return id;
  };
}

TEST(PassthroughTableTest, ANotOpenLocalFileOpensInPassthroughWithOneIdForAllItsOpens) {
  std::unique_ptr<PassthroughTable> t = NewTable(10);
  ASSERT_NE(t, nullptr);
  int calls = 0;
  PassthroughTable::Opened a = t->Open(3, /*local=*/true, GivesId(7, &calls));
  PassthroughTable::Opened b = t->Open(3, /*local=*/true, GivesId(8, &calls));
  EXPECT_EQ(a.handle, kPassthroughHandle);
  EXPECT_EQ(a.backing_id, 7);
  EXPECT_EQ(b.backing_id, 7);  // one backing file per inode
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(t->opens(3), -2);
  t->Release(3, kPassthroughHandle);
  t->Release(3, kPassthroughHandle);
  EXPECT_EQ(t->opens(3), 0);
  EXPECT_EQ(t->backing_id(3), 7);  // kept for the mount's life
  EXPECT_EQ(t->Open(3, true, GivesId(9, &calls)).backing_id, 7);
  EXPECT_EQ(calls, 1);
}

TEST(PassthroughTableTest, AFileOpenInCachedModeStaysCachedUntilItsLastRelease) {
  std::unique_ptr<PassthroughTable> t = NewTable(10);
  ASSERT_NE(t, nullptr);
  int calls = 0;
  EXPECT_EQ(t->Open(4, /*local=*/false, GivesId(1, &calls)).handle, kCachedHandle);
  EXPECT_EQ(t->Open(4, /*local=*/false, GivesId(1, &calls)).handle, kCachedHandle);
  // The tree exists now, but the kernel refuses passthrough while cached opens exist.
  EXPECT_EQ(t->Open(4, /*local=*/true, GivesId(1, &calls)).handle, kCachedHandle);
  EXPECT_EQ(t->opens(4), 3);
  for (int i = 0; i < 3; ++i) t->Release(4, kCachedHandle);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(t->Open(4, /*local=*/true, GivesId(5, &calls)).handle, kPassthroughHandle);
  // ... and once in passthrough, every open is, whatever `local` says.
  EXPECT_EQ(t->Open(4, /*local=*/false, GivesId(6, &calls)).handle, kPassthroughHandle);
  EXPECT_EQ(t->opens(4), -2);
}

TEST(PassthroughTableTest, ARefusedBackingFileOpensCachedAndIsAskedAgainLater) {
  std::unique_ptr<PassthroughTable> t = NewTable(10);
  ASSERT_NE(t, nullptr);
  auto refuse = []() -> absl::StatusOr<int32_t> { return absl::PermissionDeniedError("no"); };
  EXPECT_EQ(t->Open(2, true, refuse).handle, kCachedHandle);
  EXPECT_EQ(t->opens(2), 1);
  EXPECT_EQ(t->backing_id(2), 0);
}

TEST(PassthroughTableTest, InodesOutOfRangeOpenCachedAndCountNothing) {
  std::unique_ptr<PassthroughTable> t = NewTable(2);
  ASSERT_NE(t, nullptr);
  int calls = 0;
  EXPECT_EQ(t->Open(0, true, GivesId(1, &calls)).handle, kCachedHandle);
  EXPECT_EQ(t->Open(3, true, GivesId(1, &calls)).handle, kCachedHandle);
  t->Release(3, kCachedHandle);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(t->opens(2), 0);
}

TEST(PassthroughTableTest, ATableAttachedFromItsFdSharesTheCountsLikeTheNextDaemon) {
  std::unique_ptr<PassthroughTable> first = NewTable(100);
  ASSERT_NE(first, nullptr);
  int calls = 0;
  first->Open(10, true, GivesId(42, &calls));
  first->Open(11, false, GivesId(43, &calls));
  absl::StatusOr<std::unique_ptr<PassthroughTable>> attached =
      PassthroughTable::Attach(dup(first->fd()));
  ASSERT_THAT(attached, IsOk());
  std::unique_ptr<PassthroughTable> next = *std::move(attached);
  EXPECT_EQ(next->inodes(), 100u);
  EXPECT_EQ(next->opens(10), -1);
  EXPECT_EQ(next->backing_id(10), 42);
  EXPECT_EQ(next->opens(11), 1);
  // The first daemon is gone: the next one's opens of inode 10 reuse the kernel's id.
  first.reset();
  EXPECT_EQ(next->Open(10, true, GivesId(99, &calls)).backing_id, 42);
  EXPECT_EQ(next->Open(11, true, GivesId(99, &calls)).handle, kCachedHandle);
  EXPECT_EQ(calls, 1);
}

TEST(PassthroughTableTest, WhatIsNotATableIsRefusedWithDataLoss) {
  int fd = memfd_create("not-a-table", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::string junk(64, 'x');
  ASSERT_EQ(write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  EXPECT_THAT(PassthroughTable::Attach(fd),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("unknown layout")));
  int short_fd = memfd_create("short", MFD_CLOEXEC);
  ASSERT_EQ(write(short_fd, "abc", 3), 3);
  EXPECT_THAT(PassthroughTable::Attach(short_fd), StatusIs(absl::StatusCode::kDataLoss));
  int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  EXPECT_THAT(PassthroughTable::Attach(dir), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(PassthroughProtocolTest, InitOfferAndRepliesArePatchedWhereTheProtocolSays) {
  std::string init(40 + 64, '\0');
  const uint32_t flags = 1u << 30, flags2 = 1u << 5;
  std::memcpy(&init[40 + 12], &flags, 4);
  EXPECT_FALSE(InitOffersPassthrough(init));
  std::memcpy(&init[40 + 16], &flags2, 4);
  EXPECT_TRUE(InitOffersPassthrough(init));
  EXPECT_FALSE(InitOffersPassthrough(init.substr(0, 50)));

  char header[16] = {};
  char out[64] = {};
  iovec iov[2] = {{header, sizeof(header)}, {out, sizeof(out)}};
  ASSERT_TRUE(EnablePassthroughInReply(iov, 2));
  uint32_t v;
  std::memcpy(&v, out + 12, 4);
  EXPECT_EQ(v, 1u << 30);
  std::memcpy(&v, out + 32, 4);
  EXPECT_EQ(v, 1u << 5);
  std::memcpy(&v, out + 36, 4);
  EXPECT_EQ(v, 1u);     // max_stack_depth: overlayfs on top still mounts
  iov[1].iov_len = 24;  // an old protocol's short reply: left alone
  EXPECT_FALSE(EnablePassthroughInReply(iov, 2));

  char open_out[16] = {};
  iovec open_iov[2] = {{header, sizeof(header)}, {open_out, sizeof(open_out)}};
  ASSERT_TRUE(SetBackingIdInOpenReply(open_iov, 2, 5));
  std::memcpy(&v, open_out + 8, 4);
  EXPECT_EQ(v, 1u << 7);
  std::memcpy(&v, open_out + 12, 4);
  EXPECT_EQ(v, 5u);
  EXPECT_FALSE(SetBackingIdInOpenReply(open_iov, 1, 5));
}

}  // namespace
}  // namespace clip
