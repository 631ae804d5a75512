// A Server running on its own io thread for tests. Interaction with the server from the test
// thread goes through on_io() (the server is single-threaded).
#pragma once

#include <future>
#include <memory>
#include <thread>

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "runtime/server.h"

namespace rpcgate::runtime::testing {

class ServerThread {
 public:
  explicit ServerThread(ServerOptions options = {}) : server_(io_, options) {}
  ~ServerThread() { stop(); }

  Server& server() { return server_; }
  asio::io_context& io() { return io_; }

  void start() {
    thread_ = std::thread([this] {
      auto guard = asio::make_work_guard(io_);
      io_.run();
    });
  }

  template <typename F>
  auto on_io(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(io_, [&task] { task(); });
    return result.get();
  }

  void stop() {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      server_.stop();
      io_.stop();
    });
    thread_.join();
  }

 private:
  asio::io_context io_;
  Server server_;
  std::thread thread_;
};

}  // namespace rpcgate::runtime::testing
