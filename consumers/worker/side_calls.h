#pragma once
// Side calls: model calls a loop makes beside a request's own attempts (a
// judge's grade, the agreement model's answer, a quality sample's grade).
// They run on the loop's HttpClient like provider calls, outside the
// attempt machinery: no retries, fallbacks, breakers or provider slots; a
// deadline, past which they are cancelled. Each call's end is reported once
// to the callback it was started with, unless it was cancelled.
//
// Threading: one event loop's thread. A call's callback may start or cancel
// other calls; ended calls are freed by free_ended(), never inside their
// own callback.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "consumers/worker/stage_context.h"

namespace cascade {

struct SideCallEnd {
  enum class How { answered, failed, timed_out };
  How how = How::failed;
  Result<std::string> reply;  // its text when answered; why there is none otherwise
  // What it cost: answered, its usage (reported, else counted); failed,
  // nothing; timed out, its prompt and what it wrote when the call charges
  // cut calls, else nothing.
  double cost_usd = 0;
};

struct SideCallSpec {
  const ModelInfo* model = nullptr;
  nlohmann::json messages;  // OpenAI format; kept while the call runs
  ChatRequest chat;         // its parameters; model and messages are set from the above
  Clock::time_point deadline = Clock::time_point::max();
  std::size_t max_reply_bytes = 4096;  // the reply is cut here (enough for a grade, or a final answer)
  bool charge_cut_calls = false;       // a timed-out call is charged for what it used
  std::function<void(std::uint64_t id, const ModelInfo& model, SideCallEnd end)> on_end;
};

// The metrics label of a call's end: `answered` when it answered ("graded",
// "answered"...), else "error" or "timeout".
std::string_view outcome_label(SideCallEnd::How how, std::string_view answered);
// A judge's 1-5 grade read from its call's reply, or why there is none.
[[nodiscard]] Result<double> grade_of(const SideCallEnd& end);

class SideCalls {
 public:
  explicit SideCalls(StageContext& context);
  ~SideCalls();

  // Starts a call; its id, or 0 when the model's provider is not enabled here.
  std::uint64_t start(SideCallSpec spec);
  void set_deadline(std::uint64_t id, Clock::time_point deadline);
  // Cancels a running call (its callback is not called); returns what it
  // cost so far (its prompt and what it wrote); nullopt for an unknown id.
  std::optional<double> cancel(std::uint64_t id);
  // Ends every call past its deadline (timed_out).
  void enforce_deadlines(Clock::time_point now);

  std::size_t running() const { return calls_.size(); }
  void free_ended();
  // Forgets every call without a callback (the loop is stopping; its HTTP
  // client is gone or about to be).
  void clear();

 private:
  struct Call;
  void on_complete(Call& call, Result<ChatCompletion> outcome);
  void end(Call& call, SideCallEnd end);
  double partial_cost(const Call& call) const;

  StageContext& ctx_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Call>> calls_;
  std::vector<std::unique_ptr<Call>> ended_;
  std::uint64_t last_id_ = 0;
};

}  // namespace cascade
