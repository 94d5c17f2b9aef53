#include <gtest/gtest.h>

#include "cache/semantic.h"

namespace cascade {
namespace {

// (query, stored) pairs a semantic cache sees: nearly the same words, and
// either the same question or not. Most come from PAWS and QQP.
struct Case {
  const char* query;
  const char* stored;
  const char* rule;  // "" = accepted
};

void expect_verdicts(const std::vector<Case>& cases, const VerifierOptions& options = {}) {
  const HitVerifier verifier(options);
  for (const Case& c : cases) {
    const Verdict v = verifier.verify(c.query, c.stored);
    EXPECT_EQ(v.rule, c.rule) << c.query << " || " << c.stored;
    EXPECT_EQ(v.accepted, std::string_view(c.rule).empty());
    // Every rule is symmetric: the same verdict whichever text was stored.
    EXPECT_EQ(verifier.verify(c.stored, c.query).accepted, v.accepted) << c.stored << " || " << c.query;
  }
}

TEST(HitVerifier, AcceptsRewordingsThatAskTheSameThing) {
  expect_verdicts({
      {"What is the best way to learn Python?", "what is the best way to learn python", ""},
      {"How do I learn Python?", "How can I learn Python?", ""},
      {"What are the benefits of yoga?", "What are the benefits of doing yoga?", ""},
      {"Which celebrities are on Quora?", "Which celebrities are there on Quora?", ""},
      {"What is meant by surgical strikes?", "What is meant by surgical strike?", ""},
      {"How do I recieve money from abroad?", "How do I receive money from abroad?", ""},
      {"How can I improve my English in 30 days?", "How can I improve my English in thirty days?", ""},
  });
}

TEST(HitVerifier, RejectsDifferentNumbers) {
  expect_verdicts({
      {"What is the price of the iPhone 6?", "What is the price of the iPhone 7?", "numbers"},
      {"Who won the World Cup in 2014?", "Who won the World Cup in 2018?", "numbers"},
      {"What are two ways to save money?", "What are three ways to save money?", "numbers"},
      {"Is 1,000 bigger than 999?", "Is 1000 bigger than 999?", ""},
  });
}

TEST(HitVerifier, RejectsANegatedQuestionForAnAffirmativeOne) {
  expect_verdicts({
      {"Why do cats purr?", "Why don't cats purr?", "negation"},
      {"Can I take ibuprofen with alcohol?", "Can I not take ibuprofen with alcohol?", "negation"},
      {"Which foods have gluten?", "Which foods have no gluten?", "negation"},
      {"Why doesnt my phone charge?", "Why won't my phone charge?", ""},
  });
}

TEST(HitVerifier, RejectsDifferentNamedEntities) {
  expect_verdicts({
      {"What is the capital of France?", "What is the capital of Germany?", "entities"},
      {"What are the top 10 online recruitment portals?", "What are the top 10 online recruitment portals in US?",
       "entities"},
      {"What is the scope of BBA?", "What is the scope of BBA (IT)?", "entities"},
      {"What is the meaning of \"\"of\"\" in this sentence?", "What is the meaning of this sentence?", "entities"},
  });
}

TEST(HitVerifier, RejectsSwappedSubjectsObjectsAndDirections) {
  expect_verdicts({
      {"Flights from New York to Florida", "Flights from Florida to New York", "word_order"},
      {"Does the dog bite the man?", "Does the man bite the dog?", "word_order"},
      // PAWS dev: the same words, the opposite claim.
      {"The film has been criticized for being more horrific than musical .",
       "The film has been criticized for being more musical than horrific .", "word_order"},
      {"Indirect evidence for dark matter comes from its gravitational influence on other matter .",
       "Indirect evidence for dark matter comes from its gravitational influence on dark matter .", "content_words"},
  });
}

TEST(HitVerifier, RejectsASubstitutedOrAddedContentWord) {
  expect_verdicts({
      {"What are the benefits of doing an MBA after a degree in zoology?",
       "What are the benefits of doing an MBA after a degree in aviation?", "substitution"},
      {"Where is a good place to meet selfless people?", "Where is a good place to meet intelligent selfless people?",
       "content_words"},
      {"Robert Hubert warns Robert that another friend is yet to come .",
       "Hubert warns Robert that another friend is yet to come .", "entities"},
      {"robert hubert warns robert that another friend is yet to come",
       "hubert warns robert that another friend is yet to come", "content_words"},
  });
}

TEST(HitVerifier, RejectsAnotherKindOfQuestion) {
  expect_verdicts({
      {"Can constipation cause dizziness?", "How can constipation cause dizziness?", "question_form"},
      {"Why is Python slow?", "How is Python slow?", "question_form"},
      {"Should I stop drinking coffee?", "Can I stop drinking coffee?", "question_form"},
      {"Who invented the telephone?", "When was the telephone invented?", "question_form"},
  });
}

TEST(HitVerifier, RejectsOtherPersonsSymbolsAndPointersToUnseenContent) {
  expect_verdicts({
      {"What is the meaning of my name?", "What is the meaning of your name?", "persons"},
      {"What is the scope after learning C language?", "What is the scope after learning C++ language?", "symbols"},
      {"What is the name of this plant?", "What is the name of the plant?", "deixis"},
  });
}

TEST(HitVerifier, RulesCanBeSwitchedOffOneByOne) {
  VerifierOptions relaxed;
  relaxed.persons = false;
  relaxed.max_unmatched_content_words = 1;
  expect_verdicts(
      {
          {"What is the meaning of my name?", "What is the meaning of your name?", ""},
          {"Where is a good place to meet selfless people?",
           "Where is a good place to meet intelligent selfless people?", ""},
          {"What are the benefits of an MBA in zoology?", "What are the benefits of an MBA in aviation?",
           "substitution"},
      },
      relaxed);
  VerifierOptions order_off;
  order_off.word_order = false;
  EXPECT_TRUE(HitVerifier(order_off).verify("Flights from Boston to Denver", "Flights from Denver to Boston").accepted);
}

TEST(HitVerifier, ListsEveryRuleThatRejects) {
  const HitVerifier verifier;
  const auto rules = verifier.failed_rules("Why did 3 dogs bite Alice?", "How did 4 dogs not bite Bob?");
  EXPECT_EQ(rules, (std::vector<std::string_view>{"numbers", "negation", "entities", "question_form", "substitution"}));
  EXPECT_TRUE(verifier.failed_rules("same words here", "Same words here").empty());
}

TEST(HitVerifier, TreatsTitleCaseAsNoEvidenceOfNames) {
  expect_verdicts({
      {"What Is The Best Way To Learn Python?", "What is the best way to learn Python?", ""},
  });
}

TEST(HitVerifier, SurvivesTextsWithoutWordsOrWithStrayQuotes) {
  const HitVerifier verifier;
  EXPECT_TRUE(verifier.verify("", "").accepted);
  EXPECT_TRUE(verifier.verify("?!", "...").accepted);
  EXPECT_FALSE(verifier.verify("\xE2\x80\x99 hello", "goodbye \xE2\x80\x9C").accepted);
  EXPECT_TRUE(verifier.verify("what\xE2\x80\x99s up", "what's up").accepted);
}

TEST(VerifierOptions, AreSetByNameFromConfigurationText) {
  VerifierOptions o;
  ASSERT_TRUE(set_verifier_option(o, "persons", "false"));
  EXPECT_FALSE(o.persons);
  ASSERT_TRUE(set_verifier_option(o, "max_unmatched_content_words", "2"));
  EXPECT_EQ(o.max_unmatched_content_words, 2);
  EXPECT_FALSE(set_verifier_option(o, "persons", "maybe"));
  EXPECT_FALSE(set_verifier_option(o, "max_order_inversions", "1.5"));
  EXPECT_FALSE(set_verifier_option(o, "no_such_rule", "true"));
}

}  // namespace
}  // namespace cascade
