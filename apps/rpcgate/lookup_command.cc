#include "lookup_command.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/uuid.h"
#include "ndr/binding.h"
#include "ndr/tower.h"
#include "policy_command.h"
#include "rpc/pdu.h"
#include "runtime/rpc_client.h"

namespace rpcgate::cli {
namespace {

using runtime::ClientError;
using runtime::ClientOptions;
using runtime::RpcClient;

struct KnownInterface {
  const char* uuid;
  const char* name;
};

// Well-known interface names (MS-RPCE, MS-SAMR, MS-LSAD, MS-NRPC, MS-DRSR, MS-SRVS, MS-WKST,
// MS-RRP, MS-SCMR, MS-TSCH, MS-RPRN, MS-DNSP, MS-EVEN(6), MS-DCOM, Samba's IDL names), by UUID:
// the name does not depend on the version.
constexpr KnownInterface kKnownInterfaces[] = {
    {"e1af8308-5d1f-11c9-91a4-08002b14a0fa", "EPM"},
    {"afa8bd80-7d8a-11c9-bef4-08002b102989", "MGMT"},
    {"12345778-1234-abcd-ef00-0123456789ac", "samr"},
    {"12345778-1234-abcd-ef00-0123456789ab", "lsarpc"},
    {"12345678-1234-abcd-ef00-01234567cffb", "netlogon"},
    {"e3514235-4b06-11d1-ab04-00c04fc2dcd2", "drsuapi"},
    {"4b324fc8-1670-01d3-1278-5a47bf6ee188", "srvsvc"},
    {"6bffd098-a112-3610-9833-46c3f87e345a", "wkssvc"},
    {"338cd001-2244-31f1-aaaa-900038001003", "winreg"},
    {"367abb81-9844-35f1-ad32-98f038001003", "svcctl"},
    {"1ff70682-0a51-30e8-076d-740be8cee98b", "atsvc"},
    {"86d35949-83c9-4044-b424-db363231fd0c", "tsch (ITaskSchedulerService)"},
    {"378e52b0-c0a9-11cf-822d-00aa0051e40f", "sasec"},
    {"12345678-1234-abcd-ef00-0123456789ab", "spoolss"},
    {"76f03f96-cdfd-44fc-a22c-64950a001209", "IRemoteWinspool"},
    {"50abc2a4-574d-40b3-9d66-ee4fd5fba076", "dnsserver"},
    {"60a15ec5-4de8-11d7-a637-005056a20182", "rpcecho"},
    {"3919286a-b10c-11d0-9ba8-00c04fd92ef5", "dssetup"},
    {"4fc742e0-4a10-11cf-8273-00aa004ae673", "netdfs"},
    {"82273fdc-e32a-18c3-3f78-827929dc23ea", "eventlog"},
    {"f6beaff7-1e19-4fbb-9f8f-b89e2018337c", "even6"},
    {"894de0c0-0d55-11d3-a322-00c04fa321a1", "initshutdown"},
    {"d95afe70-a6d5-4259-822e-2c84da1ddb0d", "WindowsShutdown"},
    {"3dde7c30-165d-11d1-ab8f-00805f14db40", "backupkey"},
    {"c681d488-d850-11d0-8c52-00c04fd90f7e", "efsrpc (lsarpc pipe)"},
    {"df1941c5-fe89-4e79-bf10-463657acf44d", "efsrpc"},
    {"4d9f4ab8-7d1c-11cf-861e-0020af6e7c57", "IActivation"},
    {"000001a0-0000-0000-c000-000000000046", "IRemoteSCMActivator"},
    {"99fcfec4-5260-101b-bbcb-00aa0021347a", "IObjectExporter"},
    {"6bffd098-a112-3610-9833-012892020162", "browser"},
    {"8d9f4e40-a03d-11ce-8f69-08003e30051b", "pnp"},
    {"8fb6d884-2388-11d0-8c35-00c04fda2795", "w32time"},
    {"45f52c28-7f9f-101a-b52b-08002b2efabe", "winsif"},
    {"6bffd098-a112-3610-9833-46c3f874532d", "dhcpsrv"},
    {"5b821720-f63b-11d0-aad2-00c04fc324db", "dhcpsrv2"},
    {"4da1c422-943d-11d1-acae-00c04fc2aa3f", "trksvr"},
    {"300f3532-38cc-11d0-a3f0-0020af6b0add", "trkwks"},
    {"12b81e99-f207-4a4c-85d3-77b42f76fd14", "seclogon"},
};

std::optional<std::string> known_name(const common::Uuid& uuid) {
  const std::string text = uuid.to_string();
  for (const auto& k : kKnownInterfaces)
    if (text == k.uuid) return std::string(k.name);
  return std::nullopt;
}

std::string version(const rpc::SyntaxId& id) {
  return fmt::format("{}.{}", id.major, id.minor);
}

// A host as typed: an IPv6 literal may come in brackets.
std::string plain_host(std::string host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host;
}

struct CommonArgs {
  double timeout = 5;
  bool json = false;
  std::uint16_t port = runtime::kEpmPort;
};

std::optional<ClientOptions> options_of(const CommonArgs& a) {
  if (!(a.timeout > 0) || a.timeout > 3600) return std::nullopt;
  ClientOptions o;
  o.connect_timeout = o.call_timeout =
      std::chrono::milliseconds(static_cast<long long>(std::ceil(a.timeout * 1000)));
  o.epm_port = a.port;
  return o;
}

int report(std::string_view what, const ClientError& e) {
  fmt::print(stderr, "rpcgate: {}: {}\n", what, e.message);
  return e.network ? kExitNetwork : kExitFailure;
}

int usage(std::string_view message) {
  fmt::print(stderr, "rpcgate: {}\n", message);
  return kExitUsage;
}

// An EPM connection to host:port.
std::expected<RpcClient, ClientError> connect_epm(const std::string& host, const ClientOptions& o) {
  auto c = RpcClient::connect(host, o.epm_port, o);
  if (!c) return c;
  if (auto b = c->bind({rpc::kEpmSyntax}); !b) return std::unexpected(b.error());
  return c;
}

// ---- lookup ----

struct LookupArgs : CommonArgs {
  std::string host;
  std::uint32_t page_size = runtime::kLookupPageSize;
};

struct Row {
  common::Uuid object;
  rpc::SyntaxId interface;
  std::string annotation;
  std::string binding;  // without the object
  std::string protseq;
  std::string endpoint;
};

int run_lookup(const LookupArgs& a) {
  auto o = options_of(a);
  if (!o) return usage("--timeout must be a number of seconds in (0, 3600]");
  if (a.page_size < 1 || a.page_size > runtime::kLookupPageSize)
    return usage("--page-size must be 1-500");
  const std::string host = plain_host(a.host);
  const std::string where = fmt::format("lookup on {} port {}", host, a.port);
  auto c = connect_epm(host, *o);
  if (!c) return report(where, c.error());
  auto entries = runtime::ept_lookup_all(*c, a.page_size);
  if (!entries) return report(where, entries.error());

  std::vector<Row> rows;
  std::size_t skipped = 0;
  for (const auto& e : *entries) {
    std::optional<ndr::Tower> tower;
    if (e.tower) {
      if (auto t = ndr::decode_tower(*e.tower)) tower = std::move(*t);
    }
    auto view =
        tower
            ? ndr::view_tower(*tower)
            : ndr::Result<ndr::TowerView>(std::unexpected(make_error_code(ndr::Errc::kTruncated)));
    if (!view) {
      ++skipped;
      continue;
    }
    Row r{e.object, view->interface, e.annotation, "", "", ""};
    if (auto b = ndr::tower_to_binding(*tower)) {
      r.binding = ndr::format_binding(*b);
      r.protseq = std::string(ndr::to_string(b->protseq));
      r.endpoint = b->endpoint;
    } else {
      r.binding = ndr::describe_floors(*tower);  // unknown protocol ids: shown, not guessed
    }
    rows.push_back(std::move(r));
  }
  if (skipped != 0)
    fmt::print(stderr, "rpcgate: {}: {} entr{} with an undecodable tower skipped\n", where, skipped,
               skipped == 1 ? "y" : "ies");

  if (a.json) {
    nlohmann::ordered_json j;
    j["host"] = host;
    j["port"] = a.port;
    j["entries"] = nlohmann::ordered_json::array();
    for (const auto& r : rows) {
      auto name = known_name(r.interface.uuid);
      j["entries"].push_back({{"object", r.object.to_string()},
                              {"interface", r.interface.uuid.to_string()},
                              {"version", version(r.interface)},
                              {"name", name ? nlohmann::ordered_json(*name) : nullptr},
                              {"annotation", r.annotation},
                              {"binding", r.binding},
                              {"protseq", r.protseq},
                              {"endpoint", r.endpoint}});
    }
    fmt::print("{}\n", j.dump());
    return kExitOk;
  }
  if (rows.empty()) {
    fmt::print("no entries\n");
    return kExitOk;
  }
  // Grouped like rpcdump.py (by interface), keeping annotations apart; first-seen order.
  std::vector<
      std::pair<std::tuple<std::string, std::string, std::string>, std::vector<std::string>>>
      groups;
  for (const auto& r : rows) {
    auto key = std::make_tuple(r.interface.uuid.to_string(), version(r.interface), r.annotation);
    auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == key; });
    if (it == groups.end()) it = groups.insert(groups.end(), {key, {}});
    it->second.push_back(r.object.is_nil() ? r.binding : r.object.to_string() + "@" + r.binding);
  }
  for (const auto& [key, bindings] : groups) {
    const auto& [uuid, ver, annotation] = key;
    auto name = known_name(common::Uuid::parse(uuid).value_or(common::Uuid{}));
    fmt::print("Interface : {} v{}{}\n", uuid, ver, name ? " " + *name : std::string());
    fmt::print("Annotation: {}\n", annotation);
    for (std::size_t i = 0; i < bindings.size(); ++i)
      fmt::print("{}{}\n", i == 0 ? "Bindings  : " : "            ", bindings[i]);
    fmt::print("\n");
  }
  fmt::print("{} entr{} from {}\n", rows.size(), rows.size() == 1 ? "y" : "ies", c->peer());
  return kExitOk;
}

