#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "simulator/simulated_upstream.h"

namespace cascade {
namespace {

std::string concatenated(const std::vector<std::string>& pieces) {
  std::string joined;
  for (const std::string& piece : pieces) joined += piece;
  return joined;
}

bool is_valid_utf8(const std::string& text) {
  std::size_t i = 0;
  while (i < text.size()) {
    unsigned char lead = static_cast<unsigned char>(text[i]);
    std::size_t length = lead < 0x80           ? 1
                         : (lead >> 5) == 0x6  ? 2
                         : (lead >> 4) == 0xE  ? 3
                         : (lead >> 3) == 0x1E ? 4
                                               : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
    }
    i += length;
  }
  return true;
}

TEST(SimulatedAnswer, PiecesNumberExactlyChunksAndConcatenateToTheAnswer) {
  const std::vector<std::string> questions = {
      "",
      "   \n\t ",
      "What is the capital of France?",
      std::string(300, 'x'),
      "Explain   the\n\nCAP theorem,\tbriefly, with one example of a CP system and one AP system "
      "and say which one a bank ledger should pick and why.",
  };
  for (const std::string& question : questions) {
    for (int chunks : {1, 2, 3, 5, 7, 20, 64, 500}) {
      SCOPED_TRACE("chunks=" + std::to_string(chunks) + " question=" + question);
      auto pieces = SimulatedUpstream::answer_pieces("gpt-4o-mini", question, chunks);
      ASSERT_EQ(pieces.size(), static_cast<std::size_t>(chunks));
      for (const std::string& piece : pieces) EXPECT_FALSE(piece.empty());
      EXPECT_EQ(concatenated(pieces),
                SimulatedUpstream::answer_for("gpt-4o-mini", question, chunks));
    }
  }
}

TEST(SimulatedAnswer, SaysItIsSimulatedAndEchoesTheQuestion) {
  std::string answer =
      SimulatedUpstream::answer_for("gpt-4o", "What is  the capital\nof France?", 20);
  EXPECT_EQ(answer.rfind("[simulated gpt-4o] ", 0), 0u) << answer;
  EXPECT_NE(answer.find("What is the capital of France?"), std::string::npos) << answer;
}

TEST(SimulatedAnswer, IsDeterministicAndDependsOnModelAndQuestion) {
  EXPECT_EQ(SimulatedUpstream::answer_for("m", "q", 20),
            SimulatedUpstream::answer_for("m", "q", 20));
  EXPECT_EQ(SimulatedUpstream::answer_pieces("m", "q", 7),
            SimulatedUpstream::answer_pieces("m", "q", 7));
  EXPECT_NE(SimulatedUpstream::answer_for("m1", "q", 20),
            SimulatedUpstream::answer_for("m2", "q", 20));
  EXPECT_NE(SimulatedUpstream::answer_for("m", "q1", 20),
            SimulatedUpstream::answer_for("m", "q2", 20));
}

TEST(SimulatedAnswer, LongQuestionEchoIsCutAtACharacterBoundary) {
  std::string question;
  for (int i = 0; i < 100; ++i) question += "\xC3\xA9";  // é, two bytes each
  std::string answer = SimulatedUpstream::answer_for("m", question, 20);
  EXPECT_TRUE(is_valid_utf8(answer)) << answer;
  EXPECT_NE(answer.find("..."), std::string::npos) << answer;
  EXPECT_LT(answer.size(), question.size() + 200);
  for (const std::string& piece : SimulatedUpstream::answer_pieces("m", question, 20)) {
    EXPECT_TRUE(is_valid_utf8(piece)) << piece;
  }
}

TEST(SimulatedAnswer, NonPositiveChunkCountGivesOnePiece) {
  EXPECT_EQ(SimulatedUpstream::answer_pieces("m", "q", 0).size(), 1u);
  EXPECT_EQ(SimulatedUpstream::answer_pieces("m", "q", -3).size(), 1u);
}

}  // namespace
}  // namespace cascade
