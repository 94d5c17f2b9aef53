// Converters from public routing datasets to outcomes files
// (docs/routing.md, "Data").
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "router/tools/evaluation.h"

namespace cascade {
namespace {

constexpr std::string_view kRouteLlmWeak = "mistralai/Mixtral-8x7B-Instruct-v0.1";
constexpr std::string_view kRouteLlmStrong = "gpt-4-1106-preview";

Result<double> correctness(const std::string& cell, const std::string& where) {
  if (cell == "True" || cell == "true" || cell == "1" || cell == "1.0") return 1.0;
  if (cell == "False" || cell == "false" || cell == "0" || cell == "0.0") return 0.0;
  return fail(ErrorCode::invalid_request, where + ": correctness '" + cell + "' is not True/False");
}

double call_cost(const TokenPrice& price, std::size_t input_tokens, std::size_t output_tokens) {
  return static_cast<double>(input_tokens) * price.input + static_cast<double>(output_tokens) * price.output;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::optional<std::uint32_t> hex_value(std::string_view text, std::size_t at, std::size_t digits) {
  if (at + digits > text.size()) return std::nullopt;
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    const char c = text[at + i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
    else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
    else return std::nullopt;
  }
  return v;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& part : parts) {
    if (!out.empty()) out += "\n\n";
    out += part;
  }
  return out;
}

std::size_t column_of(const std::vector<std::string>& header, std::string_view name) {
  const auto it = std::ranges::find(header, name);
  return it == header.end() ? header.size() : static_cast<std::size_t>(it - header.begin());
}

void write_row(std::ostream& out, const OutcomeRow& row) { out << to_json(row).dump() << '\n'; }

// Billed input tokens of a prompt sent as one user message, and output tokens of an answer.
std::size_t prompt_tokens(const RouteLlmPrices& prices, std::string_view model, const std::string& prompt) {
  if (!prices.tokens) return estimate_tokens(prompt);
  return prices.tokens->count_messages(model, user_messages(prompt)).tokens;
}
std::size_t answer_tokens(const RouteLlmPrices& prices, std::string_view model, std::string_view answer) {
  if (!prices.tokens) return estimate_tokens(answer);
  return prices.tokens->count_text(model, answer).tokens;
}

}  // namespace

std::size_t estimate_tokens(std::string_view text) { return (text.size() + 3) / 4; }

Result<TokenPrice> read_token_price(const std::string& prices_file, const std::string& key) {
  std::ifstream in(prices_file);
  if (!in) return fail(ErrorCode::invalid_request, "cannot open price catalog '" + prices_file + "'");
  const auto catalog = nlohmann::json::parse(in, nullptr, false);
  if (catalog.is_discarded() || !catalog.is_object())
    return fail(ErrorCode::invalid_request, "price catalog '" + prices_file + "' is not a JSON object");
  const auto entry = catalog.find(key);
  if (entry == catalog.end() || !entry->is_object())
    return fail(ErrorCode::invalid_request, "price catalog has no model '" + key + "'");
  const auto input = entry->find("input_cost_per_token");
  const auto output = entry->find("output_cost_per_token");
  if (input == entry->end() || !input->is_number() || output == entry->end() || !output->is_number())
    return fail(ErrorCode::invalid_request, "price catalog: '" + key + "' has no input/output cost per token");
  return TokenPrice{input->get<double>(), output->get<double>()};
}

Result<std::vector<std::vector<std::string>>> read_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::invalid_request, "cannot open CSV '" + path + "'");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  bool field_started = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
      continue;
    }
    if (c == '"' && !field_started) {
      quoted = true;
      field_started = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
      rows.push_back(std::move(row));
      row.clear();
    } else {
      field += c;
      field_started = true;
    }
  }
  if (quoted) return fail(ErrorCode::invalid_request, "CSV '" + path + "': a quoted field never ends");
  if (field_started || !row.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::optional<std::vector<std::string>> parse_python_string_list(std::string_view text) {
  std::size_t i = 0;
  auto skip = [&] {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) ++i;
  };
  skip();
  if (i >= text.size() || text[i] != '[') return std::nullopt;
  ++i;
  std::vector<std::string> out;
  skip();
  if (i < text.size() && text[i] == ']') return out;
  while (i < text.size()) {
    skip();
    if (i >= text.size() || (text[i] != '\'' && text[i] != '"')) return std::nullopt;
    const char quote = text[i++];
    std::string s;
    bool closed = false;
    while (i < text.size()) {
      const char c = text[i++];
      if (c == quote) {
        closed = true;
        break;
      }
      if (c != '\\') {
        s += c;
        continue;
      }
      if (i >= text.size()) return std::nullopt;
      const char e = text[i++];
      switch (e) {
        case 'n': s += '\n'; break;
        case 't': s += '\t'; break;
        case 'r': s += '\r'; break;
        case '0': s += '\0'; break;
        case '\\': s += '\\'; break;
        case '\'': s += '\''; break;
        case '"': s += '"'; break;
        case 'x':
        case 'u':
        case 'U': {
          const std::size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          const auto v = hex_value(text, i, digits);
          if (!v) return std::nullopt;
          append_utf8(s, *v);
          i += digits;
          break;
        }
        case '\n': break;  // line continuation
        default:
          s += '\\';
          s += e;
      }
    }
    if (!closed) return std::nullopt;
    out.push_back(std::move(s));
    skip();
    if (i < text.size() && text[i] == ',') {
      ++i;
      skip();
      if (i < text.size() && text[i] == ']') {
        ++i;
        break;
      }
      continue;
    }
    if (i < text.size() && text[i] == ']') {
      ++i;
      break;
    }
    return std::nullopt;
  }
  skip();
  if (i != text.size()) return std::nullopt;
  return out;
}

