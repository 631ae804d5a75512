// DCE/RPC status and fault codes, bind_ack result/reason and bind_nak reject reason names.
//
// For logs and diagnostics: format_status(0x16c9a0d6) == "ept_s_not_registered (0x16c9a0d6)".
// Only values confirmed in at least two independent sources are listed: Impacket 0.10.0
// (impacket/dcerpc/v5/rpcrt.py rpc_status_codes, impacket/system_errors.py), Wireshark
// (epan/dissectors/packet-dcerpc.c reject_status_vals), FreeRDP (libfreerdp/core/gateway/rpc.h
// nca_s_* defines), Samba (librpc/idl/dcerpc.idl), C706 Appendix E, and [MS-RPCE] 2.2.1.2.5
// (ept_map's statuses). The three families do not overlap numerically: Win32 values are small
// (< 0x10000), DCE rpc_s_/ept_s_ are 0x16c9axxx, NCA fault codes are 0x1c00xxxx/0x1c01xxxx.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rpcgate::rpc::status {

// ---- NCA fault status (C706 Appendix E; carried in fault PDUs) ----
inline constexpr std::uint32_t kNcaSCommFailure = 0x1c010001;
inline constexpr std::uint32_t kNcaSOpRngError = 0x1c010002;
inline constexpr std::uint32_t kNcaSUnkIf = 0x1c010003;
inline constexpr std::uint32_t kNcaSWrongBootTime = 0x1c010006;
inline constexpr std::uint32_t kNcaSYouCrashed = 0x1c010009;
inline constexpr std::uint32_t kNcaSProtoError = 0x1c01000b;
inline constexpr std::uint32_t kNcaSOutArgsTooBig = 0x1c010013;
inline constexpr std::uint32_t kNcaSServerTooBusy = 0x1c010014;
inline constexpr std::uint32_t kNcaSFaultStringTooLong = 0x1c010015;
inline constexpr std::uint32_t kNcaSUnsupportedType = 0x1c010017;
inline constexpr std::uint32_t kNcaSFaultIntDivByZero = 0x1c000001;
inline constexpr std::uint32_t kNcaSFaultRemoteNoMemory = 0x1c00001b;
inline constexpr std::uint32_t kNcaSInvalidPresContextId = 0x1c00001c;
inline constexpr std::uint32_t kNcaSUnsupportedAuthnLevel = 0x1c00001d;
inline constexpr std::uint32_t kNcaSFaultUnspec = 0x1c000012;
// (the table in status.cc lists every nca_s_fault_* value 0x1c000001..0x1c000025)

// ---- DCE rpc_s_* / ept_s_* (C706 Appendix E "rpc_s_*"; EPM operation status) ----
inline constexpr std::uint32_t kRpcSNoMoreEntries = 0x16c9a091;
inline constexpr std::uint32_t kRpcSInvalidInquiryType = 0x16c9a0a9;
inline constexpr std::uint32_t kRpcSInvalidVersOption = 0x16c9a0bd;
inline constexpr std::uint32_t kEptSCantPerformOp = 0x16c9a0cd;
inline constexpr std::uint32_t kEptSInvalidEntry = 0x16c9a0d3;
inline constexpr std::uint32_t kEptSInvalidContext = 0x16c9a0d5;
inline constexpr std::uint32_t kEptSNotRegistered = 0x16c9a0d6;
inline constexpr std::uint32_t kRpcSNoMemory = 0x16c9a012;

// ---- Win32 values Windows puts in faults / EPM status (MS-ERREF 2.2) ----
inline constexpr std::uint32_t kRpcSAccessDenied = 5;           // ERROR_ACCESS_DENIED
inline constexpr std::uint32_t kErrorInvalidParameter = 87;     // 0x57
inline constexpr std::uint32_t kRpcSOutOfResources = 1721;      // 0x6b9
inline constexpr std::uint32_t kEptSInvalidEntryWin32 = 1751;   // 0x6d7 EPT_S_INVALID_ENTRY
inline constexpr std::uint32_t kEptSCantPerformOpWin32 = 1752;  // 0x6d8 EPT_S_CANT_PERFORM_OP
inline constexpr std::uint32_t kEptSNotRegisteredWin32 = 1753;  // 0x6d9 EPT_S_NOT_REGISTERED
inline constexpr std::uint32_t kRpcSCannotSupport = 0x6e4;      // 1764 RPC_S_CANNOT_SUPPORT
inline constexpr std::uint32_t kRpcXBadStubData = 0x6f7;        // 1783 RPC_X_BAD_STUB_DATA

// Name of a status/fault code ("nca_s_op_rng_error"), nullopt if not in the table.
std::optional<std::string_view> status_name(std::uint32_t code);
// "name (0x1c010002)" or "unknown status (0x12345678)".
std::string format_status(std::uint32_t code);

// ---- bind_ack / alter_context_resp p_result_t (C706 §12.6.3.1 p_cont_def_result_t,
// p_provider_reason_t; MS-RPCE 2.2.2.4 adds negotiate_ack) ----
inline constexpr std::uint16_t kResultAcceptance = 0;
inline constexpr std::uint16_t kResultUserRejection = 1;
inline constexpr std::uint16_t kResultProviderRejection = 2;
inline constexpr std::uint16_t kResultNegotiateAck = 3;
inline constexpr std::uint16_t kReasonNotSpecified = 0;
inline constexpr std::uint16_t kReasonAbstractSyntaxNotSupported = 1;
inline constexpr std::uint16_t kReasonProposedTransferSyntaxesNotSupported = 2;
inline constexpr std::uint16_t kReasonLocalLimitExceeded = 3;
// "acceptance" ... ; "unknown" otherwise.
std::string_view context_result_name(std::uint16_t result);
std::string_view provider_reason_name(std::uint16_t reason);

// ---- bind_nak provider_reject_reason (C706 §12.6.3.1 p_reject_reason_t; MS-RPCE 2.2.2.5 adds
// 8 and 9) ----
inline constexpr std::uint16_t kRejectReasonNotSpecified = 0;
inline constexpr std::uint16_t kRejectTemporaryCongestion = 1;
inline constexpr std::uint16_t kRejectLocalLimitExceeded = 2;
inline constexpr std::uint16_t kRejectCalledPaddrUnknown = 3;
inline constexpr std::uint16_t kRejectProtocolVersionNotSupported = 4;
inline constexpr std::uint16_t kRejectDefaultContextNotSupported = 5;
inline constexpr std::uint16_t kRejectUserDataNotReadable = 6;
inline constexpr std::uint16_t kRejectNoPsapAvailable = 7;
inline constexpr std::uint16_t kRejectAuthenticationTypeNotRecognized = 8;
inline constexpr std::uint16_t kRejectInvalidChecksum = 9;
std::string_view reject_reason_name(std::uint16_t reason);

}  // namespace rpcgate::rpc::status
