#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <condition_variable>
#include <thread>

#include "consumers/ledger/ledger.h"

namespace cascade {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

namespace {

constexpr std::int64_t kDayMs = 86'400'000;
constexpr int kDefaultDays = 30;
constexpr int kMaxDays = 3660;

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string url_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out.push_back(' ');
    } else if (in[i] == '%' && i + 2 < in.size()) {
      int value = 0;
      auto [p, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, value, 16);
      if (ec == std::errc() && p == in.data() + i + 3) {
        out.push_back(static_cast<char>(value));
        i += 2;
      } else {
        out.push_back('%');
      }
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> query_params(std::string_view target) {
  std::map<std::string, std::string> out;
  const auto q = target.find('?');
  if (q == std::string_view::npos) return out;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const auto eq = pair.find('=');
    out[url_decode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return out;
}

json totals_json(const LedgerTotals& t) {
  const double n = static_cast<double>(t.requests);
  return {{"requests", t.requests},
          {"cache_hits", t.cache_hits},
          {"cache_hit_rate", n > 0 ? static_cast<double>(t.cache_hits) / n : 0.0},
          {"cost_usd", t.cost_usd},
          {"baseline_cost_usd", t.baseline_cost_usd},
          {"savings_usd", t.savings_usd},
          {"savings_percent", t.baseline_cost_usd > 0 ? 100.0 * t.savings_usd / t.baseline_cost_usd : 0.0},
          {"input_tokens", t.input_tokens},
          {"output_tokens", t.output_tokens},
          {"cached_tokens", t.cached_tokens},
          {"reasoning_tokens", t.reasoning_tokens},
          {"avg_latency_ms", n > 0 ? t.latency_ms_sum / n : 0.0},
          {"avg_ttft_ms", n > 0 ? t.ttft_ms_sum / n : 0.0}};
}

// "YYYY-MM-DD" as given, or "<N>d" = the day N-1 days before today.
Result<std::string> resolve_day(const std::string& text, std::int64_t now, bool is_from) {
  if (text.empty()) return utc_day(is_from ? now - (kDefaultDays - 1) * kDayMs : now);
  if (text.size() >= 2 && text.back() == 'd') {
    int days = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, days);
    if (ec == std::errc() && p == text.data() + text.size() - 1 && days >= 1 && days <= kMaxDays)
      return utc_day(now - static_cast<std::int64_t>(days - 1) * kDayMs);
  } else if (parse_utc_day(text)) {
    return text;
  }
  return fail(ErrorCode::invalid_request, "'" + text + "' is neither YYYY-MM-DD nor <days>d (e.g. 7d)");
}

}  // namespace

namespace {

// Judged quality beside cost: graded answers, their mean grade and, with
// calibration samples, the share of the reference's quality on the same prompts.
json judged_json(std::uint64_t graded, double score_sum, const DailyQuality* paired) {
  json j = {{"graded", graded}, {"mean_grade", graded ? score_sum / static_cast<double>(graded) : 0.0}};
  if (paired && paired->paired > 0) {
    j["calibration_samples"] = paired->paired;
    j["of_reference"] = paired->reference_ratio();
    j["reference_model"] = paired->reference_model;
  }
  return j;
}

json judged_json(const DailyQuality& d) { return judged_json(d.graded, d.score_sum, &d); }

// Per UTC day, every tenant's (or one tenant's) grades summed.
std::map<std::string, DailyQuality> quality_by_day(const QualityAggregator& quality,
                                                   const std::optional<std::string>& tenant) {
  std::map<std::string, DailyQuality> out;
  for (const DailyQuality& d : quality.daily(tenant)) {
    DailyQuality& to = out[d.day];
    to.day = d.day;
    to.add(d);
  }
  return out;
}

}  // namespace

Result<std::string> usage_json(const LedgerStore& store, const UsageQuery& query, std::string_view group_by,
                               const QualityAggregator* quality) {
  if (group_by != "day" && group_by != "model" && group_by != "tenant")
    return fail(ErrorCode::invalid_request, "group_by must be day, model or tenant");
  auto rows = store.usage(query);
  if (!rows) return std::unexpected(rows.error());
  json out{{"tenant", query.tenant.empty() ? json(nullptr) : json(query.tenant)},
           {"from", query.from_day},
           {"to", query.to_day},
           {"group_by", group_by},
           {"totals", totals_json(sum_rows(*rows))}};
  const std::optional<std::string> tenant =
      query.tenant.empty() ? std::nullopt : std::optional<std::string>(query.tenant);
  // Judged quality next to cost (docs/ledger.md): null when not aggregated here.
  std::map<std::string, DailyQuality> judged_days;
  std::map<std::string, QualityRow> judged_models;
  if (quality) {
    judged_days = quality_by_day(*quality, tenant);
    for (const QualityRow& r : quality->rows(tenant)) {
      QualityRow& to = judged_models[r.model];
      to.samples += r.samples;
      to.score_sum += r.score_sum;
    }
    DailyQuality all;
    for (const auto& [day, d] : judged_days)
      if (day >= query.from_day && day <= query.to_day) all.add(d);
    out["totals"]["judged"] = judged_json(all);
  }
  auto judged_of = [&](const std::string& key) -> json {
    if (!quality) return nullptr;
    if (group_by == "day") {
      const auto it = judged_days.find(key);
      return it == judged_days.end() ? judged_json(0, 0, nullptr) : judged_json(it->second);
    }
    if (group_by == "model") {
      const auto it = judged_models.find(key);
      return it == judged_models.end() ? judged_json(0, 0, nullptr) : judged_json(it->second.samples, it->second.score_sum, nullptr);
    }
    const DailyQuality d = quality->overall(key);
    return judged_json(d);
  };
  json list = json::array();
  if (group_by == "day") {
    // Every day of the range, zeros included, so charts get a continuous axis.
    const auto by_day = rows_by_day(*rows);
    auto from = parse_utc_day(query.from_day);
    auto to = parse_utc_day(query.to_day);
    if (from && to && *to >= *from && (*to - *from) / kDayMs <= kMaxDays) {
      for (std::int64_t t = *from; t <= *to; t += kDayMs) {
        const std::string day = utc_day(t);
        const auto it = by_day.find(day);
        json row = totals_json(it == by_day.end() ? LedgerTotals{} : it->second);
        row["key"] = day;
        row["judged"] = judged_of(day);
        list.push_back(std::move(row));
      }
    } else {
      for (const auto& [day, totals] : by_day) {
        json row = totals_json(totals);
        row["key"] = day;
        row["judged"] = judged_of(day);
        list.push_back(std::move(row));
      }
    }
  } else {
    const auto grouped = group_by == "model" ? rows_by_model(*rows) : rows_by_tenant(*rows);
    std::vector<std::pair<std::string, LedgerTotals>> sorted(grouped.begin(), grouped.end());
    std::ranges::stable_sort(sorted, [](const auto& a, const auto& b) { return a.second.requests > b.second.requests; });
    for (const auto& [key, totals] : sorted) {
      json row = totals_json(totals);
      row["key"] = key;
      row["judged"] = judged_of(key);
      list.push_back(std::move(row));
    }
  }
  out["rows"] = std::move(list);
  return out.dump();
}

std::string quality_json(const QualityAggregator& quality, const std::optional<std::string>& tenant) {
  json rows = json::array();
  for (const QualityRow& row : quality.rows(tenant)) {
    const double high = static_cast<double>(row.by_grade[3] + row.by_grade[4]);
    rows.push_back({{"tenant", row.tenant},
                    {"model", row.model},
                    {"tier", row.tier},
                    {"graded", row.samples},
                    {"mean_grade", row.mean_score()},
                    {"share_4_or_5", row.samples == 0 ? 0.0 : high / static_cast<double>(row.samples)},
                    {"by_grade", row.by_grade},
                    {"judge_cost_usd", row.judge_cost_usd}});
  }
  // Over time: per UTC day (every tenant's summed unless one is asked for).
  json daily = json::array();
  for (const auto& [day, d] : quality_by_day(quality, tenant)) {
    json j = judged_json(d);
    j["day"] = day;
    daily.push_back(std::move(j));
  }
  return json{{"quality", rows}, {"overall", judged_json(quality.overall(tenant))}, {"daily", daily}}.dump();
}

struct LedgerHttpServer::Impl {
  const LedgerStore* store = nullptr;
  const BudgetBook* budgets = nullptr;
  const LedgerMetrics* metrics = nullptr;
  const QualityAggregator* quality = nullptr;
  std::function<bool(std::string_view)> is_admin_key;  // set before serving; null = open
  std::string baseline_model;
  asio::io_context ioc;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::uint16_t port = 0;
  std::string host;
  std::atomic<bool> stopping{false};
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  int connections = 0;

