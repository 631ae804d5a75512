// String bindings: `[obj-uuid@]protseq:[network_addr][[endpoint][,option=value]...]`
// (C706 ch. 2 "String Bindings"; Microsoft "String Binding" / RpcStringBindingCompose).
//
// Examples                                     protseq         network_addr   endpoint
//   ncacn_ip_tcp:127.0.0.1[49664]              kNcacnIpTcp     127.0.0.1      49664
//   e1af8308-5d1f-11c9-91a4-08002b14a0fa@ncacn_ip_tcp:host[135]      (object uuid set)
//   ncacn_np:\\HOST[\pipe\epmapper]            kNcacnNp        \\HOST         \pipe\epmapper
//   ncalrpc:[epmapper]                         kNcalrpc        (empty)        epmapper
//   ncacn_ip_tcp:fe80::1[135]                  IPv6 literal: colons after the protseq are data
//
// Escapes: a backslash before one of `@ : [ ] ,` makes it an ordinary character. Backslashes
// follow the CommandLineToArgvW rule: a run of k backslashes before a reserved character (or at
// the end of a field) stands for k/2 backslashes, plus an escape if k is odd; any other run is
// literal. So pipe names (`\pipe\epmapper`) and UNC hosts (`\\HOST`) read as every real peer
// writes them, and a field may still end in a backslash (`[a\\]`). format_binding() escapes only
// what parse_binding() would otherwise misread, so its output for ordinary bindings is exactly
// what Windows and Impacket print, and parse(format(b)) == b for every b parse can return.
//
// Validation (kBinding* errors): known protseq (table below); for ncacn_ip_tcp / ncadg_ip_udp /
// ncacn_http the endpoint, if present, is a decimal port 0-65535 and a network address that
// contains ':' must be an IPv6 literal; ncacn_np endpoints start with `\pipe\` (any case); no
// control characters anywhere; an optional leading `endpoint=` keyword is accepted and dropped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/uuid.h"
#include "ndr/errc.h"

namespace rpcgate::ndr {

// Protocol sequences rpcgate knows, with their tower protocol ids (floors 3..5; C706 App. I,
// Samba librpc/rpc/binding.c transports[]; table in docs/wire-vectors.md).
enum class Protseq : std::uint8_t {
  kNcacnIpTcp,       // {0x0b, 0x07, 0x09}
  kNcadgIpUdp,       // {0x0a, 0x08, 0x09}
  kNcacnNp,          // {0x0b, 0x0f, 0x11}
  kNcacnHttp,        // {0x0b, 0x1f, 0x09}
  kNcalrpc,          // {0x0c, 0x10}
  kNcacnUnixStream,  // {0x0b, 0x20}
};
std::string_view to_string(Protseq p);                        // "ncacn_ip_tcp", ...
std::optional<Protseq> parse_protseq(std::string_view text);  // case-sensitive, as MS
// True for the protseqs whose endpoint is a port number.
bool is_ip_protseq(Protseq p);

struct StringBinding {
  std::optional<common::Uuid> object;  // present iff the text had `uuid@`
  Protseq protseq = Protseq::kNcacnIpTcp;
  std::string network_addr;  // may be empty (local host)
  std::string endpoint;      // may be empty (to be resolved by the endpoint mapper)
  std::vector<std::pair<std::string, std::string>> options;  // in text order
  friend bool operator==(const StringBinding&, const StringBinding&) = default;
};

// Parses and validates. Errors: kBindingSyntax, kBindingBadObjectUuid, kBindingUnknownProtseq,
// kBindingBadNetworkAddr, kBindingBadEndpoint, kBindingBadOption.
Result<StringBinding> parse_binding(std::string_view text);
// Formats a binding (which should satisfy the validation above): the object uuid in lower case,
// brackets only when there is an endpoint or an option.
std::string format_binding(const StringBinding& binding);

}  // namespace rpcgate::ndr
