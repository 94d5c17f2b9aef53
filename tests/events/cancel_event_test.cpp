// The cancel event (docs/events.md, "Cancel event"): what a gateway or an app
// writes to kafka.topics.cancels, read back the way every worker reads it.
#include "events/cancel_event.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>

#include "events/events.h"

namespace cascade {
namespace {

using nlohmann::json;

json minimal_cancel() { return {{"id", "req-1"}, {"tenant", "acme"}}; }

std::string rejection(const json& event) {
  auto parsed = parse_cancel_event(event.dump());
  if (parsed) return "(accepted)";
  EXPECT_EQ(parsed.error().code, ErrorCode::invalid_request);
  return parsed.error().message;
}

TEST(CancelEvent, IsWrittenWithEveryFieldAndTypeCancel) {
  const std::string payload =
      make_cancel_event(CancelEvent{.id = "req-1", .tenant = "acme", .reason = "client_closed", .ts_ms = 1767225600123});
  const json out = json::parse(payload);
  EXPECT_EQ(out, json({{"v", 1},
                       {"type", "cancel"},
                       {"id", "req-1"},
                       {"tenant", "acme"},
                       {"reason", "client_closed"},
                       {"ts_ms", 1767225600123}}));
}

TEST(CancelEvent, ReadsBackWhatWasWritten) {
  const CancelEvent cancel{.id = "7d1c6a52-2f0b", .tenant = "acme:eu-1", .reason = "timeout", .ts_ms = 42};
  auto parsed = parse_cancel_event(make_cancel_event(cancel));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->id, cancel.id);
  EXPECT_EQ(parsed->tenant, cancel.tenant);
  EXPECT_EQ(parsed->reason, cancel.reason);
  EXPECT_EQ(parsed->ts_ms, cancel.ts_ms);
}

TEST(CancelEvent, OnlyIdAndTenantAreRequired) {
  auto parsed = parse_cancel_event(minimal_cancel().dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->reason, "");
  EXPECT_EQ(parsed->ts_ms, 0);
  json with_nulls = minimal_cancel();
  with_nulls["reason"] = nullptr;
  with_nulls["ts_ms"] = nullptr;
  with_nulls["type"] = nullptr;
  with_nulls["v"] = nullptr;
  parsed = parse_cancel_event(with_nulls.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->reason, "");
  EXPECT_EQ(parsed->ts_ms, 0);
}

TEST(CancelEvent, UnknownFieldsAndLaterVersionsAreRead) {
  json event = minimal_cancel();
  event["v"] = 3;
  event["gateway"] = {{"region", "eu"}};
  auto parsed = parse_cancel_event(event.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->id, "req-1");
}

TEST(CancelEvent, AnEmptyReasonAndAnyUnicodeReasonAreKeptAsTheyAre) {
  json event = minimal_cancel();
  event["reason"] = "";
  EXPECT_EQ(parse_cancel_event(event.dump())->reason, "");
  event["reason"] = "client fermé 🚪";
  EXPECT_EQ(parse_cancel_event(event.dump())->reason, "client fermé 🚪");
}

TEST(CancelEvent, AMissingOrInvalidIdIsRefusedNamingTheField) {
  json event = minimal_cancel();
  event.erase("id");
  EXPECT_EQ(rejection(event), "cancel event: missing required field 'id'");
  for (const json& bad : {json(""), json(7), json(std::string(257, 'x')), json::array()}) {
    event["id"] = bad;
    EXPECT_EQ(rejection(event), "cancel event: 'id' must be a non-empty string of at most 256 bytes") << bad.dump();
  }
  event["id"] = std::string(256, 'x');
  EXPECT_TRUE(parse_cancel_event(event.dump()));
}

TEST(CancelEvent, AMissingOrInvalidTenantIsRefusedNamingTheField) {
  json event = minimal_cancel();
  event.erase("tenant");
  EXPECT_EQ(rejection(event), "cancel event: missing required field 'tenant'");
  for (const json& bad : {json(""), json("acme corp"), json("acme/eu"), json(std::string(129, 'a')), json(1)}) {
    event["tenant"] = bad;
    EXPECT_EQ(rejection(event),
              "cancel event: 'tenant' must be a non-empty string of at most 128 characters from [A-Za-z0-9._:-]")
        << bad.dump();
  }
}

TEST(CancelEvent, BadReasonTimeTypeOrVersionIsRefusedNamingTheField) {
  json event = minimal_cancel();
  event["reason"] = 5;
  EXPECT_EQ(rejection(event), "cancel event: 'reason' must be a string");
  event = minimal_cancel();
  for (const json& bad : {json(-1), json(1.5), json("1767225600000"), json(18446744073709551615ULL)}) {
    event["ts_ms"] = bad;
    EXPECT_EQ(rejection(event), "cancel event: 'ts_ms' must be a non-negative integer") << bad.dump();
  }
  event = minimal_cancel();
  event["type"] = "chunk";
  EXPECT_EQ(rejection(event), "cancel event: 'type' must be \"cancel\"");
  event["type"] = 1;
  EXPECT_EQ(rejection(event), "cancel event: 'type' must be a string");
  event = minimal_cancel();
  for (const json& bad : {json(0), json("1"), json(1.5)}) {
    event["v"] = bad;
    EXPECT_EQ(rejection(event), "cancel event: 'v' must be a positive integer") << bad.dump();
  }
}

TEST(CancelEvent, AnythingButAJsonObjectIsRefusedWithoutThrowing) {
  for (const std::string payload : {"", "not json", "[1,2]", "\"cancel\"", "{\"id\":", "null", "\xff\xfe"}) {
    auto parsed = parse_cancel_event(payload);
    ASSERT_FALSE(parsed) << payload;
    EXPECT_EQ(parsed.error().code, ErrorCode::invalid_request);
    EXPECT_TRUE(parsed.error().message.starts_with("cancel event: ")) << parsed.error().message;
  }
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  EXPECT_FALSE(parse_cancel_event(deep));
  json huge = minimal_cancel();
  huge["padding"] = std::string(70 * 1024, 'x');
  EXPECT_EQ(rejection(huge), "cancel event: larger than 65536 bytes");
}

TEST(CancelEvent, ItsErrorCodeIsWrittenCancelled) {
  EXPECT_EQ(to_string(ErrorCode::cancelled), "cancelled");
  const json error = json::parse(make_error_event("req-1", 3, Error{ErrorCode::cancelled, "cancelled: client_closed"}));
  EXPECT_EQ(error["error"]["code"], "cancelled");
}

}  // namespace
}  // namespace cascade