Result<std::size_t> convert_routellm_mmlu(const std::string& responses_dir, const RouteLlmPrices& prices,
                                          std::ostream& out) {
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(responses_dir, ec)) {
    if (entry.path().extension() == ".csv") files.push_back(entry.path());
  }
  if (ec) return fail(ErrorCode::invalid_request, "cannot list '" + responses_dir + "': " + ec.message());
  if (files.empty()) return fail(ErrorCode::invalid_request, "no .csv files in '" + responses_dir + "'");
  std::ranges::sort(files);
  std::size_t written = 0;
  for (const auto& file : files) {
    auto csv = read_csv(file.string());
    if (!csv) return std::unexpected(csv.error());
    if (csv->empty()) continue;
    const auto& header = csv->front();
    const std::size_t prompt = column_of(header, "prompt");
    const std::size_t weak = column_of(header, kRouteLlmWeak);
    const std::size_t strong = column_of(header, kRouteLlmStrong);
    if (prompt == header.size() || weak == header.size() || strong == header.size())
      return fail(ErrorCode::invalid_request, file.string() + ": need columns prompt, " + std::string(kRouteLlmWeak) +
                                                  ", " + std::string(kRouteLlmStrong));
    const std::string subject = file.stem().string();
    for (std::size_t r = 1; r < csv->size(); ++r) {
      const auto& cells = (*csv)[r];
      if (cells.size() < header.size()) continue;  // a blank trailing line
      const std::string where = file.filename().string() + " row " + std::to_string(r);
      auto weak_ok = correctness(cells[weak], where);
      auto strong_ok = correctness(cells[strong], where);
      if (!weak_ok) return std::unexpected(weak_ok.error());
      if (!strong_ok) return std::unexpected(strong_ok.error());
      OutcomeRow row;
      row.prompt = cells[prompt];
      row.source = subject;
      // 5-shot MMLU is scored on one answer letter: one output token.
      row.outcomes[std::string(kRouteLlmWeak)] = {
          *weak_ok, call_cost(prices.weak, prompt_tokens(prices, kRouteLlmWeak, row.prompt), 1), std::nullopt};
      row.outcomes[std::string(kRouteLlmStrong)] = {
          *strong_ok, call_cost(prices.strong, prompt_tokens(prices, kRouteLlmStrong, row.prompt), 1), std::nullopt};
      write_row(out, row);
      ++written;
    }
  }
  return written;
}

