// scan_json (providers/stream_json.h): every value of a document reported
// once, in order, with its path; invalid text and a stopping visitor are
// told apart from a scan that went through.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "providers/stream_json.h"

namespace cascade::stream_json {
namespace {

std::string path_text(Path p) {
  std::string out;
  for (const auto& step : p) out += step.index >= 0 ? "[" + std::to_string(step.index) + "]" : "." + std::string(step.key);
  return out.empty() ? "$" : out;
}

std::vector<std::string> visits(JsonScan& scan, std::string_view text, bool* ok = nullptr) {
  std::vector<std::string> out;
  const bool went = scan(text, [&](Path p, const Value& v) {
    std::string what;
    switch (v.kind) {
      case Kind::null: what = "null"; break;
      case Kind::boolean: what = v.boolean ? "true" : "false"; break;
      case Kind::integer: what = std::to_string(v.integer); break;
      case Kind::number: what = "number"; break;
      case Kind::string: what = "'" + *v.text + "'"; break;
      case Kind::object: what = "{"; break;
      case Kind::array: what = "["; break;
    }
    out.push_back(path_text(p) + "=" + what);
    return Verdict::go_on;
  });
  if (ok) *ok = went;
  return out;
}

TEST(StreamJson, EveryValueIsReportedOnceInOrderWithItsPath) {
  JsonScan scan;
  bool ok = false;
  const auto seen = visits(scan, R"({"a":[1,{"b":"x\n\u00e9"},[true]],"c":null,"d":2.5,"e":18446744073709551615})", &ok);
  EXPECT_TRUE(ok);
  EXPECT_EQ(seen, (std::vector<std::string>{"$={", ".a=[", ".a[0]=1", ".a[1]={", ".a[1].b='x\n\u00e9'", ".a[2]=[",
                                            ".a[2][0]=true", ".c=null", ".d=number", ".e=number"}));
}

TEST(StreamJson, KeysStayRightWhenTheDocumentIsDeeperThanAnyBefore) {
  JsonScan scan;
  (void)visits(scan, R"({"k":1})");  // buffers sized for depth 1
  const auto seen = visits(scan, R"({"first":{"second":{"third":{"fourth":{"fifth":"deep"}}}},"after":0})");
  ASSERT_EQ(seen.size(), 7u);
  EXPECT_EQ(seen[5], ".first.second.third.fourth.fifth='deep'");
  EXPECT_EQ(seen[6], ".after=0");
}

TEST(StreamJson, InvalidTextAndAStoppingVisitorAreNotAScanThrough) {
  JsonScan scan;
  bool ok = true;
  (void)visits(scan, R"({"a":"unterminated)", &ok);
  EXPECT_FALSE(ok);
  (void)visits(scan, R"({"a":1} trailing)", &ok);
  EXPECT_FALSE(ok);
  (void)visits(scan, "\"\xff\"", &ok);  // not UTF-8
  EXPECT_FALSE(ok);
  int calls = 0;
  EXPECT_FALSE(scan(R"([1,2,3])", [&](Path, const Value&) { return ++calls == 2 ? Verdict::stop : Verdict::go_on; }));
  EXPECT_EQ(calls, 2) << "nothing after the stop";
  ok = false;
  EXPECT_EQ(visits(scan, R"([])", &ok).size(), 1u);
  EXPECT_TRUE(ok) << "the scanner is reusable after a failed scan";
}

}  // namespace
}  // namespace cascade::stream_json
