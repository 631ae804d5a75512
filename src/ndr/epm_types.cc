#include "ndr/epm_types.h"

#include <algorithm>
#include <unordered_map>

#include "ndr/tower.h"

namespace rpcgate::ndr::epm {
namespace {

// Propagates the error of a Result<T> expression, else yields its value.
#define NDR_TRY(var, expr) \
  auto var = (expr);       \
  if (!var) return std::unexpected(var.error())

// Smallest wire size of an ept_entry_t (uuid, tower ptr, annotation offset + actual_count);
// the element size used to check num_ents against the remaining bytes.
constexpr std::size_t kMinEntryWireSize = 16 + 4 + 4 + 4;

// Reads a [ptr] twr_p_t array element or struct member: records first occurrences for deferred
// decoding into `slot` and aliases for copying once all referents are known.
class TowerPointers {
 public:
  Result<void> read(Decoder& d, std::optional<Octets>* slot) {
    NDR_TRY(fp, d.full_pointer());
    if (fp->is_null()) return {};
    if (fp->first) {
      first_.emplace(fp->referent_id, slot);
      d.defer([slot](Decoder& dd) -> Result<void> {
        NDR_TRY(octets, decode_twr(dd));
        *slot = std::move(*octets);
        return {};
      });
    } else {
      aliases_.emplace_back(slot, fp->referent_id);
    }
    return {};
  }
  // After flush_deferred(): aliases become copies (charged against the allocation budget).
  Result<void> resolve(Decoder& d) {
    for (auto& [slot, id] : aliases_) {
      const auto* source = first_.at(id);
      if (!source->has_value()) return fail(Errc::kBadFullPointer);
      if (auto r = d.charge((*source)->size()); !r) return r;
      *slot = *source;
    }
    return {};
  }

