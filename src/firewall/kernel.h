// The kernel side of rpcgate-fwd: its nftables table (`table inet rpcgate_fwd`) and the policy
// routing of the transparent relay's return path. This is I/O (netlink), so it is a library of its
// own (rpcgate::firewall_kernel), apart from the sans-I/O firewall core it serves.
//
// The table, in router mode (render() writes exactly this; `MARK`, the ports and sets come from
// the TableSpec):
//
//   set clients4/clients6/servers4/servers6  the configured prefixes (only when configured)
//   set dynports                             the dynamic RPC ports (interval set)
//   set pinholes4/pinholes6                  client . server . port, per-element timeout + comment
//   counter no_pinhole, relay_gone, epm_diverted, pinhole_diverted
//   chain prerouting (filter hook prerouting priority mangle; policy accept):
//     iif "lo" accept                                      local traffic is never governed
//     socket transparent 1 -> mark MARK, accept            packets for our relay's own sockets
//     ct mark MARK -> relay_gone, drop                     a diverted flow whose relay socket is
//                                                          gone (daemon dead): fail closed
//     per family, scoped to clients/servers when configured:
//     dport 135, ct new -> tproxy EPMPORT, mark + ct mark MARK, epm_diverted, accept
//     dport 135, ct new -> relay_gone, drop                tproxy found no listener: nft's tproxy
//                                                          does not drop by itself (NFT_BREAK)
//     dport @dynports, key @pinholesN, ct new -> tproxy PINPORT, marks, pinhole_diverted, accept
//     dport @dynports, key @pinholesN, ct new -> relay_gone, drop   (pinhole, but no listener)
//     dport @dynports, ct new -> no_pinhole, drop
//   chain forward (filter hook forward priority filter; policy accept):
//     ct mark MARK drop                                    a diverted flow is never forwarded
//
// Everything else passes untouched: other ports, other clients and servers, and packets of flows
// that are not new (the drops all say `ct state new`, so return traffic of unrelated connections
// to high ports is never dropped). Host mode adds `fib daddr type local` to the governed rules: it
// protects the machine's own servers and leaves traffic it forwards alone.
//
// Fail-closed by construction: the table outlives the daemon, and with the daemon gone its
// listeners are gone, so every governed new connection meets a drop rule.
//
// Pinhole elements carry a comment (what the daemon needs to rebuild a pinhole after a restart)
// and a timeout; the kernel expires them by itself. Comments are at most kMaxCommentBytes of
// printable ASCII without `"` and `\` (nft's limit and quoting; validated, never escaped).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "firewall/pinholes.h"
#include "firewall/rules.h"

struct nft_ctx;

namespace rpcgate::firewall::kernel {

inline constexpr std::string_view kTableName = "rpcgate_fwd";  // in family inet
inline constexpr std::size_t kMaxCommentBytes = 128;           // NFTNL_UDATA_COMMENT_MAXLEN
inline constexpr std::chrono::milliseconds kMaxTimeout = std::chrono::hours(24);

struct TableSpec {
  Mode mode = Mode::kRouter;
  std::vector<Cidr> clients, servers;  // empty = any (both families); IPv4 as in rules.h (mapped)
  std::vector<std::pair<std::uint16_t, std::uint16_t>> dynamic_ports{{49152, 65535}};  // ranges
  std::uint16_t epm_listen_port = 15135, pinhole_listen_port = 15136;
  std::uint32_t mark = 0x135;  // fwmark for policy routing and ct mark of diverted flows
  std::uint32_t route_table = 135;
  std::size_t max_pinholes = 65536;  // the size of each pinhole set
};
// Why `spec` cannot be installed (empty: it can): no dynamic ports, a range with first > last or
// port 0, a listen port 0 or both equal, mark 0, route table 0 or 253..255 (the kernel's own),
// max_pinholes 0 or above 2^31, a CIDR with a prefix beyond its family.
std::string validate(const TableSpec& spec);

struct PinholeElement {
  PinholeKey key;                     // client and server of one family; port != 0
  std::chrono::milliseconds timeout;  // 1 ms .. kMaxTimeout
  std::string comment;                // <= kMaxCommentBytes, printable ASCII, no `"` or `\`
};
struct RecoveredPinhole {
  PinholeKey key;
  std::chrono::milliseconds expires_in;  // as the kernel reported it (millisecond resolution)
  std::string comment;
};
// Why `e` cannot be written (empty: it can).
std::string validate(const PinholeElement& e);

// One libnftables context (struct nft_ctx*). Every mutating call is one netlink batch: it applies
// whole or not at all, and on failure the error names what nft said. Not thread-safe; move-only.
class Nft {
 public:
  static std::expected<Nft, std::string> open();
  Nft(Nft&& other) noexcept;
  Nft& operator=(Nft&& other) noexcept;
  Nft(const Nft&) = delete;
  Nft& operator=(const Nft&) = delete;
  ~Nft();

  // Replaces table inet rpcgate_fwd in ONE batch (create-if-missing, delete, create: at no
  // moment is there no table), with `survivors` as the pinhole sets' elements. Counters restart
  // at 0. Errors: validate(spec) or validate(element) fails (nothing is sent), or nft refuses.
  std::expected<void, std::string> install(const TableSpec& spec,
                                           std::span<const PinholeElement> survivors);
  // The elements of the pinhole sets of the existing table with their remaining time (restart
  // recovery); empty if there is no table. Expired elements are never listed.
  std::expected<std::vector<RecoveredPinhole>, std::string> recover();
  // Adds pinholes, or refreshes them: an element already in a set gets the new timeout and
  // comment (each is deleted and re-added in the same batch). One batch for both families.
  // Errors: an invalid element (nothing sent), no table, a full set (nothing applied).
  std::expected<void, std::string> add(std::span<const PinholeElement> elements);
  // Removes pinholes; an absent (or already expired) one is not an error. One batch.
  std::expected<void, std::string> remove(std::span<const PinholeKey> keys);
  // Deletes the table; no table is not an error.
  std::expected<void, std::string> uninstall();
  // The table's named counters, packets each, in the table's order: no_pinhole, relay_gone,
  // epm_diverted, pinhole_diverted. Error if there is no table.
  std::expected<std::vector<std::pair<std::string, std::uint64_t>>, std::string> counters();
  // The nft text that install() loads (for --dry-run and tests). Does not validate.
  std::string render(const TableSpec& spec, std::span<const PinholeElement> survivors) const;
  // Whether the table exists.
  std::expected<bool, std::string> installed();

 private:
  explicit Nft(nft_ctx* ctx) : ctx_(ctx) {}
  // Runs nft commands; returns nft's output, or its error text.
  std::expected<std::string, std::string> run(const std::string& commands, bool json = false);
  nft_ctx* ctx_ = nullptr;
};

// Policy routing for the transparent return path, over rtnetlink (NETLINK_ROUTE), both families:
//   ip rule add fwmark MARK lookup TABLE              (mask 0xffffffff, no other selector)
//   ip route add local 0.0.0.0/0 dev lo table TABLE   (and local ::/0)
// install_routing is idempotent (a rule already there is not added twice, a route already there is
// kept); remove_routing deletes exactly rules and routes of that shape, and nothing else (none
// there: not an error). Errors name the operation and the kernel's errno text.
std::expected<void, std::string> install_routing(std::uint32_t mark, std::uint32_t table);
std::expected<void, std::string> remove_routing(std::uint32_t mark, std::uint32_t table);

}  // namespace rpcgate::firewall::kernel
