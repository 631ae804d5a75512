// The policy error category. Lives apart from policy.cc so the allocator links on its own; the
// numeric values are Windows' (policy.h), the messages are what the CLI prints.
#include "common/error.h"
#include "policy/policy.h"

namespace rpcgate::policy {

namespace {
const char* describe(Errc e) {
  switch (e) {
    case Errc::kInvalidParameter:
      return "the port configuration is invalid (ERROR_INVALID_PARAMETER)";
    case Errc::kOutOfResources:
      return "no port of the requested class is free (RPC_S_OUT_OF_RESOURCES)";
    case Errc::kNotHeld:
      return "the port is not held by the allocator";
    case Errc::kNotInPolicy:
      return "the port is in no port class of the policy";
    case Errc::kAlreadyHeld:
      return "the port is already held by the allocator";
  }
  return "unknown rpcgate.policy error";
}
}  // namespace

const std::error_category& policy_category() {
  static const common::EnumCategory<Errc> category("rpcgate.policy", &describe);
  return category;
}

std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), policy_category()};
}

}  // namespace rpcgate::policy
