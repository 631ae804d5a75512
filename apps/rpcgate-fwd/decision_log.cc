#include "decision_log.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

namespace rpcgate::fwd {
namespace {

std::string timestamp() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const auto t = system_clock::to_time_t(now);
  const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

template <typename F>
void for_each_field(const Record& r, F&& f) {
  f("event", std::string(r.event));
  if (!r.reason.empty()) f("reason", std::string(r.reason));
  if (!r.kind.empty()) f("kind", r.kind);
  if (!r.client.empty()) f("client", r.client);
  if (r.client_port) f("client_port", *r.client_port);
  if (!r.server.empty()) f("server", r.server);
  if (r.port) f("port", *r.port);
  if (!r.referral.empty()) f("referral", r.referral);
  if (!r.upstream.empty()) f("upstream", r.upstream);
  if (!r.interface.empty()) f("interface", r.interface);
  if (r.opnum) f("opnum", *r.opnum);
  if (!r.rule.empty()) f("rule", r.rule);
  if (r.timeout_s) f("timeout_s", *r.timeout_s);
  if (r.install_us) f("install_us", *r.install_us);
  if (!r.message.empty()) f("message", r.message);
}

}  // namespace

std::string to_json_line(const Record& r) {
  nlohmann::ordered_json j;
  j["ts"] = timestamp();
  for_each_field(r, [&](const char* k, const auto& v) { j[k] = v; });
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

DecisionLog::DecisionLog(bool force_json)
    : journal_(!force_json && std::getenv("JOURNAL_STREAM") != nullptr) {}

void DecisionLog::write(const Record& r, Priority p) {
  if (journal_) {
    std::vector<std::string> storage;
    storage.push_back("MESSAGE=" + (r.message.empty() ? std::string(r.event) : r.message));
    storage.push_back("PRIORITY=" + std::to_string(static_cast<int>(p)));
    storage.push_back("SYSLOG_IDENTIFIER=rpcgate-fwd");
    for_each_field(r, [&](const char* k, const auto& v) {
      std::string key = "RPCGATE_";
      for (const char* c = k; *c; ++c)
        key += static_cast<char>(std::toupper(static_cast<unsigned char>(*c)));
      if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string>) {
        storage.push_back(key + "=" + v);
      } else {
        storage.push_back(key + "=" + std::to_string(v));
      }
    });
    std::vector<iovec> iov;
    for (auto& s : storage)
      iov.push_back({s.data(), s.size()});
    sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
    return;
  }
  pending_ += to_json_line(r);
  pending_ += '\n';
  if (p <= Priority::kWarning || pending_.size() >= 64 * 1024) flush();
}

void DecisionLog::flush() {
  if (pending_.empty()) return;
  std::fwrite(pending_.data(), 1, pending_.size(), stderr);
  std::fflush(stderr);
  pending_.clear();
}

}  // namespace rpcgate::fwd
