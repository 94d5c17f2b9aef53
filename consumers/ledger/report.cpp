#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "consumers/ledger/ledger.h"

namespace cascade {

namespace {

constexpr int kBarWidth = 30;

// Large enough for any one number formatted here (a %f double is at most ~330 chars).
template <class... Args>
std::string printf_string(const char* format, Args... args) {
  char buffer[512];
  int size = std::snprintf(buffer, sizeof buffer, format, args...);
  return std::string(buffer, static_cast<std::size_t>(std::clamp(size, 0, static_cast<int>(sizeof buffer) - 1)));
}

std::string with_thousands(std::uint64_t value) {
  std::string digits = std::to_string(value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Single requests on cheap models cost fractions of a cent, so small amounts
// keep more decimals: under a dollar 4, under a cent at least 6 and enough for
// 3 significant digits.
std::string format_money(double usd) {
  std::string sign = usd < 0 ? "-" : "";
  double magnitude = std::fabs(usd);
  if (magnitude == 0) return "$0.00";
  if (magnitude >= 0.01 && magnitude < 0.995) return sign + printf_string("$%.4f", magnitude);
  if (magnitude >= 0.01) {
    double rounded = std::round(magnitude * 100) / 100;
    auto dollars = static_cast<std::uint64_t>(rounded);
    auto cents = static_cast<int>(std::llround((rounded - static_cast<double>(dollars)) * 100));
    return sign + "$" + with_thousands(dollars) + printf_string(".%02d", cents);
  }
  int leading_zeros = static_cast<int>(std::floor(-std::log10(magnitude)));
  int decimals = std::clamp(leading_zeros + 3, 6, 12);
  return sign + printf_string("$%.*f", decimals, magnitude);
}

std::string format_percent(double part, double whole) {
  if (whole == 0) return "n/a";
  return printf_string("%.1f%%", 100.0 * part / whole);
}

std::string format_duration_ms(double ms) {
  if (ms >= 1000) return printf_string("%.2f s", ms / 1000);
  return printf_string("%.0f ms", ms);
}

std::string bar_for(double share) {
  int length = static_cast<int>(std::lround(share * kBarWidth));
  // A model that served anything gets a visible mark even when its share rounds to 0.
  if (share > 0 && length == 0) length = 1;
  return std::string(static_cast<std::size_t>(length), '#');
}

std::string pad_right(const std::string& text, std::size_t width) {
  return text.size() >= width ? text : text + std::string(width - text.size(), ' ');
}

std::string pad_left(const std::string& text, std::size_t width) {
  return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
}

}  // namespace

std::string format_savings_report(const LedgerAggregator& ledger, const std::string& baseline_model,
                                  const std::string& tenant) {
  SavingsReportOptions options;
  options.tenant = tenant;
  return format_savings_report(ledger, baseline_model, options);
}

namespace {

std::string budget_lines(const std::vector<BudgetStatus>& budgets) {
  if (budgets.empty()) return {};
  std::string out = "\nBudget use (current UTC day and month)\n";
  for (const auto& s : budgets) {
    const auto& b = s.budget;
    std::string line = pad_right(b.tenant + " " + describe_scope(b.scope), 28);
    auto part = [&](const char* name, double spent, double limit) {
      std::string text = std::string(name) + " " + format_money(spent) + " of " + format_money(limit) + " (" +
                         format_percent(spent, limit) + ")";
      if (spent >= limit) text += " EXCEEDED";
      else if (spent >= limit * b.limits.soft_percent / 100.0) text += " soft limit passed";
      return text;
    };
    std::vector<std::string> parts;
    if (b.limits.daily_usd > 0) parts.push_back(part("daily", s.spent_daily_usd, b.limits.daily_usd));
    if (b.limits.monthly_usd > 0) parts.push_back(part("monthly", s.spent_monthly_usd, b.limits.monthly_usd));
    for (std::size_t i = 0; i < parts.size(); ++i) line += (i ? "; " : "") + parts[i];
    out += line + (s.runtime ? "  [set at run time]" : "") + "\n";
  }
  return out;
}

// Per routing policy / experiment arm (docs/routing.md, "Policies"), so
// the arms of an A/B split can be compared; nothing when no event had one.
std::string policy_lines(const std::map<std::string, LedgerTotals>& policies) {
  if (policies.empty()) return {};
  std::size_t width = 6;
  for (const auto& [policy, totals] : policies) width = std::max(width, policy.size());
  std::string out = "\nPolicies (routing policy or experiment arm)\n";
  out += pad_right("policy", width) + "  " + pad_left("requests", 8) + "  " + pad_left("cost", 10) + "  " +
         pad_left("cost/req", 10) + "  " + pad_left("savings", 10) + "  " + pad_left("saved", 6) + "\n";
  for (const auto& [policy, t] : policies) {
    const double per_request = t.requests ? t.cost_usd / static_cast<double>(t.requests) : 0;
    out += pad_right(policy, width) + "  " + pad_left(with_thousands(t.requests), 8) + "  " +
           pad_left(format_money(t.cost_usd), 10) + "  " + pad_left(format_money(per_request), 10) + "  " +
           pad_left(format_money(t.savings_usd), 10) + "  " +
           pad_left(format_percent(t.savings_usd, t.baseline_cost_usd), 6) + "\n";
  }
  return out;
}

// Adds `row`'s grades (and judge cost) to `into`.
void add_grades(QualityRow& into, const QualityRow& row) {
  into.samples += row.samples;
  into.score_sum += row.score_sum;
  for (std::size_t g = 0; g < into.by_grade.size(); ++g) into.by_grade[g] += row.by_grade[g];
  into.judge_cost_usd += row.judge_cost_usd;
}

// Every tenant's grades of one model and tier together.
std::vector<QualityRow> merged_by_model(const std::vector<QualityRow>& rows) {
  std::map<std::pair<std::string, std::string>, QualityRow> merged;
  for (const QualityRow& row : rows) {
    QualityRow& m = merged[{row.model, row.tier}];
    m.model = row.model;
    m.tier = row.tier;
    add_grades(m, row);
  }
  std::vector<QualityRow> out;
  for (auto& [key, row] : merged) out.push_back(std::move(row));
  return out;
}

double share_graded_4_or_5(const QualityRow& row) {
  return row.samples == 0 ? 0 : static_cast<double>(row.by_grade[3] + row.by_grade[4]) / static_cast<double>(row.samples);
}

// Why the savings figure stands alone when nothing was graded.
constexpr const char* kNoGrades =
    "not measured: no answer was graded (set quality.sample_rate to have the judge grade a share of the "
    "cheaper tiers' answers)";

// Judged quality over time: per UTC day, the mean grade and, with
// calibration samples, the share of the reference's quality.
std::string daily_quality_lines(const std::vector<DailyQuality>& days) {
  std::map<std::string, DailyQuality> by_day;
  for (const DailyQuality& d : days) by_day[d.day].add(d);
  if (by_day.empty()) return {};
  std::string out = "\nJudged quality by day (UTC)\n";
  out += pad_right("day", 10) + "  " + pad_left("graded", 7) + "  " + pad_left("mean", 5) + "  " +
         pad_left("paired", 7) + "  " + pad_left("of reference", 12) + "\n";
  for (const auto& [day, d] : by_day) {
    out += pad_right(day, 10) + "  " + pad_left(with_thousands(d.graded), 7) + "  " +
           pad_left(printf_string("%.2f", d.mean_score()), 5) + "  " + pad_left(with_thousands(d.paired), 7) + "  " +
           pad_left(d.paired ? printf_string("%.0f%%", 100.0 * d.reference_ratio()) : std::string("-"), 12) + "\n";
  }
  return out;
}

std::string quality_lines(const std::vector<QualityRow>& by_model) {
  if (by_model.empty()) return {};
  std::size_t model_width = 5;
  for (const QualityRow& row : by_model) model_width = std::max(model_width, row.model.size());
  std::string out = "\nJudged quality (LLM-as-judge grades 1-5 of sampled answers, cascade.quality)\n";
  out += pad_right("model", model_width) + "  " + pad_right("tier", 6) + "  " + pad_left("graded", 7) + "  " +
         pad_left("mean", 5) + "  " + pad_left("4 or 5", 6) + "  " + pad_left("judge cost", 10) + "\n";
  for (const QualityRow& row : by_model) {
    out += pad_right(row.model, model_width) + "  " + pad_right(row.tier, 6) + "  " +
           pad_left(with_thousands(row.samples), 7) + "  " + pad_left(printf_string("%.2f", row.mean_score()), 5) +
           "  " + pad_left(printf_string("%.0f%%", 100.0 * share_graded_4_or_5(row)), 6) + "  " +
           pad_left(format_money(row.judge_cost_usd), 10) + "\n";
  }
  return out;
}

}  // namespace

std::string format_savings_report(const LedgerAggregator& ledger, const std::string& baseline_model,
                                  const SavingsReportOptions& options) {
  const std::string& tenant = options.tenant;
  const bool all_tenants = tenant.empty();
  const LedgerTotals totals = all_tenants ? ledger.total() : ledger.tenant_total(tenant);
  const std::map<std::string, LedgerTotals> models =
      all_tenants ? ledger.by_model() : ledger.tenant_by_model(tenant);

  std::string out;
  const std::string scope = all_tenants ? "all tenants" : "tenant " + tenant;
  const std::string title =
      "Cascade savings report: " + scope + (options.window.empty() ? "" : ", " + options.window);
  out += title + "\n" + std::string(title.size(), '=') + "\n";

  if (totals.requests == 0) {
    out += "No requests recorded.\n";
    return out + budget_lines(options.budgets);
  }

  auto line = [&](const std::string& label, const std::string& value) {
    out += pad_right(label, 16) + value + "\n";
  };
  const double requests = static_cast<double>(totals.requests);
  line("Requests", with_thousands(totals.requests));
  line("Cache hits", with_thousands(totals.cache_hits) + " (" +
                         format_percent(static_cast<double>(totals.cache_hits), requests) + " hit rate)");
  line("Actual cost", format_money(totals.cost_usd));
  line("Baseline cost", format_money(totals.baseline_cost_usd) + " (if every request had gone to " +
                            baseline_model + ")");
  const std::string savings_percent = format_percent(totals.savings_usd, totals.baseline_cost_usd);
  line("Savings", format_money(totals.savings_usd) + " (" + savings_percent + " of baseline)");
  std::vector<QualityRow> graded;
  if (options.quality) {
    graded = merged_by_model(*options.quality);
    QualityRow all;
    for (const QualityRow& row : graded) add_grades(all, row);
    line("Quality", all.samples == 0
                        ? std::string(kNoGrades)
                        : printf_string("%.2f / 5 mean judged grade of %s graded answers "
                                        "(%.0f%% graded 4 or 5)",
                                        all.mean_score(), with_thousands(all.samples).c_str(),
                                        100.0 * share_graded_4_or_5(all)));
    DailyQuality paired;
    for (const DailyQuality& day : options.quality_by_day) paired.add(day);
    if (paired.paired > 0) {
      // Measured on the same prompts: what the answers kept, what the bill kept.
      line("", printf_string("= %.0f%% of %s's judged quality on the same prompts (%s calibration samples: "
                             "served %.2f, reference %.2f) at %s of its cost",
                             100.0 * paired.reference_ratio(), paired.reference_model.c_str(),
                             with_thousands(paired.paired).c_str(),
                             paired.served_sum / static_cast<double>(paired.paired),
                             paired.reference_sum / static_cast<double>(paired.paired),
                             format_percent(totals.cost_usd, totals.baseline_cost_usd).c_str()));
    } else if (all.samples > 0 && options.baseline_grade > 0) {
      // The two figures a buyer weighs: what the answers kept, what the bill kept.
      line("", printf_string("= %.0f%% of %s's judged quality (its answers grade %.2f) at %s of its cost",
                             100.0 * all.mean_score() / options.baseline_grade, baseline_model.c_str(),
                             options.baseline_grade,
                             format_percent(totals.cost_usd, totals.baseline_cost_usd).c_str()));
    }
  }
  line("Avg latency", format_duration_ms(totals.latency_ms_sum / requests));
  line("Avg TTFT", format_duration_ms(totals.ttft_ms_sum / requests));

  std::vector<std::pair<std::string, LedgerTotals>> mix(models.begin(), models.end());
  std::stable_sort(mix.begin(), mix.end(), [](const auto& a, const auto& b) {
    return a.second.requests > b.second.requests;
  });
  std::size_t model_width = 5;
  for (const auto& [model, model_totals] : mix) model_width = std::max(model_width, model.size());

  out += "\nModel mix\n";
  out += pad_right("model", model_width) + "  " + pad_left("requests", 8) + "  " + pad_left("share", 6) +
         "  " + pad_right("", kBarWidth) + "  " + pad_left("cost", 10) + "\n";
  for (const auto& [model, model_totals] : mix) {
    const double share = static_cast<double>(model_totals.requests) / requests;
    out += pad_right(model, model_width) + "  " + pad_left(with_thousands(model_totals.requests), 8) + "  " +
           pad_left(printf_string("%.1f%%", 100.0 * share), 6) + "  " + pad_right(bar_for(share), kBarWidth) +
           "  " + pad_left(format_money(model_totals.cost_usd), 10) + "\n";
  }
  return out + quality_lines(graded) + daily_quality_lines(options.quality_by_day) + policy_lines(all_tenants ? ledger.by_policy() : ledger.tenant_by_policy(tenant)) +
         budget_lines(options.budgets);
}

}  // namespace cascade
