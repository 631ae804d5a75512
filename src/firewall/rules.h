// rpcgate-fwd's rules: which clients may reach which interfaces on which servers, and how
// (opnums, authentication level, pinhole lifetime). Sans-I/O: parsed from the [firewall] table of
// rpcgate.toml (or --config FILE) and from the command-line shortcuts, then asked by the
// endpoint-mapper inspector (may a client map this interface?) and by the pinhole inspector (may
// this connection bind / call this?).
//
//   [firewall]
//   mode = "router"                 # "router" (forwarding, the default) or "host"
//   clients = ["10.0.0.0/8"]        # who is governed as a client (default: any)
//   servers = ["192.0.2.0/24"]      # the RPC servers whose 135 and dynamic ports are governed
//                                   # (default: any)
//   policy = "/etc/rpcgate/ports.reg"  # the dynamic ports (rpcgate policy); default 49152-65535
//   pinhole_timeout = "60s"         # default lifetime of a pinhole ("90s", "5m", or seconds)
//   epm_listen_port = 15135         # the transparent listeners tproxy diverts to
//   pinhole_listen_port = 15136
//   lookup_pinholes = false         # ept_lookup answers open pinholes too
//   lookup_pinhole_timeout = "5m"   # their lifetime (default: the rule's pinhole_timeout)
//   dcom = false                    # allow ISystemActivator/IOXIDResolver binds on 135
//   max_towers = 16                 # towers considered per ept_map answer
//   max_pinholes_per_client = 64
//   max_pinholes = 65536            # the kernel set's size
//   max_connections = 4096          # relayed connections at once, in all
//   max_connections_per_client = 256
//   control = "/run/rpcgate/fwd.sock"
//   metrics = "127.0.0.1:9136"      # Prometheus metrics on ADDR:PORT (apps/rpcgate-fwd
//                                   # fwd_metrics.h checks and serves it); default: off
//
//   [[firewall.rule]]
//   name = "dc-replication"         # required, unique: logged with every decision it makes
//   interfaces = ["drsuapi", "e3514235-4b06-11d1-ab04-00c04fc2dcd2:4.0"]   # required
//   clients = ["10.1.0.0/16"]       # default: any
//   servers = ["10.2.0.5/32"]       # default: any
//   opnums = ["0-5", "12"]          # default: all
//   min_auth = "integrity"          # none (default) | connect | integrity | privacy
//   pinhole_timeout = "120s"        # default: [firewall] pinhole_timeout
//   referrals = false               # towers naming a third host (inside [firewall] servers,
//                                   # which must be set, and this rule's servers) open a
//                                   # pinhole to that host
//
//   [[firewall.nat]]                # static NAT of a server (IPv4, one-to-one)
//   public = "203.0.113.10"         # what clients connect to (and what towers are rewritten to)
//   private = "10.2.0.5"            # the server's real address (what the relay connects to)
//
// Rules, [firewall] servers and governs() name servers by their real (private) address: a NAT
// public address is judged as its private one (RuleSet::real_server).
//
// An interface is "UUID" (any version), "UUID:M.m" (major M, minor at least m), a well-known
// name of a Windows interface (well_known_interfaces(); its major version, any minor) or
// "name:M.m". Every error names FILE:LINE and what is
// wrong; nothing is half-applied.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/uuid.h"
#include "firewall/pinholes.h"
#include "rpc/pdu.h"

namespace rpcgate::firewall {

// An address prefix; IPv4 prefixes are stored IPv4-mapped (prefix + 96), so they never match an
// IPv6 address and vice versa.
struct Cidr {
  Address base{};
  unsigned prefix = 0;  // 0..128 over the 16-byte form
  bool contains(const Address& a) const;
  bool ipv4() const;
};
// "10.0.0.0/8", "10.0.0.5" (a /32), "fd00::/8", "::1" (a /128). Host bits set: an error.
std::expected<Cidr, std::string> parse_cidr(std::string_view text);
std::string to_string(const Cidr& c);

// RPC_C_AUTHN_LEVEL_* as the sec trailer carries it ([MS-RPCE] 2.2.1.1.8).
enum class AuthLevel : std::uint8_t {
  kNone = 1,
  kConnect = 2,
  kCall = 3,
  kPacket = 4,
  kIntegrity = 5,
  kPrivacy = 6
};
std::expected<AuthLevel, std::string> parse_auth_level(std::string_view text);
std::string_view to_string(AuthLevel l);

struct InterfaceSpec {
  common::Uuid uuid;
  std::optional<std::uint16_t> major;  // nullopt: any version
  std::uint16_t min_minor = 0;
  std::string name;  // the well-known name, or the text as written
  bool matches(const rpc::SyntaxId& s) const;
};
// "UUID", "UUID:M.m", a well-known name (case-insensitive; its major, any minor) or "name:M.m".
std::expected<InterfaceSpec, std::string> parse_interface(std::string_view text);

struct WellKnownInterface {
  std::string_view name;
  std::string_view uuid;
  std::uint16_t major;
  std::uint16_t minor;
};
std::span<const WellKnownInterface> well_known_interfaces();

struct OpnumRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;
};

