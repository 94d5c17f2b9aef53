#pragma once
// Label-free facts about a model's answer to a prompt: whether it fails the
// oracle-free format check, its final answer (router.h: final_answer), and
// the dense features the learned answer verifier weighs. Pure functions,
// used on the request path (the cheap-first cascade's checks) and by the
// offline tools (router/tools/evaluation.h) that train and evaluate them.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cascade {

// The oracle-free check the cascade simulates on the weak model's answer
// (docs/routing.md): it fails an answer that is empty, has no final answer
// where the prompt's format asks for one ("#### N" after worked examples,
// or an option letter for a multiple-choice question), or whose calculator
// annotations "<<6*7=42>>" do not compute. It never sees the label.
bool weak_answer_fails_check(std::string_view prompt, std::string_view response);

// The agreement check (FrugalGPT-style consistency): the weak answer fails
// when it fails weak_answer_fails_check or its final answer differs from a
// second cheap model's. Answers without a comparable final answer are not
// failed for disagreeing.
bool answers_disagree(std::string_view prompt, std::string_view weak_response, std::string_view check_response);

// Label-free features of a weak answer to a prompt, scaled to about 0..1,
// with their names: it fails the format check, has no "####", its final
// number is not an integer, is negative, is one of the prompt's numbers,
// differs from its last calculator result; its length, lines, calculator
// annotations. The verifier's dense features.
std::vector<std::pair<std::string, float>> answer_features(std::string_view prompt, std::string_view response);

}  // namespace cascade
