#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "providers/provider.h"
#include "core/text.h"

namespace cascade {

namespace {

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw std::runtime_error("curl_global_init failed");
    }
  });
}

bool names_header(const std::vector<std::string>& headers, std::string_view name) {
  for (const auto& header : headers) {
    if (header.size() < name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size() && same; ++i) {
      same = std::tolower(static_cast<unsigned char>(header[i])) ==
             std::tolower(static_cast<unsigned char>(name[i]));
    }
    if (same && (header.size() == name.size() || header[name.size()] == ':' ||
                 header[name.size()] == ';')) {
      return true;
    }
  }
  return false;
}

}  // namespace

struct HttpClient::Impl {
  struct Transfer {
    std::uint64_t id = 0;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    HttpRequest request;  // keeps the URL and body alive for curl
    // nullptr once cancelled: a cancelled transfer makes no further calls.
    HttpResponseHandler* handler = nullptr;
    std::unique_ptr<HttpResponseHandler> owned_handler;
    bool attached = false;     // added to the multi handle
    bool status_sent = false;  // on_status delivered for the final response
    bool in_interim_response = false;  // inside a 1xx header block
    char error[CURL_ERROR_SIZE] = {};

    Transfer() = default;
    Transfer(const Transfer&) = delete;
    Transfer& operator=(const Transfer&) = delete;
    // Callers detach from the multi handle first (curl requires it).
    ~Transfer() {
      if (easy != nullptr) curl_easy_cleanup(easy);
      if (headers != nullptr) curl_slist_free_all(headers);
    }

    void send_status() {
      if (status_sent || handler == nullptr) return;
      status_sent = true;
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      handler->on_status(status);
    }
  };

  CURLM* multi = nullptr;
  // curl's socket interface over epoll: a loop iteration costs what its ready
  // sockets cost, not what all open streams cost (curl_multi_perform and
  // curl_multi_poll visit every transfer and every socket on each call, which
  // dominated the loop with thousands of slow streams in flight).
  int epoll_fd = -1;
  int wake_event_fd = -1;     // wakeup() from any thread
  int watched_wake_fd = -1;   // the caller's wake_fd, registered while it is the same
  std::uint64_t next_id = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Transfer>> transfers;
  // curl forbids adding or removing easy handles from inside its callbacks, so
  // start()/cancel() called from on_status/on_header/on_body are deferred.
  bool inside_curl = false;
  std::vector<std::uint64_t> deferred_adds;
  std::vector<std::uint64_t> deferred_releases;
  // Transfers that failed before curl ran them; on_done is still owed.
  std::vector<std::pair<std::uint64_t, CURLcode>> failed_starts;

