// The firewall's pinhole table, sans-I/O: which client may open a TCP connection to which server
// port, for which interfaces, until when. A pinhole is learned from an endpoint-mapper answer
// (epm_snoop.h) and lets exactly that client reach exactly that server port for a while - and, on
// the connection, bind only the interfaces learned for it (Windows serves many interfaces on one
// dynamic port, so "the port is open" must not mean "every interface on it is").
//
// Bounded everywhere: interfaces per pinhole, pinholes per client, pinholes in all (the kernel set
// that mirrors the table has a fixed size). Time comes in as `now`; nothing here reads a clock.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rpc/pdu.h"

namespace rpcgate::firewall {

using TimePoint = std::chrono::steady_clock::time_point;

// An IP address, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), so one key type serves both families.
using Address = std::array<std::uint8_t, 16>;
Address ipv4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d);
std::optional<Address> parse_address(const std::string& text);  // "10.0.0.1", "fe80::1"
std::string to_string(const Address& a);                        // the forms parse accepts

struct PinholeKey {
  Address client{};
  Address server{};
  std::uint16_t port = 0;
  friend auto operator<=>(const PinholeKey&, const PinholeKey&) = default;
};

struct PinholeLimits {
  std::chrono::milliseconds timeout{60'000};  // from the answer that opened (or refreshed) it
  std::size_t max_interfaces = 16;            // per pinhole
  std::size_t max_per_client = 64;            // pinholes one client address may hold
  std::size_t max_total = 65'536;             // in all (the kernel set's size)
};

struct Pinhole {
  PinholeKey key;
  std::vector<rpc::SyntaxId> interfaces;  // the ones the client may bind on it
  TimePoint expires;
};

enum class OpenResult : std::uint8_t {
  kOpened,             // a new pinhole
  kRefreshed,          // it existed: expiry moved on (and the interface added if new)
  kTooManyInterfaces,  // it exists with max_interfaces others: refreshed, this one not added
  kClientFull,         // the client holds max_per_client pinholes: nothing opened
  kTableFull,          // max_total pinholes: nothing opened
};
std::string_view to_string(OpenResult r);

// The comment a pinhole's kernel set element carries, so a restarted relay can recover what the
// pinhole was for: "uuid:M.m,uuid:M.m", as many interfaces as fit in kMaxCommentBytes - 1 (nft's
// limit is 128 bytes with the NUL). parse_interfaces_comment skips what does not parse (a comment
// is the kernel's copy of our own words, but a set anyone with CAP_NET_ADMIN can write to).
inline constexpr std::size_t kMaxPinholeComment = 127;
std::string interfaces_comment(const std::vector<rpc::SyntaxId>& interfaces);
std::vector<rpc::SyntaxId> parse_interfaces_comment(std::string_view comment);

class PinholeTable {
 public:
  explicit PinholeTable(PinholeLimits limits = {}) : limits_(limits) {}

  // Opens (or refreshes) the pinhole `key` for `interface` until now + timeout. Expired pinholes
  // are dropped first, so they never count against a limit.
  OpenResult open(const PinholeKey& key, const rpc::SyntaxId& interface, TimePoint now) {
    return open(key, interface, now, limits_.timeout);
  }
  // The same with this pinhole's own lifetime (a rule's pinhole_timeout; a pinhole recovered from
  // the kernel after a restart, with the time it had left). A refresh never shortens a pinhole.
  OpenResult open(const PinholeKey& key, const rpc::SyntaxId& interface, TimePoint now,
                  std::chrono::milliseconds timeout);

  // The live pinhole for `key`, or nullptr (none, or expired at `now`).
  const Pinhole* find(const PinholeKey& key, TimePoint now) const;
  // Whether a connection through `key` may bind `interface` at `now`: the pinhole is live and
  // one of its interfaces has the same UUID and major version, with a minor version at least
  // the requested one (the server's rule, rpc::interface_matches).
  bool allows(const PinholeKey& key, const rpc::SyntaxId& interface, TimePoint now) const;

  // Drops every pinhole expired at `now`; returns how many.
  std::size_t expire(TimePoint now);
  // The earliest expiry (nullopt: empty).
  std::optional<TimePoint> next_expiry() const;

  std::size_t size() const { return pinholes_.size(); }
  // Every pinhole held (some may have expired: call expire(now) first for only live ones).
  const std::map<PinholeKey, Pinhole>& all() const { return pinholes_; }
  std::size_t count_for(const Address& client) const;
  const PinholeLimits& limits() const { return limits_; }

 private:
  PinholeLimits limits_;
  std::map<PinholeKey, Pinhole> pinholes_;
  std::map<Address, std::size_t> per_client_;
  std::multimap<TimePoint, PinholeKey> by_expiry_;  // one entry per pinhole, by its expiry
};

}  // namespace rpcgate::firewall
