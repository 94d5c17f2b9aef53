#include "simulator/upstream_faults.h"

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <string_view>

#include "core/hash.h"

namespace cascade {
namespace {

constexpr std::size_t kMaxHugeChunkBytes = 64 * 1024 * 1024;
// An interleaved plan is a table with one slot per unit of weight.
constexpr std::uint64_t kMaxInterleavedWeight = 1 << 20;

constexpr std::string_view kKindNames[] = {
    "none",           "status",           "hang_before_headers",
    "hang_mid_stream", "cut_mid_stream",  "reset_mid_stream",
    "malformed_sse",  "huge_chunk",       "slow",
};

std::string_view kind_name(UpstreamFaultKind kind) {
  return kKindNames[static_cast<std::size_t>(kind)];
}

std::string_view trimmed(std::string_view text) {
  const auto not_space = [](char c) { return c != ' ' && c != '\t'; };
  auto first = std::find_if(text.begin(), text.end(), not_space);
  auto last = std::find_if(text.rbegin(), text.rend(), not_space).base();
  return first < last ? std::string_view(first, last) : std::string_view{};
}

template <class Integer>
bool parse_integer(std::string_view text, Integer& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} && end == text.data() + text.size();
}

std::unexpected<Error> invalid_fault(std::string_view text, std::string_view why) {
  std::string message = "invalid fault '";
  message.append(text).append("': ").append(why);
  return fail(ErrorCode::invalid_request, std::move(message));
}

// Which parameters each fault name accepts.
bool accepts_parameter(UpstreamFaultKind kind, std::string_view name) {
  auto among = [&](std::initializer_list<std::string_view> names) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  switch (kind) {
    case UpstreamFaultKind::none:
      return false;
    case UpstreamFaultKind::http_status:
      return among({"code", "retry_after"});
    case UpstreamFaultKind::hang_before_headers:
      return among({"ms"});
    case UpstreamFaultKind::hang_mid_stream:
      return among({"ms", "after"});
    case UpstreamFaultKind::cut_mid_stream:
    case UpstreamFaultKind::reset_mid_stream:
    case UpstreamFaultKind::malformed_sse:
      return among({"after"});
    case UpstreamFaultKind::huge_chunk:
      return among({"bytes", "after"});
    case UpstreamFaultKind::slow:
      return among({"ms"});
  }
  return false;
}

}  // namespace

UpstreamFault UpstreamFault::http_status(int status, int retry_after_seconds) {
  return {.kind = UpstreamFaultKind::http_status,
          .status = status,
          .retry_after_seconds = retry_after_seconds};
}
UpstreamFault UpstreamFault::rate_limited(int retry_after_seconds) {
  return http_status(429, retry_after_seconds);
}
UpstreamFault UpstreamFault::hang_before_headers(int duration_ms) {
  return {.kind = UpstreamFaultKind::hang_before_headers, .duration_ms = duration_ms};
}
UpstreamFault UpstreamFault::hang_mid_stream(int duration_ms, int after_chunks) {
  return {.kind = UpstreamFaultKind::hang_mid_stream,
          .duration_ms = duration_ms,
          .after_chunks = after_chunks};
}
UpstreamFault UpstreamFault::cut_mid_stream(int after_chunks) {
  return {.kind = UpstreamFaultKind::cut_mid_stream, .after_chunks = after_chunks};
}
UpstreamFault UpstreamFault::reset_mid_stream(int after_chunks) {
  return {.kind = UpstreamFaultKind::reset_mid_stream, .after_chunks = after_chunks};
}
UpstreamFault UpstreamFault::malformed_sse(int after_chunks) {
  return {.kind = UpstreamFaultKind::malformed_sse, .after_chunks = after_chunks};
}
UpstreamFault UpstreamFault::huge_chunk(std::size_t bytes, int after_chunks) {
  return {.kind = UpstreamFaultKind::huge_chunk, .after_chunks = after_chunks,
          .huge_chunk_bytes = bytes};
}
UpstreamFault UpstreamFault::slow(int chunk_delay_ms) {
  return {.kind = UpstreamFaultKind::slow, .duration_ms = chunk_delay_ms};
}

std::string fault_label(const UpstreamFault& fault) {
  if (fault.kind == UpstreamFaultKind::http_status) return "status_" + std::to_string(fault.status);
  return std::string(kind_name(fault.kind));
}

