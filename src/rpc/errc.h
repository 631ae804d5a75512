// Errors of the connection-oriented DCE/RPC codec (rpcgate::rpc).
//
// Every fallible function in src/rpc/ returns std::expected<T, std::error_code>; the codes are
// values of rpc::Errc in rpc_category() ("rpcgate.rpc"). `return Errc::kTruncated;` converts
// implicitly (std::is_error_code_enum). Nothing here throws on wire input.
//
// What a caller should do: every decode/framing/reassembly error means the peer sent something
// this codec will not interpret. On a connection that is fatal (a byte stream cannot resync);
// a server may answer with a fault (nca_s_proto_error) or bind_nak before closing, a firewall
// drops the connection and logs the error's message() as the reason.
#pragma once

#include <cstdint>
#include <system_error>
#include <type_traits>

namespace rpcgate::rpc {

enum class Errc : int {
  kOk = 0,  // never returned; keeps 0 free (std::error_code 0 means success)

  // --- decode_pdu / Framer: the PDU itself ---------------------------------------------------
  kTruncated,                // a field runs past the end of the PDU (or the input is shorter than
                             // the 16-byte common header / than frag_length)
  kBadVersion,               // rpc_vers != 5 or rpc_vers_minor not 0/1 (C706 §12.6.3.1)
  kUnsupportedPtype,         // ptype is not one of the 12 CO PDU types handled (connectionless
                             // types, rts = 20 and unknown values)
  kBadDrep,                  // packed_drep: integer rep not 0/1, char rep not ASCII (0), or float
                             // rep not IEEE (0) (C706 §14.1)
  kFragTooShort,             // frag_length < 16 or < the fixed header of its ptype
  kFragTooLong,              // frag_length > the configured / negotiated maximum
  kFragLengthMismatch,       // decode_pdu input size != frag_length
  kAuthLengthInconsistent,   // auth_length + 8 does not fit after the type's header, or a
                             // ptype that carries no auth_verifier has auth_length != 0
  kAuthTrailerMisaligned,    // sec_trailer does not start 4-byte aligned (MS-RPCE 2.2.2.11)
  kAuthPadTooLong,           // auth_pad_length exceeds the stub/body it pads
  kTooManyContextItems,      // n_context_elem (bind/alter_context) over DecodeLimits
  kTooManyTransferSyntaxes,  // n_transfer_syn of one context element over DecodeLimits
  kTooManyResults,           // n_results (bind_ack/alter_context_resp) over DecodeLimits
  kTrailingBytes,            // bytes left between the end of a fixed-layout body (bind, bind_ack,
                   // auth3, shutdown, co_cancel, orphaned...) and the auth padding/trailer

  // --- Framer -----------------------------------------------------------------------------
  kFramerFailed,  // the framer already failed; it stays failed (no resync, never scans)

  // --- Request/ResponseReassembler (C706 §12.6.3.7 fragmentation) --------------------------
  kFragmentMismatch,        // a later fragment disagrees with the first on p_cont_id, opnum,
                            // object UUID or packed_drep (a response: p_cont_id or packed_drep)
  kUnknownCall,             // a non-FIRST fragment for a call_id that is not in progress
  kDuplicateFirstFragment,  // FIRST fragment for a call_id already in progress
  kStubTooLarge,            // reassembled stub would exceed the call's cap (its interface's,
                            // else ReassemblyLimits::max_stub_size; for a response
                            // ResponseLimits::max_stub_size)
  kTooManyCalls,            // a new multi-fragment call would exceed max_calls_in_progress
  kNotARequest,             // RequestReassembler::feed was given a PDU that is not a request
  kNotAResponse,            // ResponseReassembler::feed was given a PDU that is neither a
                            // response nor a fault
  kReassemblyBudget,        // the open calls' buffers would exceed ReassemblyLimits::
                            // max_held_bytes (the connection's reassembly budget)
  kCallTimeout,             // a call's fragments did not all arrive within call_timeout

