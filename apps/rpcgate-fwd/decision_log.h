// rpcgate-fwd's decision log: every decision is ONE structured record, so an administrator can
// answer "why was this connection dropped" with one query.
//
// * Under systemd (JOURNAL_STREAM set: stderr is the journal) a record is a journal entry with
//   fields RPCGATE_EVENT, RPCGATE_REASON, RPCGATE_CLIENT, RPCGATE_SERVER, RPCGATE_PORT,
//   RPCGATE_INTERFACE, RPCGATE_OPNUM, RPCGATE_RULE ... (`journalctl RPCGATE_REASON=no-pinhole`).
// * Otherwise one JSON object per line on stderr:
//   {"ts":"2026-12-02T10:00:00.123Z","event":"drop","reason":"interface-not-allowed",
//    "client":"10.0.1.2","client_port":50123,"server":"10.0.2.2","port":49153,
//    "interface":"12345778-1234-abcd-ef00-0123456789ac v1.0","message":"..."}
// Absent fields are left out. Every relayed connection ends in exactly one "allow" (it ran to its
// end: reason closed, client-reset or server-reset, with its byte and PDU counts) or one "drop"
// (the firewall ended it: the reason code says why). Other events: start, stop, reload, recover,
// warning, error, pinhole (opened, refreshed or kept), refuse (an ept_map answered by the
// firewall: map-not-allowed), tower (a tower that opened nothing for a reason worth saying:
// referral-not-allowed, referral-any-servers, referral-outside-servers, referral-rule-mismatch,
// lookup-fragmented), nat (rewritten, not-rewritten-signed), metrics (where --metrics serves,
// before start). Not thread-safe (one event loop).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rpcgate::fwd {

struct Record {
  std::string_view event;   // "drop", "pinhole", ...
  std::string_view reason;  // a stable kebab-case code (firewall::to_string(DropReason), ...)
  std::string client;
  std::optional<std::uint16_t> client_port;
  std::string server;
  std::optional<std::uint16_t> port;
  // A pinhole opened (or refused) for a tower naming a third host: that host (the pinhole's
  // server; `server` stays the endpoint mapper the client asked).
  std::string referral;
  // Static NAT: the private address the relay connects to for the public `server`.
  std::string upstream;
  std::string interface;
  std::optional<std::uint16_t> opnum;
  std::string rule;
  std::string kind;  // "epm" or "pinhole": which listener the connection came through
  std::optional<std::uint64_t> timeout_s;
  std::optional<std::uint64_t> install_us;
  std::string message;  // one human sentence
};

// A record without a connection (start, stop, reload, warnings).
inline Record note(std::string_view event, std::string message, std::string_view reason = {}) {
  Record r;
  r.event = event;
  r.reason = reason;
  r.message = std::move(message);
  return r;
}

enum class Priority : std::uint8_t { kError = 3, kWarning = 4, kNotice = 5, kInfo = 6 };

class DecisionLog {
 public:
  // json: force JSON lines even under systemd (tests read them).
  explicit DecisionLog(bool force_json = false);
  ~DecisionLog() { flush(); }
  // JSON lines are buffered: the event loop calls flush() before it waits (one write() per
  // loop turn, not per record - a client mapping in a loop makes a record per answer), and
  // records at kWarning and above are written at once.
  void write(const Record& r, Priority p = Priority::kInfo);
  void flush();

 private:
  bool journal_ = false;
  std::string pending_;
};

// The JSON line (without the newline) DecisionLog writes for `r` at wall-clock time now.
std::string to_json_line(const Record& r);

}  // namespace rpcgate::fwd
