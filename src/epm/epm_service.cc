#include "epm/epm_service.h"

#include <algorithm>

#include "ndr/epm_types.h"
#include "rpc/status.h"

namespace rpcgate::epm {
namespace {

namespace st = rpc::status;
using namespace ndr::epm;

Outcome bad_stub() {
  return std::unexpected(FaultStatus{st::kRpcXBadStubData});
}

std::vector<std::uint8_t> status_stub(std::uint32_t status, common::Endian endian) {
  return encode(EptStatusResponse{status}, endian);
}

}  // namespace

EpmService::EpmService(EpmConfig config)
    : config_(config), db_(config.db), map_cache_(config.map_cache) {
  if (config_.seed)
    seeded_.emplace(*config_.seed);
  else
    random_ = std::make_unique<std::random_device>();
  if (config_.max_results == 0) config_.max_results = 1;
  config_.max_handles_per_connection = std::max<std::size_t>(config_.max_handles_per_connection, 1);
  config_.max_handles_per_peer = std::max<std::size_t>(config_.max_handles_per_peer, 1);
  config_.max_handles_total = std::max<std::size_t>(config_.max_handles_total, 1);
}

OutcomeView EpmService::respond(std::uint16_t opnum, std::span<const std::uint8_t> stub,
                                common::Endian endian, const CallerInfo& caller) {
  ++stats_.calls[std::min<std::size_t>(opnum, kEpmOpnumCount)];
  if (opnum == kOpnumEptMap && config_.map_cache.max_entries != 0) {
    if (const auto* hit = map_cache_.find(db_.generation(), endian, host_for(caller), stub)) {
      trailing(caller, kOpnumEptMap, hit->trailing_bytes);
      count_status(hit->status);
      return std::span<const std::uint8_t>(hit->stub);
    }
  }
  Outcome r = dispatch(opnum, stub, endian, caller);
  if (!r) {
    if (r.error().status == st::kRpcXBadStubData) ++stats_.faults_bad_stub;
    if (r.error().status == st::kNcaSOpRngError) ++stats_.faults_op_rng;
    return std::unexpected(r.error());
  }
  reply_ = std::move(*r);
  return std::span<const std::uint8_t>(reply_);
}

Outcome EpmService::call(std::uint16_t opnum, std::span<const std::uint8_t> stub,
                         common::Endian endian, const CallerInfo& caller) {
  const auto r = respond(opnum, stub, endian, caller);
  if (!r) return std::unexpected(r.error());
  return std::vector<std::uint8_t>(r->begin(), r->end());
}

Outcome EpmService::dispatch(std::uint16_t opnum, std::span<const std::uint8_t> stub,
                             common::Endian endian, const CallerInfo& caller) {
  Outcome r = std::unexpected(FaultStatus{st::kNcaSOpRngError});
  switch (opnum) {
    case kOpnumEptInsert:
      r = ept_insert(stub, endian, caller);
      break;
    case kOpnumEptDelete:
      r = ept_delete(stub, endian, caller);
      break;
    case kOpnumEptLookup:
      r = ept_lookup(stub, endian, caller);
      break;
    case kOpnumEptMap:
      r = ept_map(stub, endian, caller);
      break;
    case kOpnumEptLookupHandleFree:
      r = ept_lookup_handle_free(stub, endian, caller);
      break;
    case kOpnumEptInqObject:
      r = ept_inq_object(stub, endian, caller);
      break;
    case kOpnumEptMgmtDelete:
      r = ept_mgmt_delete(stub, endian, caller);
      break;
    default:  // 7 ept_map_auth, 8 ept_map_auth_async, anything beyond
      break;
  }
  return r;
}

Outcome EpmService::ept_insert(std::span<const std::uint8_t> stub, common::Endian endian,
                               const CallerInfo& caller) {
  auto req = decode_ept_insert_request(stub, endian, config_.decode_limits);
  if (!req) return bad_stub();
  trailing(caller, kOpnumEptInsert, req->trailing_bytes);
  if (!caller.may_register || !caller.uid) return status_stub(unauthorized(caller), endian);
  const std::uint64_t lease =
      holds_lease(caller.connection_id) ? caller.connection_id : kPersistentOwner;
  const auto status = counted(caller, db_.insert(req->entries, req->replace, {lease, *caller.uid}));
  if (status == 0) ++stats_.registrations;
  return status_stub(status, endian);
}

Outcome EpmService::ept_delete(std::span<const std::uint8_t> stub, common::Endian endian,
                               const CallerInfo& caller) {
  auto req = decode_ept_delete_request(stub, endian, config_.decode_limits);
  if (!req) return bad_stub();
  trailing(caller, kOpnumEptDelete, req->trailing_bytes);
  if (!caller.may_register || !caller.uid) return status_stub(unauthorized(caller), endian);
  const auto status = counted(caller, db_.erase(req->entries, *caller.uid));
  if (status == 0) ++stats_.unregistrations;
  return status_stub(status, endian);
}

Outcome EpmService::ept_mgmt_delete(std::span<const std::uint8_t> stub, common::Endian endian,
                                    const CallerInfo& caller) {
  auto req = decode_ept_mgmt_delete_request(stub, endian, config_.decode_limits);
  if (!req) return bad_stub();
  trailing(caller, kOpnumEptMgmtDelete, req->trailing_bytes);
  if (!caller.may_register || !caller.uid) return status_stub(unauthorized(caller), endian);
  const auto status =
      counted(caller, db_.mgmt_delete(req->object_speced, req->object, req->tower, *caller.uid));
  if (status == 0) ++stats_.unregistrations;
  return status_stub(status, endian);
}

std::uint32_t EpmService::unauthorized(const CallerInfo& caller) {
  ++stats_.refused_registrations;
  // may_register without a uid: the transport's mistake, worth a log line.
  if (caller.may_register && on_refusal_)
    on_refusal_(caller, Refusal{Refusal::Reason::kNoAuthority, 0, 0, 0});
  return st::kEptSCantPerformOp;
}

std::uint32_t EpmService::counted(const CallerInfo& caller, std::uint32_t status) {
  if (status == st::kEptSCantPerformOp && db_.last_refusal()) {
    const auto& r = *db_.last_refusal();
    using R = Refusal::Reason;
    ++(r.reason == R::kForeignEntry || r.reason == R::kEpmdEntry ? stats_.refused_not_owner
                                                                 : stats_.refused_quota);
    if (on_refusal_) on_refusal_(caller, r);
  }
  return status;
}

void EpmService::trailing(const CallerInfo& caller, std::uint16_t opnum, std::size_t bytes) {
  if (bytes == 0) return;
  ++stats_.trailing_bytes_calls;
  if (on_trailing_bytes_) on_trailing_bytes_(caller, opnum, bytes);
}

Outcome EpmService::ept_inq_object(std::span<const std::uint8_t> stub, common::Endian endian,
                                   const CallerInfo& caller) {
  trailing(caller, kOpnumEptInqObject, decode_ept_inq_object_request(stub));
  return encode(EptInqObjectResponse{config_.ept_object, 0}, endian);
}

Outcome EpmService::ept_lookup(std::span<const std::uint8_t> stub, common::Endian endian,
                               const CallerInfo& caller) {
  auto req = decode_ept_lookup_request(stub, endian, config_.decode_limits);
  if (!req) return bad_stub();
  trailing(caller, kOpnumEptLookup, req->trailing_bytes);
  EptLookupResponse resp;
  resp.max_count = std::min(req->max_ents, config_.max_results);
  auto answer = [&](std::uint32_t status) -> Outcome {
    resp.status = status;
    count_status(status);
    return encode(resp, endian);
  };

  HandleState* state = nullptr;
  const auto found = find_handle(req->entry_handle, caller.connection_id, &state);
  if (found == HandleLookup::kInvalid) return answer(st::kEptSInvalidContext);
  auto drop = [&] {
    if (found == HandleLookup::kFound) free_handle(req->entry_handle.uuid);
  };
  if (!valid_inquiry_type(req->inquiry_type)) {
    drop();
    return answer(st::kRpcSInvalidInquiryType);
  }
  if (found == HandleLookup::kFound &&
      (state->kind != HandleKind::kLookup || state->inquiry_type != req->inquiry_type)) {
    drop();
    return answer(st::kEptSInvalidContext);
  }
  const bool by_if =
      req->inquiry_type == kRpcCEpMatchByIf || req->inquiry_type == kRpcCEpMatchByBoth;
  if (by_if && !valid_vers_option(req->vers_option)) {
    drop();
    return answer(st::kRpcSInvalidVersOption);
  }
  if (req->max_ents == 0) {
    drop();
    return answer(st::kEptSCantPerformOp);
  }

  LookupQuery q;
  q.inquiry_type = req->inquiry_type;
  q.object = req->object.value_or(common::Uuid{});
  q.if_id = req->if_id.value_or(RpcIfId{});
  q.vers_option = req->vers_option;
  const std::uint64_t from = found == HandleLookup::kFound ? state->lookup_next : 0;
  auto page = db_.lookup(q, from, std::min(req->max_ents, config_.max_results));

  std::optional<HandleState> next;
  if (page.next) {
    next = HandleState{
        caller.connection_id, HandleKind::kLookup, req->inquiry_type, *page.next, {}, {}, 0};
  }
  resp.entry_handle = after_page(caller, found, req->entry_handle, state, next);
  const Ipv4 host = host_for(caller);
  resp.entries.reserve(page.entries.size());
  for (const Entry* e : page.entries)
    resp.entries.push_back(
        EptEntry{e->object, render_tower(*e, std::nullopt, host), e->annotation});
  return answer(resp.entries.empty() ? st::kEptSNotRegistered : 0);
}

Outcome EpmService::ept_map(std::span<const std::uint8_t> stub, common::Endian endian,
                            const CallerInfo& caller) {
  auto req = decode_ept_map_request(stub, endian, config_.decode_limits);
  if (!req) return bad_stub();
  trailing(caller, kOpnumEptMap, req->trailing_bytes);
  EptMapResponse resp;
  resp.max_count = std::min(req->max_towers, config_.max_results);
  auto answer = [&](std::uint32_t status) -> Outcome {
    resp.status = status;
    count_status(status);
    auto out = encode(resp, endian);
    // Stateless (see "Answer cache"): no handle came in, none goes out.
    if (config_.map_cache.max_entries != 0 && req->entry_handle.is_null() &&
        resp.entry_handle.is_null())
      map_cache_.insert(db_.generation(), endian, host_for(caller), stub,
                        EptMapCache::Answer{out, status, req->trailing_bytes});
    return out;
  };

  HandleState* state = nullptr;
  const auto found = find_handle(req->entry_handle, caller.connection_id, &state);
  if (found == HandleLookup::kInvalid) return answer(st::kEptSInvalidContext);
  auto drop = [&] {
    if (found == HandleLookup::kFound) free_handle(req->entry_handle.uuid);
  };
  if (found == HandleLookup::kFound && state->kind != HandleKind::kMap) {
    drop();
    return answer(st::kEptSInvalidContext);
  }
  if (req->max_towers == 0) {
    drop();
    return answer(st::kEptSCantPerformOp);
  }
  auto query = parse_map_tower(req->map_tower, req->object);
  if (!query) {
    drop();
    return answer(query.error());
  }
  const MapCursor from = found == HandleLookup::kFound ? state->map_next : MapCursor{};
  auto page = db_.map(*query, from, std::min(req->max_towers, config_.max_results));

  std::optional<HandleState> next;
  if (page.next)
    next = HandleState{caller.connection_id, HandleKind::kMap, 0, 0, *page.next, {}, 0};
  resp.entry_handle = after_page(caller, found, req->entry_handle, state, next);
  const Ipv4 host = host_for(caller);
  const std::optional<SyntaxId> floor1 = is_mgmt_interface(query->interface.uuid)
                                             ? std::optional<SyntaxId>(rpc::kMgmtSyntax)
                                             : std::nullopt;
  resp.towers.reserve(page.entries.size());
  for (const Entry* e : page.entries)
    resp.towers.emplace_back(render_tower(*e, floor1, host));
  return answer(resp.towers.empty() ? st::kEptSNotRegistered : 0);
}

ndr::ContextHandle EpmService::after_page(const CallerInfo& caller, HandleLookup found,
                                          const ndr::ContextHandle& current, HandleState* state,
                                          const std::optional<HandleState>& next) {
  if (!next) {
    if (found == HandleLookup::kFound) free_handle(current.uuid);
    return ndr::ContextHandle{};
  }
  if (found == HandleLookup::kFound) {
    auto peer = std::move(state->peer);
    const auto last_use = state->last_use;
    *state = *next;
    state->peer = std::move(peer);
    state->last_use = last_use;
    touch(current.uuid, *state);
    return current;
  }
  return ndr::ContextHandle{0, new_handle(caller, *next)};
}

void EpmService::count_status(std::uint32_t status) {
  if (status == st::kEptSNotRegistered) ++stats_.not_registered;
  if (status == st::kEptSInvalidContext) ++stats_.invalid_context;
}

Outcome EpmService::ept_lookup_handle_free(std::span<const std::uint8_t> stub,
                                           common::Endian endian, const CallerInfo& caller) {
  auto req = decode_ept_lookup_handle_free_request(stub, endian, config_.decode_limits);
  if (!req) return bad_stub();
  trailing(caller, kOpnumEptLookupHandleFree, req->trailing_bytes);
  HandleState* state = nullptr;
  EptLookupHandleFreeResponse resp;  // handle always returned null
  switch (find_handle(req->entry_handle, caller.connection_id, &state)) {
    case HandleLookup::kNull:
      break;
    case HandleLookup::kFound:
      free_handle(req->entry_handle.uuid);
      break;
    case HandleLookup::kInvalid:
      ++stats_.invalid_context;
      resp.status = st::kEptSInvalidContext;
      break;
  }
  return encode(resp, endian);
}

std::size_t EpmService::connection_closed(std::uint64_t connection_id) {
  if (auto it = by_connection_.find(connection_id); it != by_connection_.end()) {
    const std::vector<common::Uuid> mine(it->second.begin(), it->second.end());
    for (const auto& uuid : mine)
      free_handle(uuid);
  }
  leases_.erase(connection_id);
  const auto removed = db_.remove_owner(connection_id);
  stats_.owner_removals += removed;
  return removed;
}

void EpmService::hold_lease(std::uint64_t connection_id) {
  if (connection_id != kPersistentOwner) leases_.insert(connection_id);
}

EpmService::HandleLookup EpmService::find_handle(const ndr::ContextHandle& h,
                                                 std::uint64_t connection_id, HandleState** out) {
  if (h.is_null()) return HandleLookup::kNull;
  auto it = handles_.find(h.uuid);
  if (h.attributes != 0 || it == handles_.end() || it->second.connection_id != connection_id)
    return HandleLookup::kInvalid;
  *out = &it->second;
  return HandleLookup::kFound;
}

namespace {

// The per-peer handle key: see "Context handles" in the header.
std::string handle_peer_key(const CallerInfo& caller) {
  if (!caller.peer_key.empty()) return std::string(caller.peer_key);
  if (caller.uid) return "uid " + std::to_string(*caller.uid);
  return "connection " + std::to_string(caller.connection_id);
}

}  // namespace

common::Uuid EpmService::new_handle(const CallerInfo& caller, HandleState state) {
  state.peer = handle_peer_key(caller);
  if (auto c = by_connection_.find(caller.connection_id);
      c != by_connection_.end() && c->second.size() >= config_.max_handles_per_connection) {
    free_handle(c->second.front());
    ++stats_.handles_evicted;
  }
  if (auto p = by_peer_.find(state.peer);
      p != by_peer_.end() && p->second.by_use.size() >= config_.max_handles_per_peer) {
    free_handle(p->second.by_use.begin()->second);
    ++stats_.handles_evicted_peer;
  }
  if (handles_.size() >= config_.max_handles_total && !holders_.empty()) {
    free_handle(by_peer_.at(holders_.rbegin()->second).by_use.begin()->second);
    ++stats_.handles_evicted_total;
  }
  common::Uuid uuid;
  do {
    uuid = random_uuid();
  } while (uuid.is_nil() || handles_.contains(uuid));
  state.last_use = ++use_clock_;
  by_connection_[caller.connection_id].push_back(uuid);
  auto& peer = by_peer_[state.peer];
  if (!peer.by_use.empty()) holders_.erase({peer.by_use.size(), state.peer});
  peer.by_use.emplace(state.last_use, uuid);
  holders_.emplace(peer.by_use.size(), state.peer);
  handles_.emplace(uuid, std::move(state));
  ++stats_.handles_created;
  return uuid;
}

void EpmService::touch(const common::Uuid& uuid, HandleState& state) {
  auto& peer = by_peer_.at(state.peer);
  peer.by_use.erase(state.last_use);
  state.last_use = ++use_clock_;
  peer.by_use.emplace(state.last_use, uuid);
}

void EpmService::free_handle(const common::Uuid& uuid) {
  auto it = handles_.find(uuid);
  if (it == handles_.end()) return;
  if (auto c = by_connection_.find(it->second.connection_id); c != by_connection_.end()) {
    std::erase(c->second, uuid);
    if (c->second.empty()) by_connection_.erase(c);
  }
  if (auto p = by_peer_.find(it->second.peer); p != by_peer_.end()) {
    holders_.erase({p->second.by_use.size(), it->second.peer});
    p->second.by_use.erase(it->second.last_use);
    if (p->second.by_use.empty())
      by_peer_.erase(p);
    else
      holders_.emplace(p->second.by_use.size(), it->second.peer);
  }
  handles_.erase(it);
}

common::Uuid EpmService::random_uuid() {
  std::array<std::uint8_t, 16> bytes{};
  for (std::size_t i = 0; i < bytes.size(); i += 4) {
    const std::uint32_t v = seeded_ ? static_cast<std::uint32_t>((*seeded_)())
                                    : static_cast<std::uint32_t>((*random_)());
    for (std::size_t j = 0; j < 4; ++j)
      bytes[i + j] = static_cast<std::uint8_t>(v >> (8 * j));
  }
  return common::Uuid(bytes);
}

Ipv4 EpmService::host_for(const CallerInfo& caller) const {
  if (config_.advertised_ipv4) return *config_.advertised_ipv4;
  return caller.local_ipv4.value_or(Ipv4{});
}

EpmStats EpmService::stats() const {
  EpmStats s = stats_;
  s.entries = db_.size();
  s.handles = handles_.size();
  return s;
}

std::size_t EpmService::handle_count(std::uint64_t connection_id) const {
  auto it = by_connection_.find(connection_id);
  return it == by_connection_.end() ? 0 : it->second.size();
}

std::size_t EpmService::peer_handle_count(std::string_view key) const {
  auto it = by_peer_.find(std::string(key));
  return it == by_peer_.end() ? 0 : it->second.by_use.size();
}

}  // namespace rpcgate::epm
