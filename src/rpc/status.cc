#include "rpc/status.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <utility>

namespace rpcgate::rpc::status {
namespace {

struct Entry {
  std::uint32_t code;
  std::string_view name;
};

// Sorted by code (checked by status_test). Sources in status.h.
constexpr Entry kTable[] = {
    {0x00000005, "rpc_s_access_denied"},
    {0x00000057, "ERROR_INVALID_PARAMETER"},
    {0x000006b9, "RPC_S_OUT_OF_RESOURCES"},
    {0x000006d7, "EPT_S_INVALID_ENTRY"},
    {0x000006d8, "EPT_S_CANT_PERFORM_OP"},
    {0x000006d9, "EPT_S_NOT_REGISTERED"},
    {0x000006e4, "rpc_s_cannot_support"},
    {0x000006f7, "rpc_x_bad_stub_data"},
    {0x16c9a012, "rpc_s_no_memory"},
    {0x16c9a091, "rpc_s_no_more_entries"},
    {0x16c9a0a9, "rpc_s_invalid_inquiry_type"},
    {0x16c9a0bd, "rpc_s_invalid_vers_option"},
    {0x16c9a0cd, "ept_s_cant_perform_op"},
    {0x16c9a0d3, "ept_s_invalid_entry"},
    {0x16c9a0d5, "ept_s_invalid_context"},
    {0x16c9a0d6, "ept_s_not_registered"},
    {0x1c000001, "nca_s_fault_int_div_by_zero"},
    {0x1c000002, "nca_s_fault_addr_error"},
    {0x1c000003, "nca_s_fault_fp_div_zero"},
    {0x1c000004, "nca_s_fault_fp_underflow"},
    {0x1c000005, "nca_s_fault_fp_overflow"},
    {0x1c000006, "nca_s_fault_invalid_tag"},
    {0x1c000007, "nca_s_fault_invalid_bound"},
    {0x1c000008, "nca_s_rpc_version_mismatch"},
    {0x1c000009, "nca_s_unspec_reject"},
    {0x1c00000a, "nca_s_bad_actid"},
    {0x1c00000b, "nca_s_who_are_you_failed"},
    {0x1c00000c, "nca_s_manager_not_entered"},
    {0x1c00000d, "nca_s_fault_cancel"},
    {0x1c00000e, "nca_s_fault_ill_inst"},
    {0x1c00000f, "nca_s_fault_fp_error"},
    {0x1c000010, "nca_s_fault_int_overflow"},
    {0x1c000012, "nca_s_fault_unspec"},
    {0x1c000013, "nca_s_fault_remote_comm_failure"},
    {0x1c000014, "nca_s_fault_pipe_empty"},
    {0x1c000015, "nca_s_fault_pipe_closed"},
    {0x1c000016, "nca_s_fault_pipe_order"},
    {0x1c000017, "nca_s_fault_pipe_discipline"},
    {0x1c000018, "nca_s_fault_pipe_comm_error"},
    {0x1c000019, "nca_s_fault_pipe_memory"},
    {0x1c00001a, "nca_s_fault_context_mismatch"},
    {0x1c00001b, "nca_s_fault_remote_no_memory"},
    {0x1c00001c, "nca_s_invalid_pres_context_id"},
    {0x1c00001d, "nca_s_unsupported_authn_level"},
    {0x1c00001f, "nca_s_invalid_checksum"},
    {0x1c000020, "nca_s_invalid_crc"},
    {0x1c000021, "nca_s_fault_user_defined"},
    {0x1c000022, "nca_s_fault_tx_open_failed"},
    {0x1c000023, "nca_s_fault_codeset_conv_error"},
    {0x1c000024, "nca_s_fault_object_not_found"},
    {0x1c000025, "nca_s_fault_no_client_stub"},
    {0x1c010001, "nca_s_comm_failure"},
    {0x1c010002, "nca_s_op_rng_error"},
    {0x1c010003, "nca_s_unk_if"},
    {0x1c010006, "nca_s_wrong_boot_time"},
    {0x1c010009, "nca_s_you_crashed"},
    {0x1c01000b, "nca_s_proto_error"},
    {0x1c010013, "nca_s_out_args_too_big"},
    {0x1c010014, "nca_s_server_too_busy"},
    {0x1c010015, "nca_s_fault_string_too_long"},
    {0x1c010017, "nca_s_unsupported_type"},
};

constexpr bool table_sorted() {
  for (std::size_t i = 1; i < std::size(kTable); ++i) {
    if (kTable[i - 1].code >= kTable[i].code) return false;
  }
  return true;
}
static_assert(table_sorted(), "kTable must be sorted by code for binary search");

}  // namespace

std::optional<std::string_view> status_name(std::uint32_t code) {
  const auto* it = std::lower_bound(std::begin(kTable), std::end(kTable), code,
                                    [](const Entry& e, std::uint32_t c) { return e.code < c; });
  if (it == std::end(kTable) || it->code != code) return std::nullopt;
  return it->name;
}

std::string format_status(std::uint32_t code) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%08x", code);
  std::string out(status_name(code).value_or("unknown status"));
  out += " (";
  out += hex;
  out += ')';
  return out;
}

std::string_view context_result_name(std::uint16_t result) {
  switch (result) {
    case kResultAcceptance:
      return "acceptance";
    case kResultUserRejection:
      return "user_rejection";
    case kResultProviderRejection:
      return "provider_rejection";
    case kResultNegotiateAck:
      return "negotiate_ack";
    default:
      return "unknown";
  }
}

std::string_view provider_reason_name(std::uint16_t reason) {
  switch (reason) {
    case kReasonNotSpecified:
      return "reason_not_specified";
    case kReasonAbstractSyntaxNotSupported:
      return "abstract_syntax_not_supported";
    case kReasonProposedTransferSyntaxesNotSupported:
      return "proposed_transfer_syntaxes_not_supported";
    case kReasonLocalLimitExceeded:
      return "local_limit_exceeded";
    default:
      return "unknown";
  }
}

std::string_view reject_reason_name(std::uint16_t reason) {
  switch (reason) {
    case kRejectReasonNotSpecified:
      return "reason_not_specified";
    case kRejectTemporaryCongestion:
      return "temporary_congestion";
    case kRejectLocalLimitExceeded:
      return "local_limit_exceeded";
    case kRejectCalledPaddrUnknown:
      return "called_paddr_unknown";
    case kRejectProtocolVersionNotSupported:
      return "protocol_version_not_supported";
    case kRejectDefaultContextNotSupported:
      return "default_context_not_supported";
    case kRejectUserDataNotReadable:
      return "user_data_not_readable";
    case kRejectNoPsapAvailable:
      return "no_psap_available";
    case kRejectAuthenticationTypeNotRecognized:
      return "authentication_type_not_recognized";
    case kRejectInvalidChecksum:
      return "invalid_checksum";
    default:
      return "unknown";
  }
}

}  // namespace rpcgate::rpc::status