Result<std::size_t> convert_routellm_gsm8k(const std::string& responses_csv, const std::string& exclude_file,
                                           const RouteLlmPrices& prices, std::ostream& out) {
  std::set<std::string> excluded;
  if (!exclude_file.empty()) {
    std::ifstream in(exclude_file);
    if (!in) return fail(ErrorCode::invalid_request, "cannot open '" + exclude_file + "'");
    std::string line;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("eval_prompt") && j["eval_prompt"].is_string())
        excluded.insert(j["eval_prompt"].get<std::string>());
    }
  }
  auto csv = read_csv(responses_csv);
  if (!csv) return std::unexpected(csv.error());
  if (csv->empty()) return fail(ErrorCode::invalid_request, responses_csv + " is empty");
  const auto& header = csv->front();
  const std::size_t prompt = column_of(header, "prompt");
  const std::size_t weak = column_of(header, kRouteLlmWeak);
  const std::size_t strong = column_of(header, kRouteLlmStrong);
  const std::size_t weak_response = column_of(header, std::string(kRouteLlmWeak) + "_response");
  const std::size_t strong_response = column_of(header, std::string(kRouteLlmStrong) + "_response");
  if (prompt == header.size() || weak == header.size() || strong == header.size() ||
      weak_response == header.size() || strong_response == header.size())
    return fail(ErrorCode::invalid_request,
                responses_csv + ": need columns prompt, both models' correctness and their _response");
  std::size_t written = 0;
  for (std::size_t r = 1; r < csv->size(); ++r) {
    const auto& cells = (*csv)[r];
    if (cells.size() < header.size()) continue;
    if (excluded.contains(cells[prompt])) continue;
    const std::string where = "row " + std::to_string(r);
    auto weak_ok = correctness(cells[weak], where);
    auto strong_ok = correctness(cells[strong], where);
    if (!weak_ok) return std::unexpected(weak_ok.error());
    if (!strong_ok) return std::unexpected(strong_ok.error());
    OutcomeRow row;
    row.prompt = cells[prompt];
    row.source = "gsm8k";
    row.outcomes[std::string(kRouteLlmWeak)] = {
        *weak_ok,
        call_cost(prices.weak, prompt_tokens(prices, kRouteLlmWeak, row.prompt),
                  answer_tokens(prices, kRouteLlmWeak, cells[weak_response])),
        cells[weak_response]};
    row.outcomes[std::string(kRouteLlmStrong)] = {
        *strong_ok,
        call_cost(prices.strong, prompt_tokens(prices, kRouteLlmStrong, row.prompt),
                  answer_tokens(prices, kRouteLlmStrong, cells[strong_response])),
        cells[strong_response]};
    write_row(out, row);
    ++written;
  }
  return written;
}

