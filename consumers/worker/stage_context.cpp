#include "consumers/worker/stage_context.h"

#include <algorithm>

namespace cascade {

int StageContext::effective_max_tokens(const PromptEvent& event) const {
  return event.max_tokens.value_or(config.limits.default_max_tokens);
}

int StageContext::max_tokens_for(const ModelInfo& model, const PromptEvent& event) const {
  if (event.max_tokens) return *event.max_tokens;
  if (model.max_output_tokens <= 0) return config.limits.default_max_tokens;
  return static_cast<int>(std::min<std::int64_t>(config.limits.default_max_tokens, model.max_output_tokens));
}

std::int64_t StageContext::input_tokens(Request& r) const {
  if (r.input_tokens < 0) r.input_tokens = static_cast<std::int64_t>(tokens.count_messages("", r.event.messages).tokens);
  return r.input_tokens;
}

TokenUsage StageContext::counted_usage(const ModelInfo& model, const nlohmann::json& messages,
                                       std::string_view output) const {
  TokenUsage usage;
  usage.input_tokens = static_cast<std::int64_t>(tokens.count_messages(model.id, messages).tokens);
  usage.output_tokens = static_cast<std::int64_t>(tokens.count_text(model.id, output).tokens);
  return usage;
}

TokenUsage StageContext::billed_usage(const ModelInfo& model, const Request& r,
                                      const ChatCompletion& completion) const {
  if (completion.usage_reported) return completion.usage;
  return counted_usage(model, r.event.messages, r.reply.content);
}

RouteContext StageContext::route_context(Request& r) const {
  RouteContext context;
  context.input_tokens = input_tokens(r);
  context.default_max_tokens = config.limits.default_max_tokens;
  return context;
}

void StageContext::publish_chunk(Request& r, std::string_view text, const ChunkHead* head) const {
  ChunkHead own;
  if (r.reply.next_seq == 0 && !head && r.attempts.index < r.attempts.chain.size()) {
    const ModelInfo& model = *r.attempts.chain[r.attempts.index];
    own = {.model = model.id, .provider = model.provider, .cache = CacheOutcome::miss,
           .tier = to_string(model.tier), .reason = r.route.reason};
    head = &own;
  }
  (void)host.publish(r.event.reply_to, r.event.id,
                     make_chunk_event(r.event.id, r.reply.next_seq, text, r.reply.next_seq == 0 ? head : nullptr));
  r.reply.next_seq++;
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace cascade