// ---- map ----

struct MapArgs : CommonArgs {
  std::string host;
  std::string interface;
  std::string protseq = "ncacn_ip_tcp";
  std::string object;
};

int run_map(const MapArgs& a) {
  auto o = options_of(a);
  if (!o) return usage("--timeout must be a number of seconds in (0, 3600]");
  auto id = runtime::parse_interface(a.interface);
  if (!id) return usage(fmt::format("\"{}\" is not UUID[:MAJOR.MINOR]", a.interface));
  auto protseq = ndr::parse_protseq(a.protseq);
  if (!protseq) return usage(fmt::format("unknown protocol sequence \"{}\"", a.protseq));
  std::optional<common::Uuid> object;
  if (!a.object.empty()) {
    object = common::Uuid::parse(a.object);
    if (!object) return usage(fmt::format("--object \"{}\" is not a UUID", a.object));
  }
  const std::string host = plain_host(a.host);
  const std::string where =
      fmt::format("map {} v{} on {} port {}", id->uuid.to_string(), version(*id), host, a.port);
  auto c = connect_epm(host, *o);
  if (!c) return report(where, c.error());
  auto b = runtime::ept_map(*c, *id, *protseq, object);
  if (!b) return report(where, b.error());
  const std::string text = ndr::format_binding(*b);
  if (a.json) {
    nlohmann::ordered_json j;
    j["host"] = host;
    j["port"] = a.port;
    j["interface"] = id->uuid.to_string();
    j["version"] = version(*id);
    j["binding"] = text;
    j["protseq"] = std::string(ndr::to_string(b->protseq));
    j["endpoint"] = b->endpoint;
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("{}\n", text);
  }
  return kExitOk;
}