  Impl() {
    init_curl_once();
    multi = curl_multi_init();
    if (multi == nullptr) throw std::runtime_error("curl_multi_init failed");
    epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    wake_event_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epoll_fd < 0 || wake_event_fd < 0) throw std::runtime_error("epoll or eventfd could not be created");
    epoll_event wake{};
    wake.events = EPOLLIN;
    wake.data.fd = wake_event_fd;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_event_fd, &wake) != 0) {
      throw std::runtime_error("eventfd could not be watched");
    }
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
  }

  ~Impl() {
    for (auto& [id, transfer] : transfers) detach(*transfer);
    transfers.clear();
    curl_multi_cleanup(multi);
    ::close(wake_event_fd);
    ::close(epoll_fd);
  }

  // curl tells which sockets to watch for what; only epoll_ctl may happen here.
  static int on_socket(CURL*, curl_socket_t socket, int what, void* user, void*) {
    auto& self = *static_cast<Impl*>(user);
    if (what == CURL_POLL_REMOVE) {
      ::epoll_ctl(self.epoll_fd, EPOLL_CTL_DEL, socket, nullptr);  // fails harmlessly if already closed
      return 0;
    }
    epoll_event event{};
    event.data.fd = socket;
    if ((what & CURL_POLL_IN) != 0) event.events |= EPOLLIN;
    if ((what & CURL_POLL_OUT) != 0) event.events |= EPOLLOUT;
    if (::epoll_ctl(self.epoll_fd, EPOLL_CTL_MOD, socket, &event) != 0 && errno == ENOENT) {
      ::epoll_ctl(self.epoll_fd, EPOLL_CTL_ADD, socket, &event);
    }
    return 0;
  }

  void detach(Transfer& t) {
    if (t.attached) {
      curl_multi_remove_handle(multi, t.easy);
      t.attached = false;
    }
  }

  static std::size_t on_write(char* data, std::size_t size, std::size_t count, void* user) {
    auto& t = *static_cast<Transfer*>(user);
    const std::size_t bytes = size * count;
    if (t.handler == nullptr) return 0;  // cancelled: stop reading
    t.send_status();
    if (t.handler == nullptr) return 0;  // cancelled from on_status
    if (!t.handler->on_body(std::string_view(data, bytes))) return 0;
    return bytes;
  }

  static std::size_t on_header_line(char* data, std::size_t size, std::size_t count, void* user) {
    auto& t = *static_cast<Transfer*>(user);
    const std::size_t bytes = size * count;
    if (t.handler == nullptr) return 0;
    const std::string_view line(data, bytes);
    if (line.starts_with("HTTP/")) {
      // "HTTP/1.1 100 Continue": headers of interim responses are not the answer's.
      const auto space = line.find(' ');
      t.in_interim_response = space != std::string_view::npos && space + 1 < line.size() &&
                              line[space + 1] == '1';
      return bytes;
    }
    const std::string_view content = trim_space(line);
    if (content.empty()) {
      if (t.in_interim_response) {
        t.in_interim_response = false;
      } else {
        t.send_status();
      }
      return bytes;
    }
    if (t.in_interim_response) return bytes;
    const auto colon = content.find(':');
    if (colon == std::string_view::npos) return bytes;
    t.handler->on_header(trim_space(content.substr(0, colon)), trim_space(content.substr(colon + 1)));
    return bytes;
  }

  std::uint64_t start(HttpRequest request, HttpResponseHandler* handler,
                      std::unique_ptr<HttpResponseHandler> owned) {
    auto t = std::make_unique<Transfer>();
    t->id = next_id++;
    t->handler = handler;
    t->owned_handler = std::move(owned);
    t->request = std::move(request);
    const std::uint64_t id = t->id;

    t->easy = curl_easy_init();
    if (t->easy == nullptr || !configure(*t)) {
      failed_starts.emplace_back(id, CURLE_FAILED_INIT);
      transfers.emplace(id, std::move(t));
      return id;
    }
    transfers.emplace(id, std::move(t));
    if (inside_curl) {
      deferred_adds.push_back(id);
    } else {
      attach(id);
    }
    return id;
  }

  bool configure(Transfer& t) {
    CURL* e = t.easy;
    const HttpRequest& r = t.request;
    for (const auto& header : r.headers) {
      curl_slist* grown = curl_slist_append(t.headers, header.c_str());
      if (grown == nullptr) return false;
      t.headers = grown;
    }
    // curl would send "Expect: 100-continue" for large bodies and wait a round
    // trip for the interim answer; upstream APIs never need it.
    if (!names_header(r.headers, "Expect")) {
      curl_slist* grown = curl_slist_append(t.headers, "Expect:");
      if (grown == nullptr) return false;
      t.headers = grown;
    }
    curl_easy_setopt(e, CURLOPT_PRIVATE, static_cast<void*>(&t));
    curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r.total_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::on_header_line);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    if (r.method == "GET") {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (r.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
      if (r.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
      if (r.method == "POST" || !r.body.empty()) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
      }
    }
    return true;
  }

  void attach(std::uint64_t id) {
    auto it = transfers.find(id);
    if (it == transfers.end() || it->second->handler == nullptr) return;
    Transfer& t = *it->second;
    if (curl_multi_add_handle(multi, t.easy) == CURLM_OK) {
      t.attached = true;
    } else {
      failed_starts.emplace_back(id, CURLE_FAILED_INIT);
    }
  }

  void release(std::uint64_t id) {
    auto it = transfers.find(id);
    if (it == transfers.end()) return;
    std::unique_ptr<Transfer> t = std::move(it->second);
    transfers.erase(it);
    detach(*t);
    // The owned handler dies with `t`, outside any of its own callbacks.
  }

  void cancel(std::uint64_t id) {
    auto it = transfers.find(id);
    if (it == transfers.end()) return;
    it->second->handler = nullptr;
    if (inside_curl) {
      deferred_releases.push_back(id);
    } else {
      release(id);
    }
  }

  void socket_action(curl_socket_t socket, int mask) {
    int running = 0;
    inside_curl = true;
    curl_multi_socket_action(multi, socket, mask, &running);
    inside_curl = false;
  }

  void run_deferred() {
    for (std::size_t i = 0; i < deferred_adds.size(); ++i) attach(deferred_adds[i]);
    deferred_adds.clear();
    for (std::size_t i = 0; i < deferred_releases.size(); ++i) release(deferred_releases[i]);
    deferred_releases.clear();
  }

  // Milliseconds until curl wants CURL_SOCKET_TIMEOUT run, -1 for never.
  // Asked each time rather than tracked with CURLMOPT_TIMERFUNCTION: curl
  // skips that callback when its earliest expiry keeps the same key, which
  // would leave a one-shot timer unarmed with transfers waiting on it.
  long curl_timeout_ms() const {
    long ms = -1;
    curl_multi_timeout(multi, &ms);
    return ms;
  }

  void run_due_timer() {
    if (curl_timeout_ms() == 0) {
      socket_action(CURL_SOCKET_TIMEOUT, 0);
      run_deferred();
    }
  }

  void watch_wake_fd(int wake_fd) {
    if (wake_fd == watched_wake_fd) return;
    if (watched_wake_fd >= 0) ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, watched_wake_fd, nullptr);
    watched_wake_fd = -1;
    if (wake_fd < 0) return;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = wake_fd;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &event) == 0) watched_wake_fd = wake_fd;
  }

  // Calls on_done for finished transfers. Each is detached and taken out of
  // the map before its handler runs, so the handler may start or cancel
  // transfers (including ones finishing in this same batch).
  std::size_t deliver_completions() {
    std::vector<std::pair<std::uint64_t, CURLcode>> finished;
    finished.swap(failed_starts);
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      char* private_data = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &private_data);
      if (private_data == nullptr) continue;
      auto* t = reinterpret_cast<Transfer*>(private_data);
      const CURLcode result = msg->data.result;  // msg is invalid after remove_handle
      detach(*t);
      finished.emplace_back(t->id, result);
    }
    std::size_t delivered = 0;
    for (const auto& [id, result] : finished) {
      auto it = transfers.find(id);
      if (it == transfers.end()) continue;  // cancelled by an earlier on_done
      std::unique_ptr<Transfer> t = std::move(it->second);
      transfers.erase(it);
      detach(*t);
      if (t->handler != nullptr) {
        const std::string_view message =
            t->error[0] != '\0' ? std::string_view(t->error) : curl_easy_strerror(result);
        t->handler->on_done(result, message);
        ++delivered;
      }
    }
    return delivered;
  }

  void poll(int timeout_ms, int wake_fd) {
    run_due_timer();
    if (deliver_completions() > 0 || !failed_starts.empty()) return;
    watch_wake_fd(wake_fd);
    int wait_ms = timeout_ms < 0 ? 0 : timeout_ms;
    if (const long curl_ms = curl_timeout_ms(); curl_ms >= 0) {
      wait_ms = static_cast<int>(std::min<long>(curl_ms, wait_ms));
    }
    constexpr int kMaxEvents = 256;
    epoll_event events[kMaxEvents];
    const int ready = ::epoll_wait(epoll_fd, events, kMaxEvents, wait_ms);
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_event_fd) {
        std::uint64_t count = 0;
        [[maybe_unused]] auto drained = ::read(wake_event_fd, &count, sizeof count);
        continue;
      }
      if (fd == watched_wake_fd) continue;  // the caller drains it
      int mask = 0;
      if ((events[i].events & EPOLLIN) != 0) mask |= CURL_CSELECT_IN;
      if ((events[i].events & EPOLLOUT) != 0) mask |= CURL_CSELECT_OUT;
      // EPOLLERR/EPOLLHUP alone: mask 0 makes curl check the socket itself and
      // report the real error (a reset, a refused connect).
      // A socket closed by an earlier action in this batch is ignored by curl.
      socket_action(fd, mask);
    }
    run_deferred();
    run_due_timer();
    deliver_completions();
  }

  void wakeup() const {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(wake_event_fd, &one, sizeof one);
  }
};

HttpClient::HttpClient() : impl_(std::make_unique<Impl>()) {}

HttpClient::~HttpClient() = default;

std::uint64_t HttpClient::start(HttpRequest request, HttpResponseHandler& handler) {
  return impl_->start(std::move(request), &handler, nullptr);
}

std::uint64_t HttpClient::start(HttpRequest request, std::unique_ptr<HttpResponseHandler> handler) {
  HttpResponseHandler* raw = handler.get();
  return impl_->start(std::move(request), raw, std::move(handler));
}

void HttpClient::cancel(std::uint64_t transfer_id) { impl_->cancel(transfer_id); }

void HttpClient::poll(int timeout_ms, int wake_fd) { impl_->poll(timeout_ms, wake_fd); }

void HttpClient::wakeup() { impl_->wakeup(); }

std::size_t HttpClient::active() const { return impl_->transfers.size(); }

bool HttpClient::running(std::uint64_t transfer_id) const {
  const auto it = impl_->transfers.find(transfer_id);
  return it != impl_->transfers.end() && it->second->handler != nullptr;
}

}  // namespace cascade
