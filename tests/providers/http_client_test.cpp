#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <thread>

#include "providers/provider.h"
#include "support/http_drive.h"
#include "support/scripted_http_server.h"

namespace cascade {
namespace {

using namespace std::chrono_literals;
using testing::ConnectionEnd;
using testing::drive_for;
using testing::drive_until;
using testing::ResponsePiece;
using testing::ScriptedHttpServer;
using testing::ScriptedResponse;

// Records every callback in order; optional hooks let a test act from inside them.
class RecordingHandler : public HttpResponseHandler {
 public:
  void on_status(long status) override {
    calls.push_back("status");
    this->status = status;
  }
  void on_header(std::string_view name, std::string_view value) override {
    headers.emplace_back(name, value);
  }
  bool on_body(std::string_view bytes) override {
    calls.push_back("body");
    body.append(bytes);
    return body_hook ? body_hook() : true;
  }
  void on_done(CURLcode result, std::string_view curl_error) override {
    calls.push_back("done");
    this->result = result;
    ++done_count;
    if (done_hook) done_hook();
  }

  std::string header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return value;
    }
    return "<absent>";
  }

  std::vector<std::string> calls;
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  CURLcode result = CURLE_OK;
  int done_count = 0;
  std::function<bool()> body_hook;
  std::function<void()> done_hook;
};

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server.start()) << server.error(); }

  HttpRequest post(std::string body = "{}") const {
    HttpRequest request;
    request.url = server.base_url() + "/echo";
    request.headers = {"Content-Type: application/json", "X-Test: yes"};
    request.body = std::move(body);
    request.total_timeout_ms = 20000;
    return request;
  }

  // A stream that trickles out until the server stops: never completes on its own.
  static ScriptedResponse endless_stream() {
    std::vector<std::string> pieces(200, "data: tick\n\n");
    return ScriptedResponse::sse_chunked(pieces, 50ms);
  }

  ScriptedHttpServer server;
};

TEST_F(HttpClientTest, DeliversStatusHeadersAndBodyThenDoneOnce) {
  server.enqueue(ScriptedResponse::http(201, "text/plain", "hello"));
  HttpClient http;
  RecordingHandler handler;
  http.start(post(R"({"q":1})"), handler);
  ASSERT_TRUE(drive_until(http, [&] { return handler.done_count > 0; }));
  drive_for(http, 50ms);

  EXPECT_EQ(handler.result, CURLE_OK);
  EXPECT_EQ(handler.done_count, 1);
  EXPECT_EQ(handler.status, 201);
  EXPECT_EQ(handler.header("Content-Type"), "text/plain");
  EXPECT_EQ(handler.body, "hello");
  ASSERT_GE(handler.calls.size(), 3u);
  EXPECT_EQ(handler.calls.front(), "status");
  EXPECT_EQ(handler.calls.back(), "done");
  EXPECT_EQ(http.active(), 0u);

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/echo");
  EXPECT_EQ(requests[0].body, R"({"q":1})");
  EXPECT_EQ(requests[0].header("X-Test"), "yes");
  EXPECT_FALSE(requests[0].header("Accept-Encoding").has_value());
  EXPECT_FALSE(requests[0].header("Expect").has_value());
}

TEST_F(HttpClientTest, StatusComesBeforeBodyWhenResponseArrivesInTinyPieces) {
  const std::string wire = ScriptedResponse::http(200, "text/plain", "0123456789").bytes();
  server.enqueue(ScriptedResponse::raw_in_pieces(wire, 3, 2ms));
  HttpClient http;
  RecordingHandler handler;
  http.start(post(), handler);
  ASSERT_TRUE(drive_until(http, [&] { return handler.done_count > 0; }));
  EXPECT_EQ(handler.result, CURLE_OK);
  EXPECT_EQ(handler.body, "0123456789");
  ASSERT_FALSE(handler.calls.empty());
  EXPECT_EQ(handler.calls.front(), "status");
  EXPECT_EQ(handler.status, 200);
}

