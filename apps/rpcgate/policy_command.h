// `rpcgate policy check|show|export`: the port policy from the command line.
//
// Exit statuses (stable, for scripts): 0 valid; 87 the policy is invalid (ERROR_INVALID_PARAMETER,
// as Windows reports it); 2 unreadable input or bad usage; 1 an export that cannot be produced
// for a valid policy (e.g. Samba needs one range).
#pragma once

#include <CLI/CLI.hpp>

namespace rpcgate::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitInvalidPolicy = 87;

// Adds the `policy` subcommand tree to `app`. The chosen command runs from its callback and
// stores its exit status in `*exit_status`.
void add_policy_commands(CLI::App& app, int* exit_status);

}  // namespace rpcgate::cli
