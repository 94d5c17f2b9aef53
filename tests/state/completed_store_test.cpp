#include "state/state.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "support/temp_dir.h"

namespace cascade {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

std::unique_ptr<CompletedAnswerStore> open_ok(const std::string& dir) {
  auto store = CompletedAnswerStore::open(dir);
  if (!store) {
    ADD_FAILURE() << "open failed: " << store.error().message;
    return nullptr;
  }
  return std::move(*store);
}

CompletedAnswer answer(std::string final_event, std::string cost_event) {
  return CompletedAnswer{std::move(final_event), std::move(cost_event)};
}

TEST(CompletedAnswerStore, GetOfAnUnknownRequestIsNullopt) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->get("acme", "req-1"), std::nullopt);
}

TEST(CompletedAnswerStore, PutThenGetReturnsBothEvents) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_TRUE(store);
  const auto a = answer(R"({"type":"final","id":"req-1","text":"hi"})",
                        R"({"type":"cost","id":"req-1","usd":0.0001})");
  ASSERT_TRUE(store->put("acme", "req-1", a));
  auto got = store->get("acme", "req-1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->final_event, a.final_event);
  EXPECT_EQ(got->cost_event, a.cost_event);
}

TEST(CompletedAnswerStore, EmptyEventsRoundTrip) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put("acme", "req-1", answer("", "")));
  auto got = store->get("acme", "req-1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->final_event, "");
  EXPECT_EQ(got->cost_event, "");

  ASSERT_TRUE(store->put("acme", "req-2", answer("", "cost only")));
  got = store->get("acme", "req-2");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->final_event, "");
  EXPECT_EQ(got->cost_event, "cost only");
}

TEST(CompletedAnswerStore, BinaryPayloadsWithNulBytesRoundTripExactly) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_TRUE(store);
  std::string final_event;
  for (int i = 0; i < 512; ++i) final_event.push_back(static_cast<char>(i % 256));
  const std::string cost_event("\0\0\xff\x01 cost", 9);
  ASSERT_TRUE(store->put("acme", "req-bin", answer(final_event, cost_event)));
  auto got = store->get("acme", "req-bin");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->final_event, final_event);
  EXPECT_EQ(got->cost_event, cost_event);
}

TEST(CompletedAnswerStore, OneMegabytePayloadRoundTrips) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_TRUE(store);
  std::string final_event(1 << 20, '\0');
  for (std::size_t i = 0; i < final_event.size(); ++i) final_event[i] = static_cast<char>('a' + i % 26);
  ASSERT_TRUE(store->put("acme", "req-big", answer(final_event, "{\"usd\":1}")));
  auto got = store->get("acme", "req-big");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->final_event.size(), final_event.size());
  EXPECT_TRUE(got->final_event == final_event);
  EXPECT_EQ(got->cost_event, "{\"usd\":1}");
}

TEST(CompletedAnswerStore, PutOverwritesAnEarlierAnswer) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put("acme", "req-1", answer("first", "c1")));
  ASSERT_TRUE(store->put("acme", "req-1", answer("second", "c2")));
  auto got = store->get("acme", "req-1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->final_event, "second");
  EXPECT_EQ(got->cost_event, "c2");
}

TEST(CompletedAnswerStore, SameRequestIdUnderTwoTenantsIsTwoEntries) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put("acme", "req-1", answer("acme answer", "acme cost")));
  ASSERT_TRUE(store->put("globex", "req-1", answer("globex answer", "globex cost")));

  auto acme = store->get("acme", "req-1");
  auto globex = store->get("globex", "req-1");
  ASSERT_TRUE(acme);
  ASSERT_TRUE(globex);
  EXPECT_EQ(acme->final_event, "acme answer");
  EXPECT_EQ(globex->final_event, "globex answer");
  EXPECT_EQ(globex->cost_event, "globex cost");
}

TEST(CompletedAnswerStore, AnotherTenantCannotReadAnAnswer) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put("acme", "req-1", answer("secret", "cost")));
  EXPECT_EQ(store->get("globex", "req-1"), std::nullopt);
  EXPECT_EQ(store->get("", "req-1"), std::nullopt);
  EXPECT_EQ(store->get("acm", "req-1"), std::nullopt);
  EXPECT_EQ(store->get("acme", "req-"), std::nullopt);
}

TEST(CompletedAnswerStore, TenantAndIdBoundaryCannotBeShifted) {
  // ("ab", "c") and ("a", "bc") must not share a key.
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put("ab", "c", answer("ab/c", "")));
  EXPECT_EQ(store->get("a", "bc"), std::nullopt);
  EXPECT_EQ(store->get("abc", ""), std::nullopt);
}

TEST(CompletedAnswerStore, AnswersSurviveCloseAndReopen) {
  TempDir dir;
  {
    auto store = open_ok(dir.path());
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->put("acme", "req-1", answer("kept", "cost kept")));
    ASSERT_TRUE(store->put("globex", "req-2", answer("also kept", "")));
  }
  auto reopened = open_ok(dir.path());
  ASSERT_TRUE(reopened);
  auto got = reopened->get("acme", "req-1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->final_event, "kept");
  EXPECT_EQ(got->cost_event, "cost kept");
  ASSERT_TRUE(reopened->get("globex", "req-2"));
  EXPECT_EQ(reopened->get("acme", "req-2"), std::nullopt);
}

TEST(CompletedAnswerStore, OpenCreatesMissingParentDirectories) {
  TempDir dir;
  const std::string nested = dir.sub("a/b/state");
  auto store = open_ok(nested);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put("acme", "req-1", answer("x", "y")));
  EXPECT_TRUE(std::filesystem::is_directory(nested));
}

TEST(CompletedAnswerStore, OpeningADirectoryAlreadyOpenFailsNamingStateDir) {
  TempDir dir;
  auto first = open_ok(dir.path());
  ASSERT_TRUE(first);
  auto second = CompletedAnswerStore::open(dir.path());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::unavailable);
  EXPECT_THAT(second.error().message, HasSubstr("state.dir"));
  EXPECT_THAT(second.error().message, HasSubstr(dir.path()));

  // The first store keeps working, and the directory opens once it is closed.
  ASSERT_TRUE(first->put("acme", "req-1", answer("x", "y")));
  first.reset();
  auto third = open_ok(dir.path());
  ASSERT_TRUE(third);
  EXPECT_TRUE(third->get("acme", "req-1"));
}

TEST(CompletedAnswerStore, OpenOnAPathThatIsAFileFailsWithAnError) {
  TempDir dir;
  const std::string file = dir.sub("not-a-dir");
  { std::ofstream(file) << "x"; }
  auto store = CompletedAnswerStore::open(file);
  ASSERT_FALSE(store);
  EXPECT_THAT(store.error().message, HasSubstr(file));
}

}  // namespace
}  // namespace cascade