TEST_F(HttpClientTest, ErrorStatusIsAResponseNotATransportError) {
  server.enqueue(ScriptedResponse::http(503, "application/json", R"({"error":"busy"})"));
  HttpClient http;
  RecordingHandler handler;
  http.start(post(), handler);
  ASSERT_TRUE(drive_until(http, [&] { return handler.done_count > 0; }));
  EXPECT_EQ(handler.result, CURLE_OK);
  EXPECT_EQ(handler.status, 503);
  EXPECT_EQ(handler.body, R"({"error":"busy"})");
}

TEST_F(HttpClientTest, SequentialRequestsReuseOneConnection) {
  server.set_responder([](const testing::RecordedRequest&) {
    return ScriptedResponse::http(200, "text/plain", "ok");
  });
  HttpClient http;
  for (int i = 0; i < 3; ++i) {
    RecordingHandler handler;
    http.start(post(), handler);
    ASSERT_TRUE(drive_until(http, [&] { return handler.done_count > 0; }));
    ASSERT_EQ(handler.result, CURLE_OK);
  }
  EXPECT_EQ(server.requests().size(), 3u);
  EXPECT_EQ(server.connections_accepted(), 1u);
}

TEST_F(HttpClientTest, ChunkedStreamsAlsoReuseTheConnection) {
  server.set_responder([](const testing::RecordedRequest&) {
    return ScriptedResponse::sse_chunked({"data: a\n\n", "data: b\n\n"});
  });
  HttpClient http;
  for (int i = 0; i < 2; ++i) {
    RecordingHandler handler;
    http.start(post(), handler);
    ASSERT_TRUE(drive_until(http, [&] { return handler.done_count > 0; }));
    ASSERT_EQ(handler.result, CURLE_OK);
    EXPECT_EQ(handler.body, "data: a\n\ndata: b\n\n");
  }
  EXPECT_EQ(server.connections_accepted(), 1u);
}