struct Rule {
  std::string name;
  std::vector<InterfaceSpec> interfaces;
  std::vector<Cidr> clients;       // empty: any
  std::vector<Cidr> servers;       // empty: any
  std::vector<OpnumRange> opnums;  // empty: all
  AuthLevel min_auth = AuthLevel::kNone;
  std::optional<std::chrono::seconds> pinhole_timeout;
  // A tower naming a third host may open a pinhole to it (docs/firewall.md, "Referrals"); the
  // host must be inside FirewallConfig::servers (non-empty) and this rule must apply to it.
  bool referrals = false;
  bool applies(const Address& client, const Address& server) const;
  bool allows_opnum(std::uint16_t opnum) const;
};

enum class Mode : std::uint8_t { kRouter, kHost };

// One static NAT entry: clients reach the server at `public_address`, the server's towers name
// `private_address`. IPv4 only (both IPv4-mapped), one-to-one.
struct NatEntry {
  Address public_address{};
  Address private_address{};
  std::size_t line = 0;  // where it was written (0: command line)
};

struct FirewallConfig {
  Mode mode = Mode::kRouter;
  std::vector<Cidr> clients;  // empty: any
  std::vector<Cidr> servers;  // empty: any
  std::string policy_file;    // empty: ports 49152-65535
  std::chrono::seconds pinhole_timeout{60};
  std::uint16_t epm_listen_port = 15135;
  std::uint16_t pinhole_listen_port = 15136;
  bool lookup_pinholes = false;
  // Lifetime of pinholes opened by ept_lookup answers; nullopt: the rule's (RuleSet::timeout).
  std::optional<std::chrono::seconds> lookup_pinhole_timeout;
  bool dcom = false;
  std::size_t max_towers = 16;
  std::size_t max_pinholes_per_client = 64;
  std::size_t max_pinholes = 65536;
  std::size_t max_connections = 4096;
  std::size_t max_connections_per_client = 256;
  std::string control = "/run/rpcgate/fwd.sock";
  std::string metrics;  // "" = off; the syntax is checked by rpcgate-fwd (metrics::parse_endpoint)
  std::vector<Rule> rules;
  std::vector<NatEntry> nat;  // validated: no public or private address twice
};

// Why `nat` is not a valid NAT table (a duplicate, an IPv6 address, public == private), naming
// the entry's line when it has one; empty: valid.
std::string validate_nat(const std::vector<NatEntry>& nat);

// The [firewall] table of a TOML document (other tables are ignored: rpcgate.toml holds
// [policy] and [epmd] too). `source` names the file in errors ("FILE:LINE: why").
std::expected<FirewallConfig, std::string> parse_firewall_toml(std::string_view document,
                                                               std::string_view source);
std::expected<FirewallConfig, std::string> load_firewall_toml(const std::string& path);
// "60s", "5m", "90" (seconds), 1 s .. 24 h.
std::expected<std::chrono::seconds, std::string> parse_duration(std::string_view text);

// The decisions, over a validated FirewallConfig.
class RuleSet {
 public:
  explicit RuleSet(FirewallConfig config);
  const FirewallConfig& config() const { return config_; }

  // Whether client and server are governed at all (the [firewall] clients / servers; a NAT
  // public address counts as its private one).
  bool governs(const Address& client, const Address& server) const;
  // The first rule that lets `client` reach `interface` on `server` (a NAT public address is
  // judged as its private one), or nullptr.
  const Rule* find(const Address& client, const Address& server,
                   const rpc::SyntaxId& interface) const;
  // How long a pinhole opened by `rule` lives.
  std::chrono::seconds timeout(const Rule& rule) const;
  // How long a pinhole opened by `rule` from an ept_lookup answer lives:
  // lookup_pinhole_timeout, else timeout(rule).
  std::chrono::seconds lookup_timeout(const Rule& rule) const;

  // Static NAT: the private address behind `public_address`, or nullopt (not a NAT public).
  std::optional<Address> nat_private(const Address& public_address) const;
  // The server as the rules name it: the private address of a NAT public, else `server`.
  Address real_server(const Address& server) const;
  // Whether `host` is inside the configured [firewall] servers; false when they are "any"
  // (referrals need an explicit list).
  bool in_configured_servers(const Address& host) const;

 private:
  FirewallConfig config_;
};

}  // namespace rpcgate::firewall
