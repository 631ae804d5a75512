#include "register_command.h"

#include <cmath>
#include <csignal>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/uuid.h"
#include "lookup_command.h"
#include "ndr/binding.h"
#include "policy_command.h"
#include "runtime/epmd_client.h"
#include "runtime/rpc_client.h"

namespace rpcgate::cli {
namespace {

using runtime::Errc;

struct RegisterArgs {
  std::string interface;
  std::string binding;
  std::string annotation;
  std::string object;
  std::string control = runtime::kDefaultEpmdSocket;
  double timeout = 5;
  bool lease = false;
  bool json = false;
};

int usage(std::string_view message) {
  fmt::print(stderr, "rpcgate: {}\n", message);
  return kExitUsage;
}

// The exit status and one sentence for an EpmdClient error.
int failed(std::string_view what, const std::error_code& e, const runtime::EpmdClient* c) {
  const auto status = c ? c->last_status() : std::nullopt;
  const std::string raw = status && *status != 0 ? fmt::format(" (status 0x{:08x})", *status) : "";
  if (e.category() != runtime::runtime_category()) {
    fmt::print(stderr, "rpcgate: {}: {}{}\n", what, e.message(), raw);
    return kExitFailure;
  }
  switch (static_cast<Errc>(e.value())) {
    case Errc::kEptCantPerformOp:
      fmt::print(stderr,
                 "rpcgate: {}: ept_s_cant_perform_op (0x16c9a0cd): rpcgate-epmd refused it - "
                 "this user (uid {}) is not one of its registrants, or the entry belongs to "
                 "another user or to epmd itself, or a registration cap is reached (epmd's log "
                 "names which)\n",
                 what, ::geteuid());
      return kExitFailure;
    case Errc::kEptNotRegistered:
      fmt::print(stderr, "rpcgate: {}: ept_s_not_registered (0x16c9a0d6): no such entry\n", what);
      return kExitFailure;
    case Errc::kEptInvalidEntry:
      fmt::print(stderr,
                 "rpcgate: {}: ept_s_invalid_entry (0x16c9a0d3): the endpoint mapper rejected "
                 "the entry (or it would replace a newer minor version)\n",
                 what);
      return kExitFailure;
    case Errc::kAccessDenied:
      fmt::print(stderr,
                 "rpcgate: {}: access denied (5): this user (uid {}) is not a registrant of "
                 "rpcgate-epmd\n",
                 what, ::geteuid());
      return kExitFailure;
    case Errc::kServerUnavailable:
    case Errc::kTimeout:
    case Errc::kCallFailed:
      fmt::print(stderr, "rpcgate: {}: {}{}\n", what, e.message(), raw);
      return e == Errc::kCallFailed && c && c->usable() ? kExitFailure : kExitNetwork;
    default:
      fmt::print(stderr, "rpcgate: {}: {}{}\n", what, e.message(), raw);
      return kExitFailure;
  }
}

void print_json(const RegisterArgs& a, std::string_view action, const std::string& interface,
                const std::string& binding, const std::string& object, std::string_view status) {
  nlohmann::ordered_json j;
  j["action"] = action;
  j["interface"] = interface;
  j["binding"] = binding;
  j["object"] = object;
  j["annotation"] = a.annotation;
  j["lease"] = a.lease;
  j["status"] = status;
  fmt::print("{}\n", j.dump());
  std::fflush(stdout);
}

// Blocks until SIGTERM / SIGINT (true) or until epmd closes the connection (false).
bool wait_for_signal(int epmd_fd) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  const int sfd = ::signalfd(-1, &set, SFD_CLOEXEC);
  if (sfd < 0) return true;
  pollfd fds[2] = {{sfd, POLLIN, 0}, {epmd_fd, POLLIN, 0}};
  bool signalled = true;
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents & POLLIN) break;
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      signalled = false;
      break;
    }
  }
  ::close(sfd);
  return signalled;
}

