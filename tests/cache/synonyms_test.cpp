// WordNet synonyms: read from index files in WordNet's format (a small
// hand-written one, so the test does not depend on the machine), only the
// most frequent senses count, and the verifier's synonyms rule uses them.
#include <gtest/gtest.h>

#include <fstream>

#include "cache/semantic.h"
#include "support/temp_dir.h"

namespace cascade {
namespace {

// wndb(5): lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt offsets,
// most frequent sense first; license lines start with two spaces.
constexpr const char* kIndexVerb =
    "  1 This software and database is being provided to you, the LICENSEE, by\n"
    "buy v 5 8 ! @ ~ * ^ $ + ; 5 2 02207224 02284114 02646757 02212121 00683688  \n"
    "purchase v 1 6 @ ~ * $ + ; 1 1 02207224  \n"
    "get v 4 7 @ ~ * ^ $ + ; 4 2 02210873 00149583 00120796 00770455  \n"
    "make v 4 8 ! @ ~ * ^ $ + ; 4 2 02560585 00120316 01617210 00770455  \n";
constexpr const char* kIndexAdj = "big a 2 5 ! & = + ; 2 1 01382086 01276872  \nlarge a 2 4 ! & = + 2 2 01382086 02163308  \n";

void write(const std::string& path, const char* text) { std::ofstream(path) << text; }

TEST(Synonyms, WordsSharingAFrequentSenseAreSynonyms) {
  testing::TempDir dir;
  write(dir.sub("index.verb"), kIndexVerb);
  write(dir.sub("index.adj"), kIndexAdj);
  auto table = Synonyms::load(dir.path());
  ASSERT_TRUE(table) << table.error().message;
  EXPECT_EQ((*table)->words(), 6u);
  EXPECT_TRUE((*table)->synonyms("buy", "purchase"));
  EXPECT_TRUE((*table)->synonyms("purchase", "buy"));
  EXPECT_TRUE((*table)->synonyms("big", "large"));
  EXPECT_TRUE((*table)->synonyms("buy", "buy"));
  // "get" and "make" share only their fourth sense.
  EXPECT_FALSE((*table)->synonyms("get", "make"));
  EXPECT_FALSE((*table)->synonyms("buy", "large"));
  EXPECT_FALSE((*table)->synonyms("buy", "unknownword"));

  auto four_senses = Synonyms::load(dir.path(), 4);
  ASSERT_TRUE(four_senses);
  EXPECT_TRUE((*four_senses)->synonyms("get", "make"));
}

TEST(Synonyms, ADirectoryWithoutWordNetIsAnError) {
  testing::TempDir dir;
  auto table = Synonyms::load(dir.path());
  ASSERT_FALSE(table);
  EXPECT_EQ(table.error().code, ErrorCode::invalid_request);
}

TEST(Synonyms, TheVerifierMatchesSynonymsOnlyWhenAsked) {
  if (!Synonyms::system()) GTEST_SKIP() << "WordNet is not installed (Debian: wordnet-base; make deps installs it)";
  VerifierOptions strict;
  VerifierOptions with_synonyms;
  with_synonyms.synonyms = true;
  EXPECT_FALSE(HitVerifier(strict).verify("Where can I buy a used car?", "Where can I purchase a used car?").accepted);
  EXPECT_TRUE(HitVerifier(with_synonyms).verify("Where can I buy a used car?", "Where can I purchase a used car?").accepted);
  EXPECT_TRUE(HitVerifier(with_synonyms).verify("Where can I buy used cars?", "Where can I purchase used cars?").accepted);
  // Not synonyms in WordNet's first senses: still a substitution.
  EXPECT_FALSE(HitVerifier(with_synonyms).verify("Where can I buy a used car?", "Where can I sell a used car?").accepted);
}

}  // namespace
}  // namespace cascade