  struct Reply {
    http::status status = http::status::ok;
    std::string content_type = "application/json";
    std::string body;
  };

  static Reply error(http::status status, const std::string& message) {
    return {status, "application/json", json{{"error", message}}.dump()};
  }

  Reply budgets_reply(const std::map<std::string, std::string>& params) const {
    const std::int64_t now = system_now_ms();
    const auto tenant = params.contains("tenant") ? params.at("tenant") : std::string();
    json list = json::array();
    if (budgets) {
      for (const auto& s : budgets->statuses(tenant, now)) {
        const auto& b = s.budget;
        // Spend from the store: the ledger's own, fresher than the topic.
        list.push_back({{"tenant", b.tenant},
                        {"scope", b.scope},
                        {"scope_label", describe_scope(b.scope)},
                        {"source", s.runtime ? "runtime" : "config"},
                        {"daily_usd", b.limits.daily_usd},
                        {"monthly_usd", b.limits.monthly_usd},
                        {"soft_percent", b.limits.soft_percent},
                        {"day", period_id(BudgetPeriod::daily, now)},
                        {"month", period_id(BudgetPeriod::monthly, now)},
                        {"spent_daily_usd", store->spend(b.tenant, b.scope, BudgetPeriod::daily,
                                                         period_id(BudgetPeriod::daily, now))},
                        {"spent_monthly_usd", store->spend(b.tenant, b.scope, BudgetPeriod::monthly,
                                                           period_id(BudgetPeriod::monthly, now))}});
      }
    }
    return {http::status::ok, "application/json", json{{"budgets", list}}.dump()};
  }

