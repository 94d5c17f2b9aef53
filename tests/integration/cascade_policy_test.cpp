// The cheap-first cascade end to end (docs/routing.md): the cheap model's
// answer is held back and checked, then published or replaced by the next
// tier's, streamed. Quality sampling: quality_sampling_test.cpp.
#include <string>
#include <vector>

#include "integration/cascade_policy_fixture.h"

namespace cascade::testing {
namespace {

TEST_F(CascadePolicyTest, CheapAnswerThatPassesItsChecksIsPublishedAfterOneCallWithoutEscalation) {
  enable_cascade();
  start_pipeline();
  const PromptEvent streamed = request("accepted");
  PromptEvent whole = request("accepted-no-stream", "What is the capital of Italy?");
  whole.stream = false;
  resolve_models(streamed);
  send_and_wait({streamed, whole});

  for (const PromptEvent* e : std::initializer_list<const PromptEvent*>{&streamed, &whole}) {
    const auto& body = expect_final(*e);
    const std::string text = e->messages[0]["content"];
    EXPECT_EQ(body.value("model", ""), cheap_->id);
    EXPECT_EQ(body.value("content", ""), SimulatedUpstream::answer_for(cheap_->upstream_model, text, kChunks));
    const std::string reason = body["route"].value("reason", "");
    EXPECT_NE(reason.find("| cascade: " + cheap_->id + " accepted"), std::string::npos) << reason;
    EXPECT_EQ(reason.find("->"), std::string::npos) << reason;
    // Only the cheap answer was paid for.
    TokenUsage usage{body["usage"].value("input_tokens", 0), body["usage"].value("output_tokens", 0)};
    EXPECT_NEAR(body.value("cost_usd", 0.0), cost_usd(cheap_->price, usage), 1e-15);
  }
  EXPECT_FALSE(reply(streamed).chunks.empty());
  EXPECT_EQ(calls_to(cheap_), 2u);
  EXPECT_EQ(calls_to(strong_), 0u);
  EXPECT_EQ(upstream_->requests_served(), 2u);
  EXPECT_EQ(stats().cascade_accepted.load(), 2u);
  EXPECT_EQ(stats().cascade_escalated.load(), 0u);
  EXPECT_TRUE(cascade_counted("accepted", "checked", 2));
}

TEST_F(CascadePolicyTest, RefusedCheapAnswerIsEscalatedAndOnlyTheStrongAnswerReachesTheClientWhileBothArePaid) {
  enable_cascade();
  chunk_delay_ms = 5;
  start_pipeline();
  const PromptEvent e = request("refused");
  resolve_models(e);
  upstream_->set_answer_rules({{cheap_->upstream_model, "", kRefusal}});
  send_and_wait({e});

  const auto& body = expect_final(e);
  EXPECT_EQ(body.value("model", ""), strong_->id);
  const std::string strong_answer = SimulatedUpstream::answer_for(strong_->upstream_model, kQuestion, kChunks);
  EXPECT_EQ(body.value("content", ""), strong_answer);
  // No chunk of the refusal leaked: the client saw exactly the strong model's stream.
  EXPECT_EQ(concat_chunks(reply(e)), strong_answer);
  for (const auto& chunk : reply(e).chunks) EXPECT_EQ(chunk.body.value("delta", "").find("sorry"), std::string::npos);
  EXPECT_EQ(reply(e).chunks.front().seq, 0);

  const std::string reason = body["route"].value("reason", "");
  EXPECT_NE(reason.find("| cascade: " + cheap_->id + " rejected (refusal) -> " + strong_->id), std::string::npos)
      << reason;
  EXPECT_EQ(calls_to(cheap_), 1u);
  EXPECT_EQ(calls_to(strong_), 1u);

  // cost = the strong answer + the refused cheap one.
  const TokenUsage cheap_usage{simulated_prompt_tokens(kQuestion), scripted_pieces(kRefusal, kChunks)};
  const TokenUsage strong_usage{body["usage"].value("input_tokens", 0), body["usage"].value("output_tokens", 0)};
  const double expected = cost_usd(strong_->price, strong_usage) + cost_usd(cheap_->price, cheap_usage);
  EXPECT_NEAR(body.value("cost_usd", 0.0), expected, 1e-12 * expected);
  EXPECT_GT(cost_usd(cheap_->price, cheap_usage), 0);
  ASSERT_TRUE(wait_ledger(1, std::chrono::seconds(30)));
  EXPECT_NEAR(aggregator_.total().cost_usd, expected, 1e-12 * expected);
  EXPECT_EQ(stats().cascade_escalated.load(), 1u);
  EXPECT_EQ(stats().cascade_accepted.load(), 0u);
}

TEST_F(CascadePolicyTest, EachFailedCheckEscalatesWithItsReasonAndAPassingJsonAnswerIsKept) {
  enable_cascade();
  start_pipeline();
  const nlohmann::json json_mode = {{"type", "json_object"}};
  PromptEvent prose = request("json-prose", "Return the capital of France as JSON.");
  prose.response_format = json_mode;
  PromptEvent valid = request("json-valid", "Return the capital of Spain as JSON.");
  valid.response_format = json_mode;
  PromptEvent cut = request("truncated", "Describe the capital of Germany.");
  cut.max_tokens = 3;  // the simulator stops after 3 pieces: finish_reason length
  PromptEvent empty = request("empty", "Name the capital of Japan.");
  // Without response_format the cheapest model need not do JSON (a hard
  // constraint, docs/routing.md): "empty" may go to another cheap model.
  resolve_models(empty);
  const ModelInfo* cheap_without_json = cheap_;
  resolve_models(prose);
  upstream_->set_answer_rules({
      {cheap_->upstream_model, "France", "The capital of France is Paris."},
      {cheap_->upstream_model, "Spain", R"({"capital": "Madrid"})"},
      {cheap_without_json->upstream_model, "Japan", ""},
      {strong_->upstream_model, "France", R"({"capital": "Paris"})"},
  });
  send_and_wait({prose, valid, cut, empty});

  const auto& escalated_json = expect_final(prose);
  EXPECT_EQ(escalated_json.value("model", ""), strong_->id);
  EXPECT_EQ(escalated_json.value("content", ""), R"({"capital": "Paris"})");
  EXPECT_NE(escalated_json["route"].value("reason", "").find(cheap_->id + " rejected (not JSON) -> " + strong_->id),
            std::string::npos);

  const auto& kept = expect_final(valid);
  EXPECT_EQ(kept.value("model", ""), cheap_->id);
  EXPECT_EQ(kept.value("content", ""), R"({"capital": "Madrid"})");

  const auto& truncated = expect_final(cut);
  EXPECT_EQ(truncated.value("model", ""), strong_->id);
  EXPECT_NE(truncated["route"].value("reason", "").find("rejected (truncated (finish_reason length))"),
            std::string::npos);

  const auto& nothing = expect_final(empty);
  EXPECT_EQ(nothing.value("model", ""), strong_->id);
  EXPECT_NE(nothing["route"].value("reason", "").find("rejected (empty)"), std::string::npos);

  EXPECT_EQ(stats().cascade_escalated.load(), 3u);
  EXPECT_EQ(stats().cascade_accepted.load(), 1u);
  for (const char* reason : {"not_json", "truncated", "empty"}) EXPECT_TRUE(cascade_counted("escalated", reason, 1));
}

TEST_F(CascadePolicyTest, WhenEveryCheapAttemptFailsTheStrongerTierAnswersInsteadOfAnError) {
  enable_cascade();
  env_overrides["CASCADE_ROUTER_MAX_FALLBACKS"] = "0";  // the cheap chain is the routed model alone
  start_pipeline();
  const PromptEvent e = request("cheap-down");
  resolve_models(e);
  upstream_->set_answer_rules({{cheap_->upstream_model, "", "", 400}});  // not retried: falls back at once
  send_and_wait({e});
  const auto& body = expect_final(e);
  EXPECT_EQ(body.value("model", ""), strong_->id);
  EXPECT_EQ(body.value("content", ""), SimulatedUpstream::answer_for(strong_->upstream_model, kQuestion, kChunks));
  const std::string reason = body["route"].value("reason", "");
  EXPECT_NE(reason.find(cheap_->id + ": HTTP 400 -> fall_back; cascade: " + cheap_->id + " failed -> " + strong_->id),
            std::string::npos)
      << reason;
  EXPECT_TRUE(cascade_counted("escalated", "cheap_failed", 1));
}

TEST_F(CascadePolicyTest, AStreamedAnswerOverMaxBufferBytesIsPublishedAndStreamsOnUnchecked) {
  enable_cascade();
  env_overrides["CASCADE_ROUTER_CASCADE_MAX_BUFFER_BYTES"] = "40";
  chunk_delay_ms = 40;
  start_pipeline();
  const PromptEvent e = request("long");
  resolve_models(e);
  PromptEvent warm_up = request("long-warm-up", "What is the capital of Ecuador?");
  warm_up.cascade = false;
  send_and_wait({warm_up});  // partitions assigned, connections open
  const Timing timing = send_and_time(e);
  const auto& body = expect_final(e);
  const std::string answer = SimulatedUpstream::answer_for(cheap_->upstream_model, kQuestion, kChunks);
  ASSERT_GT(answer.size(), 80u);
  EXPECT_EQ(body.value("model", ""), cheap_->id);
  EXPECT_EQ(body.value("content", ""), answer);
  EXPECT_NE(body["route"].value("reason", "").find("cascade: " + cheap_->id +
                                                   " accepted unchecked (answer over max_buffer_bytes)"),
            std::string::npos);
  // Held back only until 40 bytes had come: the first chunk comes well before the end.
  EXPECT_GT(timing.terminal_ms - timing.first_chunk_ms, 2 * chunk_delay_ms) << timing.first_chunk_ms;
  EXPECT_GT(reply(e).chunks.size(), 2u);
  EXPECT_TRUE(cascade_counted("accepted", "unchecked", 1));
}

TEST_F(CascadePolicyTest, AJudgeGradeBelowTheMinimumEscalatesAndAPassingGradeKeepsTheAnswerBothCharged) {
  enable_cascade();
  // The cheap model grades itself here: the grading call is told apart by its prompt.
  const PromptEvent low = request("judged-low", "Who painted the Mona Lisa?");
  const PromptEvent high = request("judged-high", "Who wrote Hamlet?");
  {
    // Resolved before start: the judge model must be in the config.
    auto defaults = load_config("", [](const std::string&) { return std::nullopt; });
    ASSERT_TRUE(defaults);
    auto catalog = ModelCatalog::load(defaults->catalog);
    ASSERT_TRUE(catalog);
    Router router(defaults->router, *catalog, [](std::string_view) { return true; });
    env_overrides["CASCADE_ROUTER_CASCADE_JUDGE_MODEL"] = router.route(low)->model->id;
  }
  env_overrides["CASCADE_ROUTER_CASCADE_MIN_JUDGE_SCORE"] = "3";
  start_pipeline();
  resolve_models(low);
  // A grading call's prompt holds the graded answer, which quotes the question.
  upstream_->set_answer_rules({
      {cheap_->upstream_model, "answer to: \"Who painted the Mona Lisa?\"", "Score: 2"},
      {cheap_->upstream_model, "answer to: \"Who wrote Hamlet?\"", "**Rating:** 4/5"},
  });
  send_and_wait({low, high});

  const auto& escalated = expect_final(low);
  EXPECT_EQ(escalated.value("model", ""), strong_->id);
  EXPECT_NE(escalated["route"].value("reason", "").find(cheap_->id + " rejected (judge " + cheap_->id + ": 2 < 3) -> " +
                                                        strong_->id),
            std::string::npos)
      << escalated["route"].value("reason", "");

  const auto& accepted = expect_final(high);
  EXPECT_EQ(accepted.value("model", ""), cheap_->id);
  const std::string reason = accepted["route"].value("reason", "");
  EXPECT_NE(reason.find("cascade: " + cheap_->id + " accepted (judge " + cheap_->id + ": 4)"), std::string::npos)
      << reason;
  // The grading call is charged to the request: more than the answer alone.
  const TokenUsage usage{accepted["usage"].value("input_tokens", 0), accepted["usage"].value("output_tokens", 0)};
  EXPECT_GT(accepted.value("cost_usd", 0.0), cost_usd(cheap_->price, usage) * 1.0001);
  EXPECT_EQ(calls_to(cheap_), 4u);  // two answers, two grades
  EXPECT_EQ(calls_to(strong_), 1u);
  EXPECT_EQ(stats().judge_calls.load(), 2u);
}

// A GSM8K-style cheap answer: its final line "#### N". The toy verifier
// learns that a fractional N (".5") is wrong for these apple counts.
std::string apples_answer(int i, bool wrong) {
  const std::string n = std::to_string(i) + (wrong ? ".5" : "");
  return "She has <<4*3=12>>12 so " + n + "\n#### " + n;
}

std::string apples_question(int i) { return "How many apples does Tom have in case " + std::to_string(i) + "?"; }

// What route-train --router verifier writes, trained on cheap answers of
// which every third is wrong, set as router.cascade.verifier_file with
// min_verifier_p `min_p` in `env`; the file is written in `dir`.
void use_toy_verifier(const TempDir& dir, std::map<std::string, std::string>& env, const std::string& min_p) {
  std::vector<PairOutcome> rows;
  for (int i = 0; i < 90; ++i) {
    const bool wrong = i % 3 == 0;
    rows.push_back(pair_outcome(apples_question(i), wrong ? 0.0 : 1.0, 1.0, 0.001, 0.01, apples_answer(i, wrong)));
  }
  TrainingOptions options;
  options.hash_bits = 12;
  options.weak_name = "cheap";
  options.strong_name = "strong";
  auto trained = train_verifier(rows, options);
  EXPECT_TRUE(trained) << trained.error().message;
  env["CASCADE_ROUTER_CASCADE_VERIFIER_FILE"] =
      dir.write("verifier.json", trained ? trained->model.dump() : "{}");
  env["CASCADE_ROUTER_CASCADE_MIN_VERIFIER_P"] = min_p;
}

TEST_F(CascadePolicyTest, AnAnswerTheVerifierDoubtsEscalatesAndOneItTrustsIsKeptWithItsProbability) {
  enable_cascade();
  use_toy_verifier(temp_dir_, env_overrides, "0.5");
  start_pipeline();
  const PromptEvent doubted = request("verifier-wrong", apples_question(1001));
  const PromptEvent trusted = request("verifier-right", apples_question(1002));
  resolve_models(doubted);
  upstream_->set_answer_rules({
      {cheap_->upstream_model, "case 1001?", apples_answer(1001, true)},
      {cheap_->upstream_model, "case 1002?", apples_answer(1002, false)},
  });
  send_and_wait({doubted, trusted});

  const auto& escalated = expect_final(doubted);
  EXPECT_EQ(escalated.value("model", ""), strong_->id);
  EXPECT_EQ(escalated.value("content", ""),
            SimulatedUpstream::answer_for(strong_->upstream_model, apples_question(1001), kChunks));
  const std::string rejected = escalated["route"].value("reason", "");
  EXPECT_THAT(rejected, ::testing::ContainsRegex("cascade: " + cheap_->id +
                                                 R"( rejected \(verifier p=0\.[0-4][0-9] < 0\.50\) -> )" + strong_->id));
  EXPECT_EQ(concat_chunks(reply(doubted)).find(".5"), std::string::npos);  // the doubted answer never streamed

  const auto& kept = expect_final(trusted);
  EXPECT_EQ(kept.value("model", ""), cheap_->id);
  EXPECT_EQ(kept.value("content", ""), apples_answer(1002, false));
  EXPECT_THAT(kept["route"].value("reason", ""),
              ::testing::ContainsRegex("cascade: " + cheap_->id + R"( accepted \(verifier p=(0\.[5-9][0-9]|1\.00)\))"));

  EXPECT_EQ(calls_to(cheap_), 2u);
  EXPECT_EQ(calls_to(strong_), 1u);
  EXPECT_TRUE(cascade_counted("escalated", "verifier", 1));
  EXPECT_TRUE(cascade_counted("accepted", "verified", 1));
}

// The verifier learned from text answers: a cheap answer that calls a tool
// is left to the other checks and passes through the cascade whole.
TEST_F(CascadePolicyTest, AToolCallAnswerIsNotScoredByTheVerifierAndReachesTheClientWhole) {
  enable_cascade();
  use_toy_verifier(temp_dir_, env_overrides, "0.99");  // any answer it scores escalates
  start_pipeline();
  const nlohmann::json tools = nlohmann::json::parse(R"([{"type":"function","function":{"name":"get_weather",
      "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])");
  PromptEvent calls = request("tool-call", "What is the weather in Paris today?");
  calls.tools = tools;
  PromptEvent writes = request("tool-text", apples_question(1001));
  writes.tools = tools;
  resolve_models(calls);
  const std::string arguments = R"({"city": "Paris"})";
  upstream_->set_answer_rules({
      {.model = cheap_->upstream_model, .prompt_contains = "weather", .answer = arguments, .tool_name = "get_weather"},
      {.model = cheap_->upstream_model, .prompt_contains = "case 1001?", .answer = apples_answer(1001, true)},
  });
  send_and_wait({calls, writes});

  const auto& kept = expect_final(calls);
  EXPECT_EQ(kept.value("model", ""), cheap_->id);
  EXPECT_EQ(kept.value("content", "?"), "");
  ASSERT_EQ(kept["tool_calls"].size(), 1u) << kept.dump();
  EXPECT_EQ(kept["tool_calls"][0]["type"], "function");
  EXPECT_EQ(kept["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(kept["tool_calls"][0]["function"]["arguments"], arguments);
  EXPECT_TRUE(kept["tool_calls"][0].value("id", "").starts_with("call_sim_")) << kept["tool_calls"].dump();
  const std::string reason = kept["route"].value("reason", "");
  EXPECT_THAT(reason, ::testing::EndsWith("cascade: " + cheap_->id + " accepted"));

  // The same verifier does score a text answer to a request with tools.
  const auto& escalated = expect_final(writes);
  EXPECT_EQ(escalated.value("model", ""), strong_->id);
  EXPECT_THAT(escalated["route"].value("reason", ""),
              ::testing::ContainsRegex(R"(rejected \(verifier p=[01]\.[0-9][0-9] < 0\.99\) -> )" + strong_->id));
  EXPECT_EQ(calls_to(strong_), 1u);
  EXPECT_TRUE(cascade_counted("accepted", "checked", 1));
  EXPECT_TRUE(cascade_counted("escalated", "verifier", 1));
}

// A request with tools gets no agreement call: a tool call has no final
// answer to compare, and the agreement model would be paid for nothing.
TEST_F(CascadePolicyTest, ARequestWithToolsIsNotSentToTheAgreementModel) {
  enable_cascade();
  PromptEvent calls = request("tool-call-agreement", "What is the weather in Quito today?");
  calls.tools = nlohmann::json::parse(R"([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}])");
  const std::string other_id = use_agreement_model_beside_the_cheap_one(calls);
  ASSERT_FALSE(other_id.empty());
  start_pipeline();
  resolve_models(calls);
  const ModelInfo* other = catalog_->find(other_id);
  ASSERT_NE(other, nullptr);
  PromptEvent plain = request("text-agreement", "Tom has 2 bags of 4 apples. How many apples?");
  upstream_->set_answer_rules({
      {.model = cheap_->upstream_model, .prompt_contains = "weather", .answer = R"({"city": "Quito"})", .tool_name = "get_weather"},
      {.model = "", .prompt_contains = "apples", .answer = "2 bags of 4: 8.\n#### 8"},
  });
  send_and_wait({calls});
  const auto& kept = expect_final(calls);
  EXPECT_EQ(kept.value("model", ""), cheap_->id);
  ASSERT_EQ(kept["tool_calls"].size(), 1u) << kept.dump();
  EXPECT_EQ(kept["tool_calls"][0]["function"]["arguments"], R"({"city": "Quito"})");
  EXPECT_THAT(kept["route"].value("reason", ""), ::testing::EndsWith("cascade: " + cheap_->id + " accepted"));
  EXPECT_EQ(calls_to(other), 0u);
  // Without tools the same worker asks it.
  send_and_wait({plain});
  EXPECT_THAT(expect_final(plain)["route"].value("reason", ""), ::testing::HasSubstr("(agrees with " + other_id + ": 8)"));
  EXPECT_EQ(calls_to(other), 1u);
}

// Worker::start's error with the built-in defaults changed by `change`.
std::string worker_start_error(const std::function<void(CascadeConfig&)>& change) {
  auto defaults = load_config("", [](const std::string&) { return std::nullopt; });
  if (!defaults) return "defaults: " + defaults.error().message;
  auto catalog = ModelCatalog::load(defaults->catalog);
  if (!catalog) return "catalog: " + catalog.error().message;
  WorkerOptions options;
  options.config = *defaults;
  change(options.config.router.cascade);
  options.catalog = &*catalog;
  auto worker = Worker::start(std::move(options));
  if (worker) {
    (*worker)->stop(5000);
    return "";
  }
  return worker.error().message;
}

TEST(CascadeCheckConfig, AVerifierFileThatCannotBeReadStopsTheWorkerFromStartingAndNamesTheKey) {
  const std::string error =
      worker_start_error([](CascadeConfig& c) { c.verifier_file = "/nonexistent/cascade-verifier.json"; });
  EXPECT_THAT(error, ::testing::HasSubstr("config 'router.cascade.verifier_file'"));
  EXPECT_THAT(error, ::testing::HasSubstr("/nonexistent/cascade-verifier.json"));
}

TEST(CascadeCheckConfig, AnAgreementModelNotInTheCatalogStopsTheWorkerFromStartingAndNamesTheKey) {
  const std::string error = worker_start_error([](CascadeConfig& c) { c.agreement_model = "gpt-9-nano"; });
  EXPECT_THAT(error, ::testing::HasSubstr("config 'router.cascade.agreement_model': unknown model 'gpt-9-nano'"));
}

TEST_F(CascadePolicyTest, ACheapAnswerThatDisagreesWithTheAgreementModelEscalatesAndOneThatAgreesIsKeptBothPaid) {
  enable_cascade();
  const PromptEvent agree = request("agree", "Tom has 3 bags of 4 apples. How many apples?");
  const PromptEvent disagree = request("disagree", "Ann has 3 bags of 5 pears. How many pears?");
  const PromptEvent prose = request("prose", "Describe the colour of the sky.");
  const std::string other_id = use_agreement_model_beside_the_cheap_one(agree);
  ASSERT_FALSE(other_id.empty());
  chunk_delay_ms = 5;
  start_pipeline();
  resolve_models(agree);
  const ModelInfo* other = catalog_->find(other_id);
  ASSERT_NE(other, nullptr);
  ASSERT_NE(other->upstream_model, cheap_->upstream_model);
  upstream_->set_answer_rules({
      {cheap_->upstream_model, "apples", "3 bags of 4 is <<3*4=12>>12.\n#### 12"},
      {other->upstream_model, "apples", "Three times four: 12 apples.\n#### 12"},
      {cheap_->upstream_model, "pears", "3 bags of 5 is <<3*5=16>>16.\n#### 16"},
      {other->upstream_model, "pears", "Three times five: 15 pears.\n#### 15"},
      {cheap_->upstream_model, "sky", "The sky is blue on a clear day."},
      {other->upstream_model, "sky", "Blue, mostly."},
  });
  send_and_wait({agree, disagree, prose});

  const auto& kept = expect_final(agree);
  EXPECT_EQ(kept.value("model", ""), cheap_->id);
  EXPECT_EQ(kept.value("content", ""), "3 bags of 4 is <<3*4=12>>12.\n#### 12");
  EXPECT_NE(kept["route"].value("reason", "").find("cascade: " + cheap_->id + " accepted (agrees with " + other_id +
                                                   ": 12)"),
            std::string::npos)
      << kept["route"].value("reason", "");
  // The agreement model's answer is paid too.
  const TokenUsage kept_usage{kept["usage"].value("input_tokens", 0), kept["usage"].value("output_tokens", 0)};
  const TokenUsage other_usage{simulated_prompt_tokens(agree.messages[0]["content"]),
                               scripted_pieces("Three times four: 12 apples.\n#### 12", kChunks)};
  const double expected = cost_usd(cheap_->price, kept_usage) + cost_usd(other->price, other_usage);
  EXPECT_NEAR(kept.value("cost_usd", 0.0), expected, 1e-9 * expected);

  const auto& escalated = expect_final(disagree);
  EXPECT_EQ(escalated.value("model", ""), strong_->id);
  const std::string reason = escalated["route"].value("reason", "");
  EXPECT_NE(reason.find("cascade: " + cheap_->id + " rejected (disagrees with " + other_id + ": 16 vs 15) -> " +
                        strong_->id),
            std::string::npos)
      << reason;
  EXPECT_EQ(concat_chunks(reply(disagree)).find("16"), std::string::npos);  // the wrong answer never streamed

  const auto& free_text = expect_final(prose);
  EXPECT_EQ(free_text.value("model", ""), cheap_->id);
  EXPECT_NE(free_text["route"].value("reason", "").find("accepted (no final answer to compare with " + other_id + ")"),
            std::string::npos)
      << free_text["route"].value("reason", "");

  EXPECT_EQ(calls_to(cheap_), 3u);
  EXPECT_EQ(calls_to(other), 3u);
  EXPECT_EQ(calls_to(strong_), 1u);
  EXPECT_TRUE(cascade_counted("accepted", "agreed", 1));
  EXPECT_TRUE(cascade_counted("accepted", "not_comparable", 1));
  EXPECT_TRUE(cascade_counted("escalated", "disagreement", 1));
  EXPECT_NE(worker_metrics_.serialize().find(R"(cascade_worker_judge_calls_total{outcome="answered",purpose="agreement"} 3)"),
            std::string::npos);
}

TEST_F(CascadePolicyTest, TheAgreementModelIsAskedAlongsideTheCheapOneNotAfterIt) {
  enable_cascade();
  const PromptEvent e = request("agree-timing", "Tom has 3 bags of 4 apples. How many apples?");
  const std::string other_id = use_agreement_model_beside_the_cheap_one(e);
  ASSERT_FALSE(other_id.empty());
  chunk_delay_ms = 40;
  start_pipeline();
  resolve_models(e);
  const ModelInfo* other = catalog_->find(other_id);
  ASSERT_NE(other, nullptr);
  PromptEvent warm_up = request("agree-warm-up", "What is the capital of Ecuador?");
  warm_up.cascade = false;
  send_and_wait({warm_up});  // partitions assigned, connections open
  // The cheap answer streams for ~800 ms (20 pieces 40 ms apart); asked
  // after it, the agreement model could not be called before then.
  const std::string long_answer = twenty_piece_answer();
  upstream_->set_answer_rules({{cheap_->upstream_model, "apples", long_answer},
                               {other->upstream_model, "apples", "12 #### 12"}});
  const auto sent = std::chrono::steady_clock::now();
  ASSERT_TRUE(client_->send(e));
  ASSERT_TRUE(client_->flush(10000));
  double other_called_ms = -1;
  auto answered = [&] {
    const auto it = client_->replies().find(e.id);
    return it != client_->replies().end() && it->second.terminal.has_value();
  };
  eventually(answered, std::chrono::seconds(60), [&] {
    client_->poll(5);
    if (other_called_ms < 0 && calls_to(other) > 0)
      other_called_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count();
  });
  const auto& body = expect_final(e);
  EXPECT_EQ(body.value("model", ""), cheap_->id);
  EXPECT_NE(body["route"].value("reason", "").find("(agrees with " + other_id + ": 12)"), std::string::npos);
  ASSERT_GE(other_called_ms, 0);
  EXPECT_LT(other_called_ms, 400) << "the agreement model was asked after the cheap answer";
}

TEST_F(CascadePolicyTest, AnAgreementCallStillRunningWhenTheCheapAnswerIsRefusedIsCancelledAndWhatItWroteIsCharged) {
  enable_cascade();
  const PromptEvent e = request("agree-cancelled", "Tom has 3 bags of 4 apples. How many apples?");
  const std::string other_id = use_agreement_model_beside_the_cheap_one(e);
  ASSERT_FALSE(other_id.empty());
  chunk_delay_ms = 40;
  start_pipeline();
  resolve_models(e);
  const ModelInfo* other = catalog_->find(other_id);
  ASSERT_NE(other, nullptr);
  const std::string long_answer = twenty_piece_answer();
  upstream_->set_answer_rules({{cheap_->upstream_model, "apples", "Sorry, I can't."},
                               {other->upstream_model, "apples", long_answer}});
  send_and_wait({e});

  const auto& body = expect_final(e);
  EXPECT_EQ(body.value("model", ""), strong_->id);
  EXPECT_NE(body["route"].value("reason", "").find(cheap_->id + " rejected (refusal) -> " + strong_->id),
            std::string::npos)
      << body["route"].value("reason", "");
  EXPECT_NE(worker_metrics_.serialize().find(
                R"(cascade_worker_judge_calls_total{outcome="cancelled",purpose="agreement"} 1)"),
            std::string::npos);
  // Charged: the strong answer, the refusal, and at least the agreement call's prompt.
  const std::string question = e.messages[0]["content"];
  const TokenUsage strong_usage{body["usage"].value("input_tokens", 0), body["usage"].value("output_tokens", 0)};
  const TokenUsage refusal_usage{simulated_prompt_tokens(question), scripted_pieces("Sorry, I can't.", kChunks)};
  const double without_agreement = cost_usd(strong_->price, strong_usage) + cost_usd(cheap_->price, refusal_usage);
  EXPECT_GT(body.value("cost_usd", 0.0), without_agreement * (1 + 1e-9));
  // Counted as the worker counts a call without usage (no tokenizer here: bytes / 4):
  // its prompt and part of its answer, not the whole answer.
  const auto counter = TokenCounter::bytes_only();
  const auto prompt_tokens = static_cast<std::int64_t>(counter->count_messages(other->id, e.messages).tokens);
  const auto answer_tokens = static_cast<std::int64_t>(counter->count_text(other->id, long_answer).tokens);
  const double agreement_charged = body.value("cost_usd", 0.0) - without_agreement;
  EXPECT_GE(agreement_charged, cost_usd(other->price, TokenUsage{prompt_tokens, 0}) * (1 - 1e-9));
  EXPECT_LT(agreement_charged, cost_usd(other->price, TokenUsage{prompt_tokens, answer_tokens}));
}

TEST_F(CascadePolicyTest, IdenticalRequestsShareTheEscalatedAnswerAndTheCacheKeepsOnlyTheServedOne) {
  enable_cascade();
  chunk_delay_ms = 20;  // the leader is still answering while the others arrive
  start_pipeline();
  workers_.front()->stop(5000);
  config_.kafka.worker_group += "-cascade-sf";  // the next worker reads the topic from its start
  std::vector<PromptEvent> same;
  for (int i = 0; i < 4; ++i) {
    PromptEvent e = request("sf-" + std::to_string(i));
    e.stream = i != 3;
    same.push_back(e);
  }
  resolve_models(same.front());
  upstream_->set_answer_rules({{cheap_->upstream_model, "", kRefusal}});
  for (const auto& e : same) ASSERT_TRUE(client_->send(e));
  ASSERT_TRUE(client_->flush(10000));
  start_worker();
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60)));

