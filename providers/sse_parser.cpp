#include "providers/provider.h"

namespace cascade {

namespace {
constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
}  // namespace

void SseParser::feed(std::string_view bytes, const std::function<void(const Event&)>& on_event) {
  std::size_t pos = 0;
  // A CRLF split across two reads: the CR already ended the line.
  if (last_was_cr_ && !bytes.empty() && bytes.front() == '\n') pos = 1;
  if (!bytes.empty()) last_was_cr_ = false;

  while (pos < bytes.size()) {
    const std::size_t eol = bytes.find_first_of("\r\n", pos);
    if (eol == std::string_view::npos) {
      buffer_.append(bytes.substr(pos));
      return;
    }
    if (buffer_.empty()) {
      line(bytes.substr(pos, eol - pos), on_event);
    } else {
      buffer_.append(bytes.substr(pos, eol - pos));
      line(buffer_, on_event);
      buffer_.clear();
    }
    pos = eol + 1;
    if (bytes[eol] == '\r') {
      if (pos < bytes.size()) {
        if (bytes[pos] == '\n') ++pos;
      } else {
        last_was_cr_ = true;
      }
    }
  }
}

void SseParser::line(std::string_view text, const std::function<void(const Event&)>& on_event) {
  if (at_stream_start_) {
    at_stream_start_ = false;
    if (text.starts_with(kByteOrderMark)) text.remove_prefix(kByteOrderMark.size());
  }
  if (text.empty()) {
    if (has_data_) on_event(current_);
    current_.event.clear();
    current_.data.clear();
    has_data_ = false;
    return;
  }
  if (text.front() == ':') return;

  std::string_view field = text;
  std::string_view value;
  if (const auto colon = text.find(':'); colon != std::string_view::npos) {
    field = text.substr(0, colon);
    value = text.substr(colon + 1);
    if (value.starts_with(' ')) value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) current_.data.push_back('\n');
    current_.data.append(value);
    has_data_ = true;
  } else if (field == "event") {
    current_.event.assign(value);
  }
  // "id" and "retry" only matter for EventSource reconnection, which a chat
  // completion stream never does; other fields are ignored by the standard.
}

}  // namespace cascade