  // An admin key as a Bearer token, or as HTTP Basic's password; /healthz is open.
  bool authorized_by(const http::request<http::string_body>& req) const {
    const std::string target(req.target());
    if (target.substr(0, target.find('?')) == "/healthz") return true;
    const auto it = req.find(http::field::authorization);
    if (it == req.end()) return false;
    const std::string_view value(it->value().data(), it->value().size());
    if (value.size() > 7 && (value.starts_with("Bearer ") || value.starts_with("bearer ")))
      return is_admin_key(value.substr(7));
    if (value.size() > 6 && (value.starts_with("Basic ") || value.starts_with("basic "))) {
      const std::string decoded = base64_decode(value.substr(6));
      const auto colon = decoded.find(':');
      return colon != std::string::npos && is_admin_key(std::string_view(decoded).substr(colon + 1));
    }
    return false;
  }

  static std::string base64_decode(std::string_view in) {
    std::string out;
    int bits = 0;
    std::uint32_t acc = 0;
    for (const char c : in) {
      int v;
      if (c >= 'A' && c <= 'Z') v = c - 'A';
      else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
      else if (c >= '0' && c <= '9') v = c - '0' + 52;
      else if (c == '+') v = 62;
      else if (c == '/') v = 63;
      else break;
      acc = (acc << 6) | static_cast<std::uint32_t>(v);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push_back(static_cast<char>((acc >> bits) & 0xFF));
      }
    }
    return out;
  }

  Reply route(const http::request<http::string_body>& req) const {
    if (req.method() != http::verb::get && req.method() != http::verb::head)
      return error(http::status::method_not_allowed, "only GET");
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    const auto params = query_params(target);
    if (path == "/" || path == "/index.html") return {http::status::ok, "text/html; charset=utf-8", std::string(dashboard_html())};
    if (path == "/healthz") return {http::status::ok, "text/plain", "ok\n"};
    if (path == "/metrics") {
      if (!metrics) return error(http::status::not_found, "no metrics");
      return {http::status::ok, "text/plain; version=0.0.4; charset=utf-8", metrics->serialize()};
    }
    if (path == "/api/budgets") return budgets_reply(params);
    if (path == "/api/quality") {
      if (!quality) return error(http::status::not_found, "quality is not aggregated by this server");
      const auto tenant = params.find("tenant");
      return {http::status::ok, "application/json",
              quality_json(*quality, tenant == params.end() || tenant->second.empty()
                                         ? std::nullopt
                                         : std::optional<std::string>(tenant->second))};
    }
    if (path == "/api/usage") {
      const std::int64_t now = system_now_ms();
      UsageQuery query;
      if (auto it = params.find("tenant"); it != params.end()) query.tenant = it->second;
      auto from = resolve_day(params.contains("from") ? params.at("from") : "", now, true);
      if (!from) return error(http::status::bad_request, "from: " + from.error().message);
      auto to = resolve_day(params.contains("to") ? params.at("to") : "", now, false);
      if (!to) return error(http::status::bad_request, "to: " + to.error().message);
      if (*from > *to) return error(http::status::bad_request, "from is after to");
      query.from_day = *from;
      query.to_day = *to;
      const std::string group_by = params.contains("group_by") ? params.at("group_by") : "day";
      auto body = usage_json(*store, query, group_by, quality);
      if (!body) return error(http::status::bad_request, body.error().message);
      auto j = json::parse(*body);
      j["baseline_model"] = baseline_model;
      return {http::status::ok, "application/json", j.dump()};
    }
    return error(http::status::not_found, "no such path: " + path);
  }