TEST_F(HttpClientTest, BodyCallbackReturningFalseAbortsAndStillReportsDone) {
  server.enqueue(endless_stream());
  HttpClient http;
  RecordingHandler handler;
  handler.body_hook = [] { return false; };
  http.start(post(), handler);
  ASSERT_TRUE(drive_until(http, [&] { return handler.done_count > 0; }));
  drive_for(http, 100ms);
  EXPECT_EQ(handler.done_count, 1);
  EXPECT_EQ(handler.result, CURLE_WRITE_ERROR);
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(HttpClientTest, CancelStopsAllCallbacks) {
  server.enqueue(endless_stream());
  HttpClient http;
  RecordingHandler handler;
  const auto id = http.start(post(), handler);
  EXPECT_TRUE(http.running(id));
  ASSERT_TRUE(drive_until(http, [&] { return !handler.body.empty(); }));
  http.cancel(id);
  EXPECT_FALSE(http.running(id));
  EXPECT_EQ(http.active(), 0u);
  const auto calls_at_cancel = handler.calls.size();
  drive_for(http, 300ms);
  EXPECT_EQ(handler.calls.size(), calls_at_cancel);
  EXPECT_EQ(handler.done_count, 0);
  http.cancel(id);  // unknown by now: harmless
}

TEST_F(HttpClientTest, CancelFromInsideBodyCallbackStopsAllCallbacks) {
  server.enqueue(endless_stream());
  HttpClient http;
  RecordingHandler handler;
  std::uint64_t id = 0;
  int bodies = 0;
  handler.body_hook = [&] {
    ++bodies;
    http.cancel(id);
    return true;
  };
  id = http.start(post(), handler);
  ASSERT_TRUE(drive_until(http, [&] { return bodies > 0; }));
  drive_for(http, 300ms);
  EXPECT_EQ(bodies, 1);
  EXPECT_EQ(handler.done_count, 0);
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(HttpClientTest, StartFromInsideDoneRunsTheNextTransfer) {
  server.set_responder([](const testing::RecordedRequest& request) {
    return ScriptedResponse::http(200, "text/plain", request.body);
  });
  HttpClient http;
  RecordingHandler first;
  RecordingHandler second;
  first.done_hook = [&] { http.start(post("second"), second); };
  http.start(post("first"), first);
  ASSERT_TRUE(drive_until(http, [&] { return second.done_count > 0; }));
  EXPECT_EQ(first.body, "first");
  EXPECT_EQ(second.body, "second");
  EXPECT_EQ(first.done_count, 1);
  EXPECT_EQ(second.done_count, 1);
}

TEST_F(HttpClientTest, CancelFromDoneOfATransferFinishingAtTheSameTime) {
  server.set_responder([](const testing::RecordedRequest&) {
    return ScriptedResponse::http(200, "text/plain", "x");
  });
  HttpClient http;
  RecordingHandler a;
  RecordingHandler b;
  std::uint64_t id_a = 0;
  std::uint64_t id_b = 0;
  a.done_hook = [&] { http.cancel(id_b); };
  b.done_hook = [&] { http.cancel(id_a); };
  id_a = http.start(post(), a);
  id_b = http.start(post(), b);
  // Let both answers land before curl reads either, so they finish in one batch.
  ASSERT_TRUE(drive_until(http, [&] { return server.requests().size() == 2; }));
  std::this_thread::sleep_for(100ms);
  drive_for(http, 200ms);
  EXPECT_EQ(a.done_count + b.done_count, 1);
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(HttpClientTest, OwnedHandlerIsDestroyedWhenItsTransferEnds) {
  struct OwnedHandler : RecordingHandler {
    explicit OwnedHandler(int& destroyed) : destroyed(destroyed) {}
    ~OwnedHandler() override { ++destroyed; }
    int& destroyed;
  };
  server.set_responder([](const testing::RecordedRequest& request) {
    if (request.body == "slow") return endless_stream();
    return ScriptedResponse::http(200, "text/plain", "ok");
  });
  int destroyed = 0;
  int done = 0;
  {
    HttpClient http;
    auto finished = std::make_unique<OwnedHandler>(destroyed);
    finished->done_hook = [&] { ++done; };
    http.start(post("fast"), std::move(finished));
    ASSERT_TRUE(drive_until(http, [&] { return destroyed == 1; }));
    EXPECT_EQ(done, 1);

    const auto cancelled = http.start(post("slow"), std::make_unique<OwnedHandler>(destroyed));
    ASSERT_TRUE(drive_until(http, [&] { return server.requests().size() == 2; }));
    http.cancel(cancelled);
    EXPECT_EQ(destroyed, 2);

    auto abandoned = std::make_unique<OwnedHandler>(destroyed);
    abandoned->done_hook = [&] { ++done; };
    http.start(post("slow"), std::move(abandoned));
    ASSERT_TRUE(drive_until(http, [&] { return server.requests().size() == 3; }));
  }
  EXPECT_EQ(destroyed, 3);  // the client's destructor ended the last one
  EXPECT_EQ(done, 1);       // ... without calling it
}

TEST_F(HttpClientTest, ConnectionRefusedReportsCouldntConnect) {
  ScriptedHttpServer closed;
  ASSERT_TRUE(closed.start());
  const std::string url = closed.base_url() + "/x";
  closed.stop();

  HttpClient http;
  RecordingHandler handler;
  HttpRequest request = post();
  request.url = url;
  http.start(request, handler);
  ASSERT_TRUE(drive_until(http, [&] { return handler.done_count > 0; }));
  EXPECT_EQ(handler.result, CURLE_COULDNT_CONNECT);
  EXPECT_EQ(handler.status, 0);
}

TEST_F(HttpClientTest, TotalTimeoutEndsASlowTransfer) {
  server.enqueue(endless_stream());
  HttpClient http;
  RecordingHandler handler;
  HttpRequest request = post();
  request.total_timeout_ms = 200;
  http.start(request, handler);
  ASSERT_TRUE(drive_until(http, [&] { return handler.done_count > 0; }));
  EXPECT_EQ(handler.result, CURLE_OPERATION_TIMEDOUT);
}

TEST_F(HttpClientTest, ReadableWakeFdMakesPollReturnEarly) {
  HttpClient http;
  const int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(wake_fd, 0);
  std::thread writer([wake_fd] {
    std::this_thread::sleep_for(100ms);
    const std::uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(wake_fd, &one, sizeof one);
  });
  const auto started = std::chrono::steady_clock::now();
  http.poll(60000, wake_fd);
  const auto waited = std::chrono::steady_clock::now() - started;
  writer.join();
  ::close(wake_fd);
  EXPECT_LT(waited, 30s);
}

TEST_F(HttpClientTest, WakeupFromAnotherThreadMakesPollReturnEarly) {
  HttpClient http;
  std::thread waker([&http] {
    std::this_thread::sleep_for(100ms);
    http.wakeup();
  });
  const auto started = std::chrono::steady_clock::now();
  http.poll(60000);
  const auto waited = std::chrono::steady_clock::now() - started;
  waker.join();
  EXPECT_LT(waited, 30s);
}

// Many slow streams at once on one loop, each on its own connection: every
// one gets its whole body and exactly one done (the loop waits on the ready
// sockets only, so nothing is starved or lost while the others trickle).
TEST_F(HttpClientTest, ManySlowConcurrentStreamsAllCompleteOnOneLoop) {
  constexpr int kStreams = 64;
  std::vector<std::string> pieces(5, "data: tick\n\n");
  for (int i = 0; i < kStreams; ++i) server.enqueue(ScriptedResponse::sse_chunked(pieces, 20ms));
  HttpClient http;
  std::vector<RecordingHandler> handlers(kStreams);
  for (auto& handler : handlers) http.start(post(), handler);
  EXPECT_EQ(http.active(), static_cast<std::size_t>(kStreams));
  ASSERT_TRUE(drive_until(http, [&] {
    return std::all_of(handlers.begin(), handlers.end(), [](const auto& h) { return h.done_count > 0; });
  }));
  for (const auto& handler : handlers) {
    EXPECT_EQ(handler.result, CURLE_OK);
    EXPECT_EQ(handler.status, 200);
    EXPECT_EQ(handler.done_count, 1);
    EXPECT_EQ(handler.body, "data: tick\n\ndata: tick\n\ndata: tick\n\ndata: tick\n\ndata: tick\n\n");
  }
  EXPECT_EQ(server.connections_accepted(), static_cast<std::size_t>(kStreams));
  EXPECT_EQ(http.active(), 0u);
}

// A poll with nothing ready returns after its timeout rather than spinning or
// blocking forever, and a transfer started afterwards still runs.
TEST_F(HttpClientTest, IdlePollWaitsItsTimeoutThenTransfersStillRun) {
  HttpClient http;
  const auto started = std::chrono::steady_clock::now();
  http.poll(100);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 90ms);
  RecordingHandler handler;
  http.start(post(), handler);
  ASSERT_TRUE(drive_until(http, [&] { return handler.done_count > 0; }));
  EXPECT_EQ(handler.result, CURLE_OK);
}

TEST_F(HttpClientTest, MalformedUrlStillEndsWithDone) {
  HttpClient http;
  RecordingHandler handler;
  HttpRequest request = post();
  request.url = "not a url://";
  http.start(request, handler);
  ASSERT_TRUE(drive_until(http, [&] { return handler.done_count > 0; }));
  EXPECT_NE(handler.result, CURLE_OK);
  EXPECT_EQ(handler.done_count, 1);
}

}  // namespace
}  // namespace cascade