 private:
  std::unordered_map<std::uint32_t, const std::optional<Octets>*> first_;
  std::vector<std::pair<std::optional<Octets>*, std::uint32_t>> aliases_;
};

// Top-level unique pointer to a UUID: referent inline.
Result<std::optional<common::Uuid>> read_uuid_ptr(Decoder& d) {
  NDR_TRY(present, d.unique_pointer());
  if (!*present) return std::optional<common::Uuid>{};
  NDR_TRY(u, d.uuid());
  return std::optional<common::Uuid>{*u};
}

// Array header of ITowers / entries: offset 0, actual_count == num_*.
Result<ArrayShape> read_array(Decoder& d, std::uint32_t num, std::size_t element_size) {
  NDR_TRY(shape, d.conformant_varying_array(element_size));
  if (shape->offset != 0 || shape->actual_count != num) return fail(Errc::kCountInconsistent);
  return *shape;
}

void write_uuid_ptr(Encoder& e, const std::optional<common::Uuid>& u) {
  e.unique_pointer(u.has_value());
  if (u) e.uuid(*u);
}

// entries[]: conformant array of ept_entry_t (top level), towers deferred after the array.
Result<std::vector<EptEntry>> read_entries(Decoder& d) {
  NDR_TRY(num_ents, d.u32());
  NDR_TRY(shape, d.conformant_array(kMinEntryWireSize));
  if (shape->max_count != *num_ents) return fail(Errc::kCountInconsistent);
  if (auto r = d.charge(shape->actual_count * sizeof(EptEntry)); !r)
    return std::unexpected(r.error());
  std::vector<EptEntry> entries(shape->actual_count);  // never resized: deferred slots stay valid
  TowerPointers pointers;
  for (auto& entry : entries) {
    NDR_TRY(object, d.uuid());
    entry.object = *object;
    if (auto r = pointers.read(d, &entry.tower); !r) return std::unexpected(r.error());
    NDR_TRY(annotation, d.varying_string(kMaxAnnotationSize));
    entry.annotation = std::move(*annotation);
  }
  if (auto r = d.flush_deferred(); !r) return std::unexpected(r.error());
  if (auto r = pointers.resolve(d); !r) return std::unexpected(r.error());
  return entries;
}

void write_entries(Encoder& e, const std::vector<EptEntry>& entries) {
  const auto n = static_cast<std::uint32_t>(entries.size());
  e.u32(n);
  e.conformance(n);
  for (const auto& entry : entries) {
    e.uuid(entry.object);
    e.unique_pointer(entry.tower.has_value());
    if (entry.tower) e.defer([&entry](Encoder& ee) { encode_twr(ee, *entry.tower); });
    e.varying_string(entry.annotation);
  }
  e.flush_deferred();
}

}  // namespace

Result<EptMapRequest> decode_ept_map_request(Decoder& d) {
  EptMapRequest v;
  NDR_TRY(object, read_uuid_ptr(d));
  v.object = *object;
  NDR_TRY(tower_present, d.unique_pointer());
  if (*tower_present) {
    NDR_TRY(octets, decode_twr(d));
    v.map_tower = std::move(*octets);
  }
  NDR_TRY(handle, d.context_handle());
  v.entry_handle = *handle;
  NDR_TRY(max_towers, d.u32());
  v.max_towers = *max_towers;
  v.trailing_bytes = d.remaining();  // ignored, as Windows and Samba (header)
  return v;
}

Result<EptMapResponse> decode_ept_map_response(Decoder& d) {
  EptMapResponse v;
  NDR_TRY(handle, d.context_handle());
  v.entry_handle = *handle;
  NDR_TRY(num_towers, d.u32());
  NDR_TRY(shape, read_array(d, *num_towers, 4));
  v.max_count = shape->max_count;
  if (auto r = d.charge(shape->actual_count * sizeof(std::optional<Octets>)); !r)
    return std::unexpected(r.error());
  v.towers.resize(shape->actual_count);  // never resized again: deferred slots stay valid
  TowerPointers pointers;
  for (auto& slot : v.towers)
    if (auto r = pointers.read(d, &slot); !r) return std::unexpected(r.error());
  if (auto r = d.flush_deferred(); !r) return std::unexpected(r.error());
  if (auto r = pointers.resolve(d); !r) return std::unexpected(r.error());
  NDR_TRY(status, d.u32());
  v.status = *status;
  if (auto r = d.expect_end(); !r) return std::unexpected(r.error());
  return v;
}

Result<EptLookupRequest> decode_ept_lookup_request(Decoder& d) {
  EptLookupRequest v;
  NDR_TRY(inquiry_type, d.u32());
  v.inquiry_type = *inquiry_type;
  NDR_TRY(object, read_uuid_ptr(d));
  v.object = *object;
  NDR_TRY(if_present, d.unique_pointer());
  if (*if_present) {
    RpcIfId id;
    NDR_TRY(u, d.uuid());
    NDR_TRY(major, d.u16());
    NDR_TRY(minor, d.u16());
    id.uuid = *u;
    id.vers_major = *major;
    id.vers_minor = *minor;
    v.if_id = id;
  }
  NDR_TRY(vers_option, d.u32());
  v.vers_option = *vers_option;
  NDR_TRY(handle, d.context_handle());
  v.entry_handle = *handle;
  NDR_TRY(max_ents, d.u32());
  v.max_ents = *max_ents;
  v.trailing_bytes = d.remaining();
  return v;
}

Result<EptLookupResponse> decode_ept_lookup_response(Decoder& d) {
  EptLookupResponse v;
  NDR_TRY(handle, d.context_handle());
  v.entry_handle = *handle;
  NDR_TRY(num_ents, d.u32());
  NDR_TRY(shape, read_array(d, *num_ents, kMinEntryWireSize));
  v.max_count = shape->max_count;
  if (auto r = d.charge(shape->actual_count * sizeof(EptEntry)); !r)
    return std::unexpected(r.error());
  v.entries.resize(shape->actual_count);
  TowerPointers pointers;
  for (auto& entry : v.entries) {
    NDR_TRY(object, d.uuid());
    entry.object = *object;
    if (auto r = pointers.read(d, &entry.tower); !r) return std::unexpected(r.error());
    NDR_TRY(annotation, d.varying_string(kMaxAnnotationSize));
    entry.annotation = std::move(*annotation);
  }
  if (auto r = d.flush_deferred(); !r) return std::unexpected(r.error());
  if (auto r = pointers.resolve(d); !r) return std::unexpected(r.error());
  NDR_TRY(status, d.u32());
  v.status = *status;
  if (auto r = d.expect_end(); !r) return std::unexpected(r.error());
  return v;
}

Result<EptLookupHandleFreeRequest> decode_ept_lookup_handle_free_request(Decoder& d) {
  NDR_TRY(handle, d.context_handle());
  return EptLookupHandleFreeRequest{*handle, d.remaining()};
}

Result<EptLookupHandleFreeResponse> decode_ept_lookup_handle_free_response(Decoder& d) {
  NDR_TRY(handle, d.context_handle());
  NDR_TRY(status, d.u32());
  if (auto r = d.expect_end(); !r) return std::unexpected(r.error());
  return EptLookupHandleFreeResponse{*handle, *status};
}

Result<EptMapRequest> decode_ept_map_request(std::span<const std::uint8_t> stub, Endian endian,
                                             const DecodeLimits& limits) {
  Decoder d(stub, endian, limits);
  return decode_ept_map_request(d);
}

Result<EptMapResponse> decode_ept_map_response(std::span<const std::uint8_t> stub, Endian endian,
                                               const DecodeLimits& limits) {
  Decoder d(stub, endian, limits);
  return decode_ept_map_response(d);
}

Result<EptLookupRequest> decode_ept_lookup_request(std::span<const std::uint8_t> stub,
                                                   Endian endian, const DecodeLimits& limits) {
  Decoder d(stub, endian, limits);
  return decode_ept_lookup_request(d);
}

Result<EptLookupResponse> decode_ept_lookup_response(std::span<const std::uint8_t> stub,
                                                     Endian endian, const DecodeLimits& limits) {
  Decoder d(stub, endian, limits);
  return decode_ept_lookup_response(d);
}

Result<EptLookupHandleFreeRequest> decode_ept_lookup_handle_free_request(
    std::span<const std::uint8_t> stub, Endian endian, const DecodeLimits& limits) {
  Decoder d(stub, endian, limits);
  return decode_ept_lookup_handle_free_request(d);
}

Result<EptLookupHandleFreeResponse> decode_ept_lookup_handle_free_response(
    std::span<const std::uint8_t> stub, Endian endian, const DecodeLimits& limits) {
  Decoder d(stub, endian, limits);
  return decode_ept_lookup_handle_free_response(d);
}

std::vector<std::uint8_t> encode(const EptMapRequest& v, Endian endian, EncodeOptions options) {
  Encoder e(endian, options);
  write_uuid_ptr(e, v.object);
  e.unique_pointer(v.map_tower.has_value());
  if (v.map_tower) encode_twr(e, *v.map_tower);
  e.context_handle(v.entry_handle);
  e.u32(v.max_towers);
  return e.take();
}

std::vector<std::uint8_t> encode(const EptMapResponse& v, Endian endian, EncodeOptions options) {
  Encoder e(endian, options);
  // handle 20, num_towers + conformance + variance 16, per tower pointer 4 + twr_t 8 + octets +
  // pad 3, status 4.
  std::size_t size = 40;
  for (const auto& t : v.towers)
    size += 15 + (t ? t->size() : 0);
  e.reserve(size);
  e.context_handle(v.entry_handle);
  const auto n = static_cast<std::uint32_t>(v.towers.size());
  e.u32(n);
  e.conformance(std::max(v.max_count, n));
  e.variance(0, n);
  for (const auto& tower : v.towers) {
    e.unique_pointer(tower.has_value());
    if (tower) e.defer([&tower](Encoder& ee) { encode_twr(ee, *tower); });
  }
  e.flush_deferred();
  e.u32(v.status);
  return e.take();
}

std::vector<std::uint8_t> encode(const EptLookupRequest& v, Endian endian, EncodeOptions options) {
  Encoder e(endian, options);
  e.u32(v.inquiry_type);
  write_uuid_ptr(e, v.object);
  e.unique_pointer(v.if_id.has_value());
  if (v.if_id) {
    e.uuid(v.if_id->uuid);
    e.u16(v.if_id->vers_major);
    e.u16(v.if_id->vers_minor);
  }
  e.u32(v.vers_option);
  e.context_handle(v.entry_handle);
  e.u32(v.max_ents);
  return e.take();
}

std::vector<std::uint8_t> encode(const EptLookupResponse& v, Endian endian, EncodeOptions options) {
  Encoder e(endian, options);
  e.context_handle(v.entry_handle);
  const auto n = static_cast<std::uint32_t>(v.entries.size());
  e.u32(n);
  e.conformance(std::max(v.max_count, n));
  e.variance(0, n);
  for (const auto& entry : v.entries) {
    e.uuid(entry.object);
    e.unique_pointer(entry.tower.has_value());
    if (entry.tower) e.defer([&entry](Encoder& ee) { encode_twr(ee, *entry.tower); });
    e.varying_string(entry.annotation);
  }
  e.flush_deferred();
  e.u32(v.status);
  return e.take();
}

std::vector<std::uint8_t> encode(const EptLookupHandleFreeRequest& v, Endian endian,
                                 EncodeOptions options) {
  Encoder e(endian, options);
  e.context_handle(v.entry_handle);
  return e.take();
}

std::vector<std::uint8_t> encode(const EptLookupHandleFreeResponse& v, Endian endian,
                                 EncodeOptions options) {
  Encoder e(endian, options);
  e.context_handle(v.entry_handle);
  e.u32(v.status);
  return e.take();
}

// ---- ept_insert / ept_delete / ept_inq_object / ept_mgmt_delete ----

Result<EptInsertRequest> decode_ept_insert_request(std::span<const std::uint8_t> stub,
                                                   Endian endian, const DecodeLimits& limits) {
  Decoder d(stub, endian, limits);
  EptInsertRequest v;
  NDR_TRY(entries, read_entries(d));
  v.entries = std::move(*entries);
  NDR_TRY(replace, d.u32());
  v.replace = *replace != 0;
  v.trailing_bytes = d.remaining();
  return v;
}

Result<EptDeleteRequest> decode_ept_delete_request(std::span<const std::uint8_t> stub,
                                                   Endian endian, const DecodeLimits& limits) {
  Decoder d(stub, endian, limits);
  NDR_TRY(entries, read_entries(d));
  return EptDeleteRequest{std::move(*entries), d.remaining()};
}

Result<EptStatusResponse> decode_ept_status_response(std::span<const std::uint8_t> stub,
                                                     Endian endian, const DecodeLimits& limits) {
  Decoder d(stub, endian, limits);
  NDR_TRY(status, d.u32());
  if (auto r = d.expect_end(); !r) return std::unexpected(r.error());
  return EptStatusResponse{*status};
}

std::size_t decode_ept_inq_object_request(std::span<const std::uint8_t> stub) {
  return stub.size();  // no [in] parameter: every byte is trailing
}

Result<EptInqObjectResponse> decode_ept_inq_object_response(std::span<const std::uint8_t> stub,
                                                            Endian endian,
                                                            const DecodeLimits& limits) {
  Decoder d(stub, endian, limits);
  NDR_TRY(object, d.uuid());
  NDR_TRY(status, d.u32());
  if (auto r = d.expect_end(); !r) return std::unexpected(r.error());
  return EptInqObjectResponse{*object, *status};
}

Result<EptMgmtDeleteRequest> decode_ept_mgmt_delete_request(std::span<const std::uint8_t> stub,
                                                            Endian endian,
                                                            const DecodeLimits& limits) {
  Decoder d(stub, endian, limits);
  EptMgmtDeleteRequest v;
  NDR_TRY(speced, d.u32());
  v.object_speced = *speced != 0;
  // Top-level [ptr] parameters: a full pointer whose referent follows inline. Two top-level
  // pointers cannot alias a uuid and a tower, so a repeated id is malformed.
  NDR_TRY(object_ptr, d.full_pointer());
  if (!object_ptr->is_null()) {
    if (!object_ptr->first) return fail(Errc::kBadFullPointer);
    NDR_TRY(object, d.uuid());
    v.object = *object;
  }
  NDR_TRY(tower_ptr, d.full_pointer());
  if (!tower_ptr->is_null()) {
    if (!tower_ptr->first) return fail(Errc::kBadFullPointer);
    NDR_TRY(octets, decode_twr(d));
    v.tower = std::move(*octets);
  }
  v.trailing_bytes = d.remaining();
  return v;
}

std::vector<std::uint8_t> encode(const EptInsertRequest& v, Endian endian, EncodeOptions options) {
  Encoder e(endian, options);
  write_entries(e, v.entries);
  e.u32(v.replace ? 1 : 0);
  return e.take();
}

std::vector<std::uint8_t> encode(const EptDeleteRequest& v, Endian endian, EncodeOptions options) {
  Encoder e(endian, options);
  write_entries(e, v.entries);
  return e.take();
}

std::vector<std::uint8_t> encode(const EptStatusResponse& v, Endian endian, EncodeOptions options) {
  Encoder e(endian, options);
  e.u32(v.status);
  return e.take();
}

std::vector<std::uint8_t> encode(const EptInqObjectResponse& v, Endian endian,
                                 EncodeOptions options) {
  Encoder e(endian, options);
  e.uuid(v.ept_object);
  e.u32(v.status);
  return e.take();
}

std::vector<std::uint8_t> encode(const EptMgmtDeleteRequest& v, Endian endian,
                                 EncodeOptions options) {
  Encoder e(endian, options);
  e.u32(v.object_speced ? 1 : 0);
  write_uuid_ptr(e, v.object);
  e.unique_pointer(v.tower.has_value());
  if (v.tower) encode_twr(e, *v.tower);
  return e.take();
}

}  // namespace rpcgate::ndr::epm
