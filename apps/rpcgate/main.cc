// rpcgate: the administrator's command line. Subcommands live in *_command.cc; this file only
// wires them up and turns CLI11's parse errors into exit status 2 with one clear message.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "common/command_line.h"
#include "lookup_command.h"
#include "policy_command.h"
#include "register_command.h"
#include "status_command.h"

int main(int argc, char** argv) {
  CLI::App app{
      "rpcgate: RPC dynamic port allocation that works with firewalls.\n"
      "Port policy with Windows' Rpc\\Internet semantics, endpoint mapper, RPC-aware firewall.\n"
      "Exit status: 0 ok; 1 failed / not found / refused; 2 usage; 3 network error (lookup/map/\n"
      "ifids) or rpcgate-epmd unreachable (register/unregister);\n"
      "87 invalid policy (policy check); status: see `rpcgate status --help`."};
  app.set_version_flag("--version", std::string("rpcgate ") + RPCGATE_VERSION);
  app.require_subcommand(1);
  int exit_status = rpcgate::cli::kExitOk;
  rpcgate::cli::add_policy_commands(app, &exit_status);
  rpcgate::cli::add_lookup_commands(app, &exit_status);
  rpcgate::cli::add_register_commands(app, &exit_status);
  rpcgate::cli::add_status_command(app, &exit_status);
  if (auto status = rpcgate::common::parse_command_line(app, argc, argv)) return *status;
  return exit_status;
}