Result<UpstreamFault> parse_upstream_fault(std::string_view text) {
  std::string_view rest = text;
  auto next_field = [&rest] {
    std::size_t end = rest.find(';');
    std::string_view field = trimmed(rest.substr(0, end));
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    return field;
  };

  const std::string_view name = next_field();
  UpstreamFault fault;
  int bare_status = 0;
  if (parse_integer(name, bare_status)) {
    fault = UpstreamFault::http_status(bare_status);
  } else {
    auto known = std::find(std::begin(kKindNames), std::end(kKindNames), name);
    if (known == std::end(kKindNames)) return invalid_fault(text, "unknown fault name");
    fault.kind = static_cast<UpstreamFaultKind>(known - std::begin(kKindNames));
    if (fault.kind == UpstreamFaultKind::slow) fault.duration_ms = 50;
  }

  bool retry_after_given = false;
  while (!rest.empty()) {
    std::string_view field = next_field();
    if (field.empty()) continue;
    std::size_t equals = field.find('=');
    if (equals == std::string_view::npos) return invalid_fault(text, "expected param=value");
    std::string_view key = trimmed(field.substr(0, equals));
    std::string_view value = trimmed(field.substr(equals + 1));
    if (!accepts_parameter(fault.kind, key)) {
      return invalid_fault(text, "'" + std::string(key) + "' does not apply to " +
                                     std::string(kind_name(fault.kind)));
    }
    bool parsed = false;
    if (key == "code") {
      parsed = parse_integer(value, fault.status);
    } else if (key == "retry_after") {
      parsed = parse_integer(value, fault.retry_after_seconds);
      retry_after_given = true;
    } else if (key == "ms") {
      parsed = parse_integer(value, fault.duration_ms);
    } else if (key == "after") {
      parsed = parse_integer(value, fault.after_chunks);
    } else if (key == "bytes") {
      parsed = parse_integer(value, fault.huge_chunk_bytes);
    }
    if (!parsed) return invalid_fault(text, "'" + std::string(key) + "' needs an integer");
  }
  // A 429 without Retry-After is rare in practice; say so explicitly to get one.
  if (fault.kind == UpstreamFaultKind::http_status && fault.status == 429 && !retry_after_given) {
    fault.retry_after_seconds = 1;
  }
  if (auto valid = simulator::validate_fault(fault); !valid) return std::unexpected(valid.error());
  return fault;
}

std::string SimulatedUpstream::huge_chunk_text(std::size_t bytes) {
  std::string text;
  simulator::append_huge_chunk_text(text, bytes);
  return text;
}

std::vector<std::string> SimulatedUpstream::expected_deltas(const std::string& model,
                                                            const std::string& last_user_text,
                                                            int chunks, const UpstreamFault& fault,
                                                            std::int64_t max_tokens) {
  std::vector<std::string> pieces = answer_pieces(model, last_user_text, chunks);
  if (max_tokens > 0 && static_cast<std::uint64_t>(max_tokens) < pieces.size()) {
    pieces.resize(static_cast<std::size_t>(max_tokens));
  }
  const std::size_t at = simulator::fault_piece_index(fault, pieces.size());
  switch (fault.kind) {
    case UpstreamFaultKind::http_status:
    case UpstreamFaultKind::hang_before_headers:
      return {};
    case UpstreamFaultKind::cut_mid_stream:
    case UpstreamFaultKind::reset_mid_stream:
      pieces.resize(at);
      return pieces;
    case UpstreamFaultKind::huge_chunk:
      pieces.insert(pieces.begin() + static_cast<std::ptrdiff_t>(at),
                    huge_chunk_text(fault.huge_chunk_bytes));
      return pieces;
    case UpstreamFaultKind::none:
    case UpstreamFaultKind::hang_mid_stream:
    case UpstreamFaultKind::malformed_sse:
    case UpstreamFaultKind::slow:
      return pieces;
  }
  return pieces;
}

namespace simulator {

Result<void> validate_fault(const UpstreamFault& fault) {
  const std::string label = fault_label(fault);
  auto invalid = [&](std::string_view why) { return invalid_fault(label, why); };
  if (static_cast<std::size_t>(fault.kind) >= std::size(kKindNames)) {
    return invalid("unknown fault kind");
  }
  if (fault.after_chunks < -1) return invalid("after_chunks must be >= -1");
  if (fault.duration_ms < 0) return invalid("duration_ms must be >= 0");
  switch (fault.kind) {
    case UpstreamFaultKind::http_status:
      if (fault.status < 400 || fault.status > 599) return invalid("status must be 400..599");
      if (fault.retry_after_seconds < -1) return invalid("retry_after_seconds must be >= -1");
      break;
    case UpstreamFaultKind::huge_chunk:
      if (fault.huge_chunk_bytes == 0 || fault.huge_chunk_bytes > kMaxHugeChunkBytes) {
        return invalid("huge_chunk_bytes must be 1..64 MiB");
      }
      break;
    case UpstreamFaultKind::slow:
      if (fault.duration_ms == 0) return invalid("slow needs a chunk delay > 0 ms");
      break;
    default:
      break;
  }
  return {};
}

ApiError fault_status_error(int status) {
  // Messages and types as the providers send them; only the 429 text is made up.
  std::string_view message;
  std::string_view type;
  std::string_view code_json = "null";
  switch (status) {
    case 429:
      message = "Rate limit reached (simulated fault). Please try again later.";
      type = "rate_limit_error";
      code_json = R"("rate_limit_exceeded")";
      break;
    case 500:
      message = "The server had an error while processing your request. Sorry about that!";
      type = "server_error";
      break;
    case 502:
      message = "Bad gateway.";
      type = "cf_bad_gateway";
      code_json = "502";
      break;
    case 503:
      message = "The engine is currently overloaded, please try again later.";
      type = "server_error";
      break;
    default:
      message = "Simulated upstream failure.";
      type = status < 500 ? "invalid_request_error" : "server_error";
  }
  std::string body = R"({"error":{"message":")";
  append_json_escaped(body, message);
  body.append(R"(","type":")").append(type).append(R"(","param":null,"code":)");
  body.append(code_json).append("}}");
  return ApiError{status, std::move(body)};
}