  // --- encode_pdu / split_* (caller errors, not wire errors) -------------------------------
  kInvalidArgument,   // the Pdu cannot be encoded: header.ptype disagrees with the body,
                      // a count does not fit its wire field, misaligned auth padding,
                      // max_xmit_frag too small to carry stub bytes
  kTooLargeToEncode,  // the encoded PDU would exceed 65535 bytes (frag_length is a u16)

  // --- Association (association.h: ServerAssociation, AssociationObserver) ----------------
  // Each is fatal to the connection (a server closes it, a firewall drops it), except where
  // association.h says an outcome is only informational.
  kBindAlreadyDone,       // a second bind on a connection that already bound (C706 §12.4;
                          // docs/evasions.md C9)
  kAlterBeforeBind,       // alter_context before a bind was accepted (docs/evasions.md C8)
  kRequestBeforeBind,     // request (or cancel/orphaned) before the association was bound
  kContextNotAccepted,    // request on a p_cont_id the server never accepted (rejected,
                          // negotiate_ack, or never offered) (docs/evasions.md C10, C12)
  kContextRedefined,      // alter_context re-defines an accepted p_cont_id (docs/evasions.md C7)
  kDuplicateContextId,    // one bind/alter_context offers a p_cont_id twice with different
                          // syntaxes (docs/evasions.md C5)
  kNoContextItems,        // bind/alter_context with n_context_elem == 0 (docs/evasions.md C3)
  kNoTransferSyntaxes,    // a context item with n_transfer_syn == 0 (docs/evasions.md C3)
  kInterleavedCall,       // a request fragment of another call while one call's fragments are
                          // still coming (Windows reassembles one call at a time)
  kUnknownAssocGroup,     // a bind names an association group that does not exist
  kTwoFeatureItems,       // a bind with two bind-time feature negotiation items (MS-RPCE
                          // 3.3.1.5.3 allows one; Windows answers bind_nak)
  kTooManyContexts,       // the association's presentation-context limit was reached
  kByteOrderChanged,      // packed_drep differs from the one fixed at bind (docs/evasions.md B7)
  kAuthNotSupported,      // authenticated bind / auth trailer while authentication is not
                          // implemented or was not negotiated
  kFragmentedBind,        // bind/alter_context with FIRST but not LAST or vice versa
                          // (docs/evasions.md B10). No longer returned: Windows accepts any
                          // pfc_flags there, and so does association.h
  kPresentationPending,   // bind/alter_context while another one awaits its answer
  kUnsolicitedBindAck,    // bind_ack/bind_nak/alter_context_resp with no pending bind or
                          // alter_context of that call_id (docs/evasions.md C11)
  kResultCountMismatch,   // n_results differs from the pending n_context_elem (C11)
  kInvalidContextResult,  // a result the items cannot have produced: acceptance of a
                          // transfer syntax that was not offered, negotiate_ack for an item
                          // without a feature-negotiation syntax, unknown result value
  kUnexpectedPdu,         // a PDU type not valid in this direction or state (auth3 without
                          // authentication, bind_ack from the client, shutdown from the
                          // client...) (docs/evasions.md B16)
  kAssociationClosed,     // input after the association was closed / dropped / bind_nak'ed
  kUnsolicitedResponse,   // response/fault for a call_id never requested (informational:
                          // the observer lets it pass, see association.h)
  kUnsupportedVersion,    // bind with an rpc_vers/rpc_vers_minor this server does not speak
                          // (answered with bind_nak protocol_version_not_supported)
};

// Static, human-readable description, e.g. "frag_length below the PDU type's fixed header".
const char* describe(Errc e);
const std::error_category& rpc_category();
std::error_code make_error_code(Errc e);

}  // namespace rpcgate::rpc

template <>
struct std::is_error_code_enum<rpcgate::rpc::Errc> : std::true_type {};
