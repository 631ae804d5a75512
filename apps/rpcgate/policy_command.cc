#include "policy_command.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "policy/export.h"
#include "policy/policy.h"

namespace rpcgate::cli {
namespace {

using policy::Policy;

struct Loaded {
  Policy policy;
  std::vector<policy::Warning> warnings;
};

// Loads FILE (or the embedded default when empty), resolves and lints it. A LoadError is
// reported on stderr and yields nullopt (exit 2).
std::optional<Loaded> load(const std::string& file) {
  policy::PolicyInput input;
  if (file.empty()) {
    input = policy::embedded_default();
  } else {
    auto parsed = policy::load_file(file);
    if (!parsed) {
      fmt::print(stderr, "rpcgate: {}\n", parsed.error().to_string());
      return std::nullopt;
    }
    input = std::move(*parsed);
  }
  Loaded out{policy::resolve(input), {}};
  out.warnings = policy::lint(out.policy, policy::read_host_facts());
  return out;
}

nlohmann::ordered_json ranges_json(const policy::PortSet& s) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& r : s.ranges())
    out.push_back(r.to_string());
  return out;
}

// The object documented for `policy show --json` (README): one line, stable keys.
nlohmann::ordered_json policy_json(const Loaded& l) {
  const Policy& p = l.policy;
  nlohmann::ordered_json j;
  j["restricted"] = p.restricted;
  j["valid"] = p.valid;
  j["error"] = nullptr;
  if (p.error) {
    j["error"] = {{"code", static_cast<int>(p.error->code)},
                  {"value", p.error->value},
                  {"entry", p.error->entry ? nlohmann::ordered_json(*p.error->entry) : nullptr},
                  {"message", p.error->message}};
  }
  j["default_class"] = std::string(policy::to_string(p.default_class));
  j["dynamic_range"] = p.dynamic_range.to_string();
  j["internet"] = ranges_json(p.internet);
  j["intranet"] = ranges_json(p.intranet);
  j["internet_count"] = p.internet.count();
  j["intranet_count"] = p.intranet.count();
  j["source"] = p.source;
  j["warnings"] = nlohmann::ordered_json::array();
  for (const auto& w : l.warnings) {
    j["warnings"].push_back({{"code", w.code}, {"message", w.message}});
  }
  return j;
}

std::string set_summary(const policy::PortSet& s) {
  if (s.empty()) return "none (0 ports)";
  return fmt::format("{} ({} port{})", s.to_string(), s.count(), s.count() == 1 ? "" : "s");
}

int exit_for(const Policy& p) {
  return p.valid ? kExitOk : kExitInvalidPolicy;
}

void print_error(const Policy& p) {
  fmt::print(stderr, "{}: error {}: {}\n", p.source, static_cast<int>(p.error->code),
             p.error->message);
  fmt::print(stderr,
             "{}: every dynamic port allocation fails with ERROR_INVALID_PARAMETER (87) until "
             "this is fixed\n",
             p.source);
}

void print_warnings(const Loaded& l) {
  for (const auto& w : l.warnings) {
    fmt::print(stderr, "{}: warning: {} [{}]\n", l.policy.source, w.message, w.code);
  }
}

int run_check(const std::string& file, bool json) {
  auto l = load(file);
  if (!l) return kExitUsage;
  const Policy& p = l->policy;
  if (json) {
    fmt::print("{}\n", policy_json(*l).dump());
    return exit_for(p);
  }
  if (!p.valid) {
    print_error(p);
    return kExitInvalidPolicy;
  }
  if (p.restricted) {
    fmt::print("{}: valid, restricted: internet {}, intranet {}; default class {}\n", p.source,
               set_summary(p.internet), set_summary(p.intranet),
               policy::to_string(p.default_class));
  } else {
    fmt::print("{}: valid, unrestricted: every class uses the dynamic range {} ({} ports)\n",
               p.source, p.dynamic_range.to_string(), p.dynamic_range.size());
  }
  print_warnings(*l);
  return kExitOk;
}