int run(const RegisterArgs& a, bool insert) {
  auto id = runtime::parse_interface(a.interface);
  if (!id) return usage(fmt::format("\"{}\" is not UUID[:MAJOR.MINOR]", a.interface));
  auto binding = ndr::parse_binding(a.binding);
  if (!binding) return usage(fmt::format("\"{}\": {}", a.binding, binding.error().message()));
  std::optional<common::Uuid> object = binding->object;
  binding->object.reset();
  if (!a.object.empty()) {
    object = common::Uuid::parse(a.object);
    if (!object) return usage(fmt::format("--object \"{}\" is not a UUID", a.object));
  }
  if (!(a.timeout > 0) || a.timeout > 3600) return usage("--timeout: 0 < S <= 3600");
  if (a.annotation.size() > 63) return usage("--annotation: at most 63 characters");
  const auto timeout =
      std::chrono::milliseconds(static_cast<long long>(std::ceil(a.timeout * 1000)));
  const std::string iface_text =
      fmt::format("{}:{}.{}", id->uuid.to_string(), id->major, id->minor);
  const std::string binding_text = ndr::format_binding(*binding);
  const std::string object_text = object ? object->to_string() : common::Uuid{}.to_string();

  // Block the signals before anything, so a SIGTERM sent right after the "registered" line is
  // not lost (it waits in the signalfd).
  if (a.lease) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
  }
  auto c = runtime::EpmdClient::connect(a.control, timeout);
  if (!c) {
    return failed(fmt::format("cannot connect to rpcgate-epmd at {}", a.control), c.error(),
                  nullptr);
  }
  if (!insert) {
    if (auto r = c->unregister_endpoint(*id, *binding, object); !r)
      return failed("unregister " + iface_text + " at " + binding_text, r.error(), &*c);
    if (a.json) {
      print_json(a, "unregister", iface_text, binding_text, object_text, "ok");
    } else {
      fmt::print("unregistered {} at {}\n", iface_text, binding_text);
    }
    return kExitOk;
  }
  if (a.lease) {
    if (auto l = c->hold_lease(); !l) return failed("cannot hold a lease", l.error(), &*c);
  } else {
    c->set_persistent(true);
  }
  if (auto r = c->register_endpoint(*id, *binding, a.annotation, object); !r)
    return failed("register " + iface_text + " at " + binding_text, r.error(), &*c);
  if (a.json) {
    print_json(a, "register", iface_text, binding_text, object_text, "ok");
  } else {
    fmt::print("registered {} at {} ({})\n", iface_text, binding_text,
               a.lease ? "leased: until this command ends" : "persistent");
    std::fflush(stdout);
  }
  if (!a.lease) return kExitOk;
  if (!wait_for_signal(c->native_handle())) {
    fmt::print(stderr, "rpcgate: rpcgate-epmd closed the connection: the registration is gone\n");
    return kExitNetwork;
  }
  c->set_timeout(std::chrono::seconds(2));
  (void)c->unregister_endpoint(*id, *binding, object);  // the close removes it anyway
  return kExitOk;
}

constexpr const char* kExitHelp =
    "Exit status: 0 ok; 1 refused or failed (not a registrant, not the entry's owner, not "
    "registered, invalid entry); 2 usage; 3 rpcgate-epmd unreachable.";

void add_common(CLI::App* cmd, RegisterArgs* a) {
  cmd->add_option("INTERFACE", a->interface, "UUID[:MAJOR.MINOR] (version default 1.0)")
      ->required();
  cmd->add_option("BINDING", a->binding,
                  "String binding, e.g. ncacn_ip_tcp:0.0.0.0[5000] (0.0.0.0: the address each "
                  "client reached the endpoint mapper on)")
      ->required();
  cmd->add_option("--object", a->object, "Object UUID (default: nil, or the binding's uuid@)");
  cmd->add_option("--control", a->control,
                  "rpcgate-epmd's control socket (default /run/rpcgate/epmd.sock)");
  cmd->add_option("--timeout", a->timeout,
                  "Seconds allowed for the connect and for each call (default 5)");
  cmd->add_flag("--json", a->json, "Print one JSON object");
  cmd->footer(kExitHelp);
}

}  // namespace

void add_register_commands(CLI::App& app, int* exit_status) {
  auto reg_args = std::make_shared<RegisterArgs>();
  auto* reg = app.add_subcommand(
      "register",
      "Register an endpoint with rpcgate-epmd (persistent by default: kept until `rpcgate "
      "unregister` or until epmd's liveness sweep finds it dead)");
  add_common(reg, reg_args.get());
  reg->add_option("--annotation", reg_args->annotation, "Annotation (at most 63 characters)");
  reg->add_flag("--lease", reg_args->lease,
                "Keep the registration only while this command runs: it waits for "
                "SIGTERM/SIGINT, then unregisters (kill -9 removes it too)");
  reg->callback([reg_args, exit_status] { *exit_status = run(*reg_args, true); });

  auto unreg_args = std::make_shared<RegisterArgs>();
  auto* unreg = app.add_subcommand(
      "unregister", "Remove an endpoint registered with rpcgate-epmd (your own, or any as root)");
  add_common(unreg, unreg_args.get());
  unreg->callback([unreg_args, exit_status] { *exit_status = run(*unreg_args, false); });
}

}  // namespace rpcgate::cli