void append_huge_chunk_text(std::string& out, std::size_t bytes) {
  static constexpr std::string_view kSentence =
      "This oversized delta was injected by the Cascade simulator. ";
  out.reserve(out.size() + bytes);
  while (bytes > 0) {
    const std::size_t take = std::min(bytes, kSentence.size());
    out.append(kSentence.substr(0, take));
    bytes -= take;
  }
}

std::size_t fault_piece_index(const UpstreamFault& fault, std::size_t pieces_to_send) {
  if (fault.after_chunks < 0) return pieces_to_send / 2;
  return std::min(pieces_to_send, static_cast<std::size_t>(fault.after_chunks));
}

Result<void> FaultPlanner::configure(const FaultInjectionOptions& options) {
  faults_.clear();
  cumulative_weights_.clear();
  interleaved_slots_.clear();
  order_ = options.order;
  seed_ = options.seed;
  if (options.plan.empty()) return {};

  std::vector<UpstreamFault> faults;
  std::vector<std::uint64_t> cumulative;
  std::uint64_t total = 0;
  for (const FaultPlanEntry& entry : options.plan) {
    if (auto valid = validate_fault(entry.fault); !valid) return valid;
    if (entry.weight == 0) continue;
    total += entry.weight;
    faults.push_back(entry.fault);
    cumulative.push_back(total);
  }
  if (total == 0) return fail(ErrorCode::invalid_request, "fault plan has no positive weight");

  if (order_ == FaultPlanOrder::interleaved) {
    if (total > kMaxInterleavedWeight) {
      return fail(ErrorCode::invalid_request,
                  "interleaved fault plan weights sum above 2^20; use smaller weights");
    }
    // Smooth weighted round robin: each entry earns its weight per slot and
    // the richest one takes the slot, which spreads every entry evenly.
    std::vector<std::int64_t> credit(faults.size(), 0);
    interleaved_slots_.reserve(total);
    for (std::uint64_t slot = 0; slot < total; ++slot) {
      std::size_t richest = 0;
      for (std::size_t i = 0; i < faults.size(); ++i) {
        const std::uint64_t weight = cumulative[i] - (i == 0 ? 0 : cumulative[i - 1]);
        credit[i] += static_cast<std::int64_t>(weight);
        if (credit[i] > credit[richest]) richest = i;
      }
      credit[richest] -= static_cast<std::int64_t>(total);
      interleaved_slots_.push_back(static_cast<std::uint32_t>(richest));
    }
  }
  faults_ = std::move(faults);
  cumulative_weights_ = std::move(cumulative);
  return {};
}

const UpstreamFault& FaultPlanner::at(std::uint64_t ordinal) const {
  static const UpstreamFault kNoFault;
  if (faults_.empty()) return kNoFault;
  if (order_ == FaultPlanOrder::interleaved) {
    return faults_[interleaved_slots_[ordinal % interleaved_slots_.size()]];
  }
  const std::uint64_t draw =
      splitmix64_finalize(seed_ + (ordinal + 1) * kGoldenGamma) % cumulative_weights_.back();
  auto entry = std::upper_bound(cumulative_weights_.begin(), cumulative_weights_.end(), draw);
  return faults_[static_cast<std::size_t>(entry - cumulative_weights_.begin())];
}

void FaultCounter::count(const UpstreamFault& fault) {
  by_kind_[static_cast<std::size_t>(fault.kind)].fetch_add(1, std::memory_order_relaxed);
  if (fault.kind == UpstreamFaultKind::http_status) {
    by_status_[static_cast<std::size_t>(fault.status)].fetch_add(1, std::memory_order_relaxed);
  }
}

std::map<std::string, std::uint64_t> FaultCounter::snapshot() const {
  std::map<std::string, std::uint64_t> counts;
  for (std::size_t kind = 0; kind < kKinds; ++kind) {
    if (kind == static_cast<std::size_t>(UpstreamFaultKind::http_status)) continue;
    if (auto count = by_kind_[kind].load(std::memory_order_relaxed); count > 0) {
      counts.emplace(kKindNames[kind], count);
    }
  }
  for (std::size_t status = 0; status < kStatuses; ++status) {
    if (auto count = by_status_[status].load(std::memory_order_relaxed); count > 0) {
      counts.emplace("status_" + std::to_string(status), count);
    }
  }
  return counts;
}

}  // namespace simulator
}  // namespace cascade