int run_show(const std::string& file, bool json) {
  auto l = load(file);
  if (!l) return kExitUsage;
  const Policy& p = l->policy;
  if (json) {
    fmt::print("{}\n", policy_json(*l).dump());
    return exit_for(p);
  }
  fmt::print("source:         {}\n", p.source);
  if (!p.valid) {
    fmt::print("status:         INVALID (error {}): {}\n", static_cast<int>(p.error->code),
               p.error->message);
    fmt::print(
        "effect:         every dynamic allocation fails with ERROR_INVALID_PARAMETER (87)\n");
    return kExitInvalidPolicy;
  }
  fmt::print("status:         valid, {}\n", p.restricted
                                                ? "restricted (Rpc\\Internet values present)"
                                                : "unrestricted (no Rpc\\Internet values)");
  fmt::print("dynamic range:  {}\n", p.dynamic_range.to_string());
  fmt::print("default class:  {}\n", policy::to_string(p.default_class));
  fmt::print("internet:       {}\n", set_summary(p.internet));
  fmt::print("intranet:       {}\n", set_summary(p.intranet));
  if (l->warnings.empty()) {
    fmt::print("warnings:       none\n");
  } else {
    fmt::print("warnings:\n");
    for (const auto& w : l->warnings)
      fmt::print("  [{}] {}\n", w.code, w.message);
  }
  return kExitOk;
}

int run_export(const std::string& file, const std::string& format, const std::string& output,
               const policy::ExportOptions& options) {
  auto fmt_kind = policy::parse_export_format(format);
  if (!fmt_kind) {
    fmt::print(stderr, "rpcgate: unknown export format \"{}\"\n", format);
    return kExitUsage;
  }
  auto l = load(file);
  if (!l) return kExitUsage;
  if (!l->policy.valid) {
    print_error(l->policy);
    return kExitInvalidPolicy;
  }
  auto text = policy::export_policy(l->policy, *fmt_kind, options);
  if (!text) {
    fmt::print(stderr, "rpcgate: cannot export as {}: {}\n", format, text.error().message);
    return kExitFailure;
  }
  if (output.empty() || output == "-") {
    std::fwrite(text->data(), 1, text->size(), stdout);
    return kExitOk;
  }
  std::ofstream out(output, std::ios::binary | std::ios::trunc);
  out.write(text->data(), static_cast<std::streamsize>(text->size()));
  out.close();
  if (!out) {
    fmt::print(stderr, "rpcgate: cannot write {}\n", output);
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

void add_policy_commands(CLI::App& app, int* exit_status) {
  auto* policy_cmd = app.add_subcommand(
      "policy", "The RPC port policy (HKLM\\Software\\Microsoft\\Rpc\\Internet semantics)");
  policy_cmd->require_subcommand(1);

  struct Args {
    std::string file;
    bool json = false;
    std::string format;
    std::string output;
    policy::ExportOptions export_options;
  };
  auto args = std::make_shared<Args>();

  auto* check = policy_cmd->add_subcommand(
      "check",
      "Validate a policy file (.reg regedit export or rpcgate.toml). Exit 0 valid, 87 invalid, "
      "2 unreadable");
  check->add_option("FILE", args->file, "regedit export (.reg) or rpcgate.toml")->required();
  check->add_flag("--json", args->json, "Print the resolved policy as one JSON object");
  check->callback([args, exit_status] { *exit_status = run_check(args->file, args->json); });

  auto* show = policy_cmd->add_subcommand(
      "show", "Show the resolved Internet and intranet port sets (embedded default if no FILE)");
  show->add_option("FILE", args->file, "regedit export (.reg) or rpcgate.toml");
  show->add_flag("--json", args->json, "Print one JSON object (see README for the keys)");
  show->callback([args, exit_status] { *exit_status = run_show(args->file, args->json); });

  auto* exp = policy_cmd->add_subcommand(
      "export", "Generate firewall / Samba / sysctl / registry configuration from the policy");
  exp->add_option("FILE", args->file, "regedit export (.reg) or rpcgate.toml (default: embedded)");
  exp->add_option("--format,-f", args->format, "nftables | firewalld | samba | sysctl | reg")
      ->required()
      ->check(CLI::IsMember({"nftables", "firewalld", "samba", "sysctl", "reg"}));
  exp->add_option("--output,-o", args->output, "Write to this file instead of stdout");
  exp->add_flag("--udp", args->export_options.udp,
                "Also open the Internet set for UDP (nftables, firewalld)");
  exp->add_option("--epm-port", args->export_options.epm_port,
                  "Endpoint mapper port to open (default 135)")
      ->check(CLI::Range(1, 65535));
  exp->callback([args, exit_status] {
    *exit_status = run_export(args->file, args->format, args->output, args->export_options);
  });
}

}  // namespace rpcgate::cli