Result<std::size_t> convert_routerbench(const std::string& csv_file, std::ostream& out) {
  auto csv = read_csv(csv_file);
  if (!csv) return std::unexpected(csv.error());
  if (csv->empty()) return fail(ErrorCode::invalid_request, csv_file + " is empty");
  const auto& header = csv->front();
  const std::size_t prompt = column_of(header, "prompt");
  const std::size_t eval_name = column_of(header, "eval_name");
  if (prompt == header.size()) return fail(ErrorCode::invalid_request, csv_file + ": no 'prompt' column");
  // A model has a correctness column named after it, "<model>|total_cost"
  // and "<model>|model_response".
  struct Columns {
    std::string model;
    std::size_t quality, cost, response;
  };
  std::vector<Columns> models;
  for (std::size_t c = 0; c < header.size(); ++c) {
    const std::size_t cost = column_of(header, header[c] + "|total_cost");
    if (cost == header.size()) continue;
    models.push_back({header[c], c, cost, column_of(header, header[c] + "|model_response")});
  }
  if (models.empty()) return fail(ErrorCode::invalid_request, csv_file + ": no '<model>|total_cost' columns");
  std::size_t written = 0;
  for (std::size_t r = 1; r < csv->size(); ++r) {
    const auto& cells = (*csv)[r];
    if (cells.size() < header.size()) continue;
    const auto parts = parse_python_string_list(cells[prompt]);
    if (!parts || parts->empty())
      return fail(ErrorCode::invalid_request, csv_file + " row " + std::to_string(r) + ": prompt is not a list of strings");
    OutcomeRow row;
    row.prompt = join(*parts);
    row.source = eval_name < header.size() ? cells[eval_name] : "routerbench";
    for (const auto& m : models) {
      if (cells[m.quality].empty() || cells[m.cost].empty()) continue;  // this model has no result here
      char* end = nullptr;
      const double quality = std::strtod(cells[m.quality].c_str(), &end);
      if (*end != '\0' || !(quality >= 0 && quality <= 1))
        return fail(ErrorCode::invalid_request, csv_file + " row " + std::to_string(r) + ": bad quality of " + m.model);
      const double cost = std::strtod(cells[m.cost].c_str(), &end);
      if (*end != '\0' || !(cost >= 0))
        return fail(ErrorCode::invalid_request, csv_file + " row " + std::to_string(r) + ": bad cost of " + m.model);
      ModelOutcome outcome{quality, cost, std::nullopt};
      if (m.response < header.size()) {
        if (auto responses = parse_python_string_list(cells[m.response])) outcome.response = join(*responses);
      }
      row.outcomes[m.model] = std::move(outcome);
    }
    if (row.outcomes.empty()) continue;
    write_row(out, row);
    ++written;
  }
  return written;
}

std::map<std::string, std::string> default_alpaca_eval_price_keys() {
  return {
      {"gpt4_1106_preview", "gpt-4-1106-preview"},
      {"gpt-3.5-turbo-1106", "gpt-3.5-turbo-1106"},
      {"gpt35_turbo_instruct", "gpt-3.5-turbo-instruct"},
      {"claude-2.1", "anthropic.claude-v2:1"},
      {"claude-instant-1.2", "anthropic.claude-instant-v1"},
      {"gemma-7b-it", "fireworks_ai/accounts/fireworks/models/gemma-7b-it"},
      {"gemma-2b-it", "fireworks_ai/accounts/fireworks/models/gemma-2b-it"},
      {"OpenHermes-2.5-Mistral-7B", "fireworks_ai/accounts/fireworks/models/openhermes-2p5-mistral-7b"},
      {"vicuna-13b-v1.5", "anyscale/meta-llama/Llama-2-13b-chat-hf"},
      {"FuseChat-Qwen-2.5-7B-Instruct", "fireworks_ai/accounts/fireworks/models/qwen2p5-7b-instruct"},
      {"FuseChat-Llama-3.1-8B-Instruct", "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct"},
      {"FuseChat-Llama-3.2-1B-Instruct", "fireworks_ai/accounts/fireworks/models/llama-v3p2-1b-instruct"},
  };
}

