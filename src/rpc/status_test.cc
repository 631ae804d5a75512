#include "rpc/status.h"

#include <gtest/gtest.h>

namespace rpcgate::rpc::status {
namespace {

TEST(Status, Names) {
  EXPECT_EQ(format_status(kEptSNotRegistered), "ept_s_not_registered (0x16c9a0d6)");
  EXPECT_EQ(format_status(0x1c010003), "nca_s_unk_if (0x1c010003)");
  EXPECT_EQ(format_status(0x1c00001b), "nca_s_fault_remote_no_memory (0x1c00001b)");
  EXPECT_EQ(format_status(kRpcXBadStubData), "rpc_x_bad_stub_data (0x000006f7)");
  EXPECT_EQ(format_status(1753), "EPT_S_NOT_REGISTERED (0x000006d9)");
  EXPECT_EQ(format_status(0x12345678), "unknown status (0x12345678)");
  EXPECT_EQ(status_name(kRpcSNoMoreEntries), "rpc_s_no_more_entries");
  EXPECT_EQ(status_name(kEptSInvalidContext), "ept_s_invalid_context");
  EXPECT_EQ(status_name(kErrorInvalidParameter), "ERROR_INVALID_PARAMETER");
  EXPECT_EQ(status_name(kRpcSOutOfResources), "RPC_S_OUT_OF_RESOURCES");
  EXPECT_EQ(status_name(kRpcSCannotSupport), "rpc_s_cannot_support");
  EXPECT_EQ(status_name(kRpcSAccessDenied), "rpc_s_access_denied");
  EXPECT_FALSE(status_name(0));
  EXPECT_FALSE(status_name(0x1c000011));  // a gap in the nca_s_fault_* range
}

TEST(Status, EveryConstantHasAName) {
  for (std::uint32_t c : {kNcaSCommFailure,
                          kNcaSOpRngError,
                          kNcaSUnkIf,
                          kNcaSWrongBootTime,
                          kNcaSYouCrashed,
                          kNcaSProtoError,
                          kNcaSOutArgsTooBig,
                          kNcaSServerTooBusy,
                          kNcaSFaultStringTooLong,
                          kNcaSUnsupportedType,
                          kNcaSFaultIntDivByZero,
                          kNcaSFaultRemoteNoMemory,
                          kNcaSInvalidPresContextId,
                          kNcaSUnsupportedAuthnLevel,
                          kNcaSFaultUnspec,
                          kRpcSNoMoreEntries,
                          kRpcSInvalidInquiryType,
                          kRpcSInvalidVersOption,
                          kEptSCantPerformOp,
                          kEptSInvalidEntry,
                          kEptSInvalidContext,
                          kEptSNotRegistered,
                          kRpcSNoMemory,
                          kRpcSAccessDenied,
                          kErrorInvalidParameter,
                          kRpcSOutOfResources,
                          kEptSInvalidEntryWin32,
                          kEptSCantPerformOpWin32,
                          kEptSNotRegisteredWin32,
                          kRpcSCannotSupport,
                          kRpcXBadStubData}) {
    EXPECT_TRUE(status_name(c)) << std::hex << c;
  }
}

TEST(Status, ContextResultsAndRejectReasons) {
  EXPECT_EQ(context_result_name(kResultProviderRejection), "provider_rejection");
  EXPECT_EQ(context_result_name(kResultNegotiateAck), "negotiate_ack");
  EXPECT_EQ(context_result_name(4), "unknown");
  EXPECT_EQ(provider_reason_name(kReasonAbstractSyntaxNotSupported),
            "abstract_syntax_not_supported");
  EXPECT_EQ(provider_reason_name(kReasonProposedTransferSyntaxesNotSupported),
            "proposed_transfer_syntaxes_not_supported");
  EXPECT_EQ(reject_reason_name(kRejectProtocolVersionNotSupported),
            "protocol_version_not_supported");
  EXPECT_EQ(reject_reason_name(kRejectInvalidChecksum), "invalid_checksum");
  EXPECT_EQ(reject_reason_name(10), "unknown");
}

}  // namespace
}  // namespace rpcgate::rpc::status
