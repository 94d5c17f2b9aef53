#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "providers/provider.h"

namespace cascade {

// In namespace cascade so that argument-dependent lookup finds them.
static bool operator==(const SseParser::Event& a, const SseParser::Event& b) {
  return a.event == b.event && a.data == b.data;
}

[[maybe_unused]] static void PrintTo(const SseParser::Event& e, std::ostream* os) {
  *os << "{event=\"" << e.event << "\", data=\"" << e.data << "\"}";
}

namespace {

using Events = std::vector<SseParser::Event>;

Events parse_pieces(const std::vector<std::string_view>& pieces) {
  SseParser parser;
  Events events;
  for (const auto piece : pieces) {
    parser.feed(piece, [&](const SseParser::Event& e) { events.push_back(e); });
  }
  return events;
}

Events parse(std::string_view stream) { return parse_pieces({stream}); }

Events parse_byte_by_byte(std::string_view stream) {
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < stream.size(); ++i) pieces.push_back(stream.substr(i, 1));
  return parse_pieces(pieces);
}

// An OpenAI-style stream with the awkward parts: comments, CRLF, multi-line
// data, a named event, a BOM and the end marker.
constexpr std::string_view kMixedStream =
    "\xEF\xBB\xBF: keep-alive comment\r\n"
    "\r\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n"
    "\r\n"
    "event: ping\n"
    "data: first line\n"
    "data: second line\n"
    "\n"
    "data:no-space\r"
    "\r"
    ": another comment\n"
    "id: 7\n"
    "retry: 1000\n"
    "data: [DONE]\r\n"
    "\r\n";

const Events kMixedEvents = {
    {"", R"({"choices":[{"delta":{"content":"Hel"}}]})"},
    {"ping", "first line\nsecond line"},
    {"", "no-space"},
    {"", "[DONE]"},
};

TEST(SseParser, ParsesWholeStreamIntoEvents) { EXPECT_EQ(parse(kMixedStream), kMixedEvents); }

TEST(SseParser, EverySplitIntoTwoOrThreeReadsGivesTheSameEvents) {
  const std::string_view s = kMixedStream;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    for (std::size_t j = i; j <= s.size(); ++j) {
      const Events events = parse_pieces({s.substr(0, i), s.substr(i, j - i), s.substr(j)});
      ASSERT_EQ(events, kMixedEvents) << "split at " << i << " and " << j;
    }
  }
}

TEST(SseParser, OneByteAtATimeGivesTheSameEvents) {
  EXPECT_EQ(parse_byte_by_byte(kMixedStream), kMixedEvents);
}

TEST(SseParser, EmptyFeedsChangeNothing) {
  SseParser parser;
  Events events;
  const auto sink = [&](const SseParser::Event& e) { events.push_back(e); };
  parser.feed("data: a\r", sink);
  parser.feed("", sink);
  parser.feed("\n\r\n", sink);
  EXPECT_EQ(events, (Events{{"", "a"}}));
}

TEST(SseParser, CrLfSplitAcrossFeedsIsOneLineEnd) {
  // Were the LF taken as a second (blank) line, "a" and "b" would be two events.
  EXPECT_EQ(parse_pieces({"data: a\r", "\ndata: b\r\n\r\n"}), (Events{{"", "a\nb"}}));
}

TEST(SseParser, LfCrAndCrLfLineEndsAreEquivalent) {
  const Events expected = {{"", "x\ny"}, {"", "z"}};
  EXPECT_EQ(parse("data: x\ndata: y\n\ndata: z\n\n"), expected);
  EXPECT_EQ(parse("data: x\rdata: y\r\rdata: z\r\r"), expected);
  EXPECT_EQ(parse("data: x\r\ndata: y\r\n\r\ndata: z\r\n\r\n"), expected);
  EXPECT_EQ(parse("data: x\r\ndata: y\r\rdata: z\n\r\n"), expected);
}

TEST(SseParser, CommentsAreIgnored) {
  EXPECT_EQ(parse(": OPENROUTER PROCESSING\n\n:\n\ndata: a\n: inside an event\n\n"),
            (Events{{"", "a"}}));
}

TEST(SseParser, MultiLineDataIsJoinedWithNewlines) {
  EXPECT_EQ(parse("data: one\ndata:\ndata: three\n\n"), (Events{{"", "one\n\nthree"}}));
}

TEST(SseParser, OnlyOneLeadingSpaceIsStripped) {
  EXPECT_EQ(parse("data:  two spaces\n\n"), (Events{{"", " two spaces"}}));
}

TEST(SseParser, FieldWithoutColonHasEmptyValue) {
  EXPECT_EQ(parse("data\n\n"), (Events{{"", ""}}));
}

TEST(SseParser, EventFieldNamesTheEventAndResetsAfterDispatch) {
  EXPECT_EQ(parse("event: error\ndata: {\"message\":\"x\"}\n\ndata: plain\n\n"),
            (Events{{"error", R"({"message":"x"})"}, {"", "plain"}}));
}

TEST(SseParser, EventWithoutDataIsNotDispatchedAndItsTypeIsDropped) {
  EXPECT_EQ(parse("event: ping\n\ndata: a\n\n"), (Events{{"", "a"}}));
}

TEST(SseParser, UnknownFieldsAreIgnored) {
  EXPECT_EQ(parse("foo: bar\ndata: a\nid: 3\nretry: 10\n\n"), (Events{{"", "a"}}));
}

TEST(SseParser, DoneMarkerIsOrdinaryData) {
  EXPECT_EQ(parse("data: [DONE]\n\n"), (Events{{"", "[DONE]"}}));
}

TEST(SseParser, IncompleteEventAtEndIsNotDispatched) {
  EXPECT_TRUE(parse("data: partial\n").empty());
  EXPECT_TRUE(parse("data: partial").empty());
}

TEST(SseParser, ByteOrderMarkAtStreamStartIsSkipped) {
  EXPECT_EQ(parse("\xEF\xBB\xBF" "data: a\n\n"), (Events{{"", "a"}}));
  EXPECT_EQ(parse_byte_by_byte("\xEF\xBB\xBF" "data: a\n\n"), (Events{{"", "a"}}));
}

TEST(SseParser, ByteOrderMarkLaterInTheStreamIsNotSkipped) {
  // Mid-stream it is part of the field name, which makes the field unknown.
  EXPECT_EQ(parse("data: a\n\n\xEF\xBB\xBF" "data: b\n\ndata: c\n\n"),
            (Events{{"", "a"}, {"", "c"}}));
}

}  // namespace
}  // namespace cascade