  void serve(tcp::socket socket) {
    beast::error_code ec;
    // A stuck client must not hold a thread (or stop()) for long.
    timeval tv{10, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::read(socket, buffer, req, ec);
    if (ec) return;
    Reply reply;
    const bool authorized = !is_admin_key || authorized_by(req);
    try {
      if (!authorized) {
        reply = error(http::status::unauthorized,
                      "an admin key is required (cascade keys create --admin): Authorization: Bearer <key>");
      } else {
        reply = route(req);
      }
    } catch (const std::exception& e) {
      reply = error(http::status::internal_server_error, e.what());
    }
    http::response<http::string_body> res{reply.status, req.version()};
    res.set(http::field::server, "cascade-ledger");
    res.set(http::field::content_type, reply.content_type);
    res.set(http::field::cache_control, "no-store");
    if (!authorized) res.set(http::field::www_authenticate, "Basic realm=\"cascade-ledger\", charset=\"UTF-8\"");
    res.keep_alive(false);
    if (req.method() != http::verb::head) res.body() = std::move(reply.body);
    res.prepare_payload();
    http::write(socket, res, ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
  }

  void run() {
    while (!stopping.load()) {
      tcp::socket socket(ioc);
      beast::error_code ec;
      acceptor->accept(socket, ec);
      if (stopping.load()) break;
      if (ec) {
        spdlog::warn("ledger http: accept: {}", ec.message());
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      {
        std::lock_guard lock(mu);
        ++connections;
      }
      std::thread([this, s = std::move(socket)]() mutable {
        serve(std::move(s));
        std::lock_guard lock(mu);
        --connections;
        cv.notify_all();
      }).detach();
    }
  }
};

Result<std::unique_ptr<LedgerHttpServer>> LedgerHttpServer::start(const std::string& listen, const LedgerStore& store,
                                                                  const BudgetBook* budgets,
                                                                  const LedgerMetrics* metrics,
                                                                  std::string baseline_model,
                                                                  const QualityAggregator* quality,
                                                                  std::function<bool(std::string_view)> is_admin_key) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return fail(ErrorCode::invalid_request, "listen address '" + listen + "' is not host:port");
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = -1;
  auto [p, ec] = std::from_chars(listen.data() + colon + 1, listen.data() + listen.size(), port);
  if (ec != std::errc() || p != listen.data() + listen.size() || port < 0 || port > 65535)
    return fail(ErrorCode::invalid_request, "listen address '" + listen + "' has no valid port");
  auto server = std::unique_ptr<LedgerHttpServer>(new LedgerHttpServer());
  server->impl_ = std::make_unique<Impl>();
  Impl& s = *server->impl_;
  s.store = &store;
  s.budgets = budgets;
  s.metrics = metrics;
  s.quality = quality;
  s.is_admin_key = std::move(is_admin_key);
  s.baseline_model = std::move(baseline_model);
  try {
    const auto address = asio::ip::make_address(host.empty() || host == "*" ? "0.0.0.0" : host);
    s.acceptor = std::make_unique<tcp::acceptor>(s.ioc);
    const tcp::endpoint endpoint(address, static_cast<std::uint16_t>(port));
    s.acceptor->open(endpoint.protocol());
    s.acceptor->set_option(asio::socket_base::reuse_address(true));
    s.acceptor->bind(endpoint);
    s.acceptor->listen();
    s.port = s.acceptor->local_endpoint().port();
    s.host = address.is_unspecified() ? (address.is_v4() ? "127.0.0.1" : "::1") : address.to_string();
  } catch (const std::exception& e) {
    return fail(ErrorCode::unavailable, "cannot listen on " + listen + ": " + e.what());
  }
  s.thread = std::thread([&s] { s.run(); });
  return server;
}

LedgerHttpServer::~LedgerHttpServer() { stop(); }

std::uint16_t LedgerHttpServer::port() const { return impl_->port; }

void LedgerHttpServer::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  // Wake the blocking accept with a connection of our own.
  try {
    asio::io_context ioc;
    tcp::socket wake(ioc);
    wake.connect(tcp::endpoint(asio::ip::make_address(impl_->host), impl_->port));
  } catch (const std::exception&) {
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  beast::error_code ec;
  impl_->acceptor->close(ec);
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait_for(lock, std::chrono::seconds(15), [&] { return impl_->connections == 0; });
}

}  // namespace cascade