Result<AlpacaEvalConversion> convert_alpaca_eval(const std::string& dir, const AlpacaEvalPricing& pricing,
                                                 std::ostream& out) {
  namespace fs = std::filesystem;
  constexpr std::string_view kAnnotator = "weighted_alpaca_eval_gpt4_turbo";
  auto read_lines = [](const fs::path& path) -> Result<std::vector<nlohmann::json>> {
    std::ifstream in(path);
    if (!in) return fail(ErrorCode::invalid_request, "cannot open " + path.string());
    std::vector<nlohmann::json> rows;
    std::string line;
    for (std::size_t number = 1; std::getline(in, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto row = nlohmann::json::parse(line, nullptr, false);
      if (!row.is_object() || !row.contains("idx") || !row["idx"].is_number_integer())
        return fail(ErrorCode::invalid_request, path.string() + ":" + std::to_string(number) + ": not an {idx, ...} object");
      rows.push_back(std::move(row));
    }
    return rows;
  };

  // Prompts by idx.
  auto instructions = read_lines(fs::path(dir) / "instructions.jsonl");
  if (!instructions) return std::unexpected(instructions.error());
  std::map<std::int64_t, std::pair<std::string, std::string>> prompts;  // idx -> (instruction, dataset)
  for (const auto& row : *instructions) {
    if (!row.contains("instruction") || !row["instruction"].is_string()) continue;
    prompts[row["idx"].get<std::int64_t>()] = {row["instruction"].get<std::string>(), row.value("dataset", "")};
  }
  // Preferences of the weighted annotator, by (idx, model).
  auto csv = read_csv((fs::path(dir) / "preferences.csv").string());
  if (!csv) return std::unexpected(csv.error());
  if (csv->empty()) return fail(ErrorCode::invalid_request, "preferences.csv is empty");
  const auto& header = csv->front();
  const std::size_t c_idx = column_of(header, "idx"), c_model = column_of(header, "model"),
                    c_annotator = column_of(header, "annotator"), c_pref = column_of(header, "preference");
  if (c_idx == header.size() || c_model == header.size() || c_annotator == header.size() || c_pref == header.size())
    return fail(ErrorCode::invalid_request, "preferences.csv needs columns idx, model, annotator, preference");
  std::map<std::pair<std::int64_t, std::string>, double> preference;
  for (std::size_t r = 1; r < csv->size(); ++r) {
    const auto& cells = (*csv)[r];
    if (cells.size() < header.size() || cells[c_annotator] != kAnnotator) continue;
    char* end = nullptr;
    const double value = std::strtod(cells[c_pref].c_str(), &end);
    const long long idx = std::strtoll(cells[c_idx].c_str(), nullptr, 10);
    if (end == cells[c_pref].c_str() || !(value >= 1.0 && value <= 2.0))
      return fail(ErrorCode::invalid_request, "preferences.csv row " + std::to_string(r) + ": preference is not in [1, 2]");
    preference[{idx, cells[c_model]}] = value;
  }

  AlpacaEvalConversion result;
  std::map<std::string, TokenPrice> prices;
  std::map<std::int64_t, OutcomeRow> rows;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(fs::path(dir) / "outputs")) {
    if (entry.path().extension() == ".jsonl") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    const std::string model = file.stem().string();
    const auto key = pricing.price_keys.find(model);
    if (key == pricing.price_keys.end()) {
      result.unpriced.push_back(model);
      continue;
    }
    auto price = read_token_price(pricing.prices_file, key->second);
    if (!price) return std::unexpected(price.error());
    auto outputs = read_lines(file);
    if (!outputs) return std::unexpected(outputs.error());
    for (const auto& answer : *outputs) {
      const std::int64_t idx = answer["idx"].get<std::int64_t>();
      const auto prompt = prompts.find(idx);
      const auto judged = preference.find({idx, model});
      // No answer (null), an empty one or no judgement: nothing to learn from.
      if (prompt == prompts.end() || judged == preference.end() || !answer.contains("output") ||
          !answer["output"].is_string())
        continue;
      const std::string text = answer["output"].get<std::string>();
      const std::size_t input = pricing.tokens ? pricing.tokens->count_messages(model, user_messages(prompt->second.first)).tokens
                                               : estimate_tokens(prompt->second.first);
      const std::size_t output = pricing.tokens ? pricing.tokens->count_text(model, text).tokens : estimate_tokens(text);
      OutcomeRow& row = rows[idx];
      row.prompt = prompt->second.first;
      row.source = "alpaca_eval/" + prompt->second.second;
      row.outcomes[model] = {judged->second - 1.0, call_cost(*price, input, output), text};
      ++result.answers[model];
    }
  }
  for (const auto& [idx, row] : rows) {
    if (pricing.pool_as.empty()) {
      write_row(out, row);
      ++result.rows;
      continue;
    }
    const auto baseline = row.outcomes.find(std::string(kAlpacaEvalBaseline));
    if (baseline == row.outcomes.end()) continue;
    for (const auto& [model, outcome] : row.outcomes) {
      if (model == kAlpacaEvalBaseline) continue;
      OutcomeRow pooled;
      pooled.prompt = row.prompt;
      pooled.source = row.source + "/" + model;
      pooled.outcomes[pricing.pool_as] = outcome;
      pooled.outcomes[baseline->first] = baseline->second;
      write_row(out, pooled);
      ++result.rows;
    }
  }
  return result;
}

}  // namespace cascade