  const std::string strong_answer = SimulatedUpstream::answer_for(strong_->upstream_model, kQuestion, kChunks);
  for (const auto& e : same) {
    const auto& body = expect_final(e);
    EXPECT_EQ(body.value("content", ""), strong_answer) << e.id;
    EXPECT_EQ(concat_chunks(reply(e)).find("sorry"), std::string::npos) << e.id;
  }
  EXPECT_EQ(calls_to(cheap_), 1u);   // one flight
  EXPECT_EQ(calls_to(strong_), 1u);

  // Later, the same request is a cache hit with the served (strong) answer.
  const PromptEvent later = request("sf-later");
  send_and_wait({later});
  const auto& hit = expect_final(later);
  EXPECT_EQ(hit.value("cache", ""), "exact");
  EXPECT_EQ(hit.value("model", ""), strong_->id);
  EXPECT_EQ(hit.value("content", ""), strong_answer);
  EXPECT_EQ(upstream_->requests_served(), 2u);
}

TEST_F(CascadePolicyTest, TimeToFirstChunkIsTheCheapAnswersWholeGenerationTime) {
  enable_cascade();
  chunk_delay_ms = 40;
  start_pipeline();
  PromptEvent off = request("ttft-off", "What is the capital of Peru?");
  off.cascade = false;
  const PromptEvent accepted = request("ttft-accepted", "What is the capital of Chile?");
  const PromptEvent escalated = request("ttft-escalated", "What is the capital of Bolivia?");
  resolve_models(off);
  upstream_->set_answer_rules({{cheap_->upstream_model, "Bolivia", kRefusal}});
  PromptEvent warm_up = request("ttft-warm-up", "What is the capital of Ecuador?");
  warm_up.cascade = false;
  send_and_wait({warm_up});  // partitions assigned, connections open
  std::map<std::string, double> ttft_ms, total_ms;
  for (const PromptEvent* e : std::initializer_list<const PromptEvent*>{&off, &accepted, &escalated}) {
    const Timing t = send_and_time(*e);
    expect_final(*e);
    ttft_ms[e->id] = t.first_chunk_ms;
    total_ms[e->id] = t.terminal_ms;
    std::printf("%-16s ttft %7.1f ms  total %7.1f ms  model %s\n", e->metadata.value("name", "").c_str(),
                ttft_ms[e->id], total_ms[e->id], reply(*e).terminal->body.value("model", "").c_str());
  }
  // The cheap answer streams in kChunks pieces chunk_delay_ms apart. Not
  // held back, its first chunk comes at once; held back, with its last.
  EXPECT_LT(ttft_ms[off.id] + (kChunks - 3) * chunk_delay_ms, ttft_ms[accepted.id]);
  EXPECT_NEAR(ttft_ms[accepted.id], total_ms[accepted.id], chunk_delay_ms);
  // Escalated: the whole cheap answer, then the strong one's, streamed.
  EXPECT_GE(ttft_ms[escalated.id], (kChunks - 3) * chunk_delay_ms);
  EXPECT_GE(total_ms[escalated.id], ttft_ms[escalated.id] + (kChunks - 3) * chunk_delay_ms);
}

}  // namespace
}  // namespace cascade::testing