// ---- ifids ----

struct IfidsArgs : CommonArgs {
  std::string binding;
  std::string interface;
};

int run_ifids(const IfidsArgs& a) {
  auto o = options_of(a);
  if (!o) return usage("--timeout must be a number of seconds in (0, 3600]");
  auto parsed = ndr::parse_binding(a.binding);
  if (!parsed)
    return usage(
        fmt::format("\"{}\" is not a string binding: {}", a.binding, parsed.error().message()));
  auto target = runtime::connect_target(*parsed);
  if (!target) return usage(target.error().message);
  ndr::StringBinding b = *parsed;
  if (!target->port) {
    if (a.interface.empty())
      return usage(
          "BINDING needs a port, e.g. ncacn_ip_tcp:HOST[PORT] (every server exports MGMT, so it "
          "cannot be mapped to one; or give --interface UUID[:MAJOR.MINOR] to find that "
          "interface's server through the endpoint mapper)");
    auto id = runtime::parse_interface(a.interface);
    if (!id) return usage(fmt::format("\"{}\" is not UUID[:MAJOR.MINOR]", a.interface));
    auto resolved = runtime::resolve_endpoint(b, *id, *o);
    if (!resolved)
      return report(fmt::format("ifids: resolving {} through {} port {}", id->uuid.to_string(),
                                target->host, a.port),
                    resolved.error());
    b = *resolved;
  }
  const std::string where = fmt::format("ifids {}", ndr::format_binding(b));
  auto c = RpcClient::open(b, {rpc::kMgmtSyntax}, *o);
  if (!c) return report(where, c.error());
  auto ids = runtime::mgmt_inq_if_ids(*c);
  if (!ids) return report(where, ids.error());
  if (a.json) {
    nlohmann::ordered_json j;
    j["binding"] = ndr::format_binding(b);
    j["interfaces"] = nlohmann::ordered_json::array();
    for (const auto& id : *ids) {
      auto name = known_name(id.uuid);
      j["interfaces"].push_back({{"interface", id.uuid.to_string()},
                                 {"version", version(id)},
                                 {"name", name ? nlohmann::ordered_json(*name) : nullptr}});
    }
    fmt::print("{}\n", j.dump());
    return kExitOk;
  }
  for (const auto& id : *ids) {
    auto name = known_name(id.uuid);
    fmt::print("{} v{}{}\n", id.uuid.to_string(), version(id), name ? " " + *name : std::string());
  }
  return kExitOk;
}

constexpr const char* kExitHelp =
    "Exit status: 0 ok; 1 not found or the call failed (fault, bind rejected); 2 usage; "
    "3 network error (refused, unreachable, timed out).";

void add_common(CLI::App* cmd, CommonArgs* args, const char* port_option, const char* port_help) {
  cmd->add_option("--timeout", args->timeout,
                  "Seconds allowed for the connect and for each call (default 5)");
  cmd->add_option(port_option, args->port, port_help);
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->footer(kExitHelp);
}

}  // namespace

void add_lookup_commands(CLI::App& app, int* exit_status) {
  auto lookup_args = std::make_shared<LookupArgs>();
  auto* lookup = app.add_subcommand(
      "lookup", "List every endpoint-mapper entry of HOST (like Impacket's rpcdump.py)");
  lookup->add_option("HOST", lookup_args->host, "Host name or IPv4/IPv6 address")->required();
  add_common(lookup, lookup_args.get(), "--port", "Endpoint mapper port (default 135)");
  lookup->add_option("--page-size", lookup_args->page_size, "ept_lookup max_ents (debug)")
      ->group("");
  lookup->callback([lookup_args, exit_status] { *exit_status = run_lookup(*lookup_args); });

  auto map_args = std::make_shared<MapArgs>();
  auto* map = app.add_subcommand(
      "map", "Ask HOST's endpoint mapper where an interface is served (ept_map)");
  map->add_option("HOST", map_args->host, "Host name or IPv4/IPv6 address")->required();
  map->add_option("INTERFACE", map_args->interface, "UUID[:MAJOR.MINOR] (version default 1.0)")
      ->required();
  map->add_option("--protseq", map_args->protseq, "Protocol sequence (default ncacn_ip_tcp)");
  map->add_option("--object", map_args->object, "Object UUID (default: nil)");
  add_common(map, map_args.get(), "--port", "Endpoint mapper port (default 135)");
  map->callback([map_args, exit_status] { *exit_status = run_map(*map_args); });

  auto ifids_args = std::make_shared<IfidsArgs>();
  auto* ifids = app.add_subcommand(
      "ifids", "List the interfaces a server exports (MGMT inq_if_ids, like rpcmap.py)");
  ifids
      ->add_option("BINDING", ifids_args->binding,
                   "ncacn_ip_tcp:HOST[PORT]; without a port, --interface is required")
      ->required();
  ifids->add_option("--interface", ifids_args->interface,
                    "UUID[:MAJOR.MINOR]: find the server's port through the endpoint mapper");
  add_common(ifids, ifids_args.get(), "--epm-port",
             "Endpoint mapper port for --interface (default 135)");
  ifids->callback([ifids_args, exit_status] { *exit_status = run_ifids(*ifids_args); });
}

}  // namespace rpcgate::cli
