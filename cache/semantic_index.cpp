#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <shared_mutex>

#include "cache/inner_product.h"
#include "cache/semantic.h"

namespace cascade {

namespace {

using Graph = hnswlib::HierarchicalNSW<float>;

class InnerProductDistance final : public hnswlib::SpaceInterface<float> {
 public:
  explicit InnerProductDistance(std::size_t dimension)
      : dimension_(dimension), function_(inner_product_distance()) {}
  std::size_t get_data_size() override { return dimension_ * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return function_; }
  void* get_dist_func_param() override { return &dimension_; }

 private:
  std::size_t dimension_;
  hnswlib::DISTFUNC<float> function_;
};

// Unit vectors only: similarity = 1 - distance is a cosine only then. The
// slack absorbs float rounding of vectors normalized elsewhere.
bool is_unit(std::span<const float> v) {
  double sum = 0;
  for (const float x : v) {
    if (!std::isfinite(x)) return false;
    sum += static_cast<double>(x) * x;
  }
  return std::abs(sum - 1.0) < 1e-3;
}

}  // namespace

struct SemanticIndex::Tenant {
  mutable std::shared_mutex mutex;
  std::unique_ptr<InnerProductDistance> space;
  std::unique_ptr<Graph> graph;
  std::size_t live = 0;
};

struct SemanticIndex::Tenants {
  mutable std::shared_mutex mutex;
  std::map<std::string, std::shared_ptr<Tenant>, std::less<>> by_name;
};

SemanticIndex::SemanticIndex(SemanticIndexOptions options)
    : options_(options), tenants_(std::make_unique<Tenants>()) {
  options_.initial_capacity = std::max<std::size_t>(16, options_.initial_capacity);
  options_.M = std::max<std::size_t>(2, options_.M);
}

SemanticIndex::~SemanticIndex() = default;

std::shared_ptr<SemanticIndex::Tenant> SemanticIndex::find(std::string_view tenant) const {
  std::shared_lock lock(tenants_->mutex);
  const auto it = tenants_->by_name.find(tenant);
  return it == tenants_->by_name.end() ? nullptr : it->second;
}

std::shared_ptr<SemanticIndex::Tenant> SemanticIndex::find_or_create(std::string_view tenant) {
  if (auto found = find(tenant)) return found;
  std::unique_lock lock(tenants_->mutex);
  auto& slot = tenants_->by_name[std::string(tenant)];
  if (!slot) {
    auto created = std::make_shared<Tenant>();
    created->space = std::make_unique<InnerProductDistance>(options_.dimension);
    created->graph = std::make_unique<Graph>(created->space.get(), options_.initial_capacity, options_.M,
                                             options_.ef_construction);
    created->graph->setEf(options_.ef_search);
    slot = std::move(created);
  }
  return slot;
}

Result<void> SemanticIndex::add(std::string_view tenant, std::uint64_t entry_id, std::span<const float> vector) {
  if (vector.size() != options_.dimension) {
    return fail(ErrorCode::invalid_request, "vector has dimension " + std::to_string(vector.size()) +
                                                ", the index " + std::to_string(options_.dimension));
  }
  if (!is_unit(vector)) return fail(ErrorCode::invalid_request, "vector is not unit length");
  std::shared_ptr<Tenant> t;
  try {
    t = find_or_create(tenant);
  } catch (const std::exception& e) {  // hnswlib reports allocation failures by throwing
    return fail(ErrorCode::internal, std::string("semantic index: ") + e.what());
  }
  std::unique_lock lock(t->mutex);
  Graph& g = *t->graph;
  try {
    const auto existing = g.label_lookup_.find(entry_id);
    if (existing != g.label_lookup_.end()) {
      // addPoint on a known label updates it in place and clears a delete mark.
      if (g.isMarkedDeleted(existing->second)) ++t->live;
    } else {
      if (g.cur_element_count >= g.max_elements_) g.resizeIndex(g.max_elements_ * 2);
      ++t->live;
    }
    g.addPoint(vector.data(), entry_id);
  } catch (const std::exception& e) {
    return fail(ErrorCode::internal, std::string("semantic index: ") + e.what());
  }
  return {};
}

bool SemanticIndex::remove(std::string_view tenant, std::uint64_t entry_id) {
  const auto t = find(tenant);
  if (!t) return false;
  std::unique_lock lock(t->mutex);
  Graph& g = *t->graph;
  const auto it = g.label_lookup_.find(entry_id);
  if (it == g.label_lookup_.end() || g.isMarkedDeleted(it->second)) return false;
  g.markDeletedInternal(it->second);
  --t->live;
  return true;
}

std::vector<Neighbor> SemanticIndex::search(std::string_view tenant, std::span<const float> vector,
                                            std::size_t k) const {
  std::vector<Neighbor> out;
  if (vector.size() != options_.dimension || k == 0) return out;
  const auto t = find(tenant);
  if (!t) return out;
  std::shared_lock lock(t->mutex);
  if (t->live == 0) return out;
  auto queue = t->graph->searchKnn(vector.data(), k);  // farthest on top
  out.resize(queue.size());
  for (std::size_t i = queue.size(); i-- > 0;) {
    out[i] = Neighbor{queue.top().second, 1.0f - queue.top().first};
    queue.pop();
  }
  return out;
}

std::size_t SemanticIndex::size(std::string_view tenant) const {
  const auto t = find(tenant);
  if (!t) return 0;
  std::shared_lock lock(t->mutex);
  return t->live;
}

std::size_t SemanticIndex::deleted(std::string_view tenant) const {
  const auto t = find(tenant);
  if (!t) return 0;
  std::shared_lock lock(t->mutex);
  return t->graph->num_deleted_;
}

Result<void> SemanticIndex::compact(std::string_view tenant) {
  const auto t = find(tenant);
  if (!t) return {};
  std::unique_lock lock(t->mutex);
  Graph& old = *t->graph;
  try {
    auto fresh = std::make_unique<Graph>(t->space.get(), std::max(options_.initial_capacity, t->live * 2),
                                         options_.M, options_.ef_construction);
    fresh->setEf(old.ef_);
    for (hnswlib::tableint id = 0; id < old.cur_element_count; ++id) {
      if (old.isMarkedDeleted(id)) continue;
      fresh->addPoint(old.getDataByInternalId(id), old.getExternalLabel(id));
    }
    t->graph = std::move(fresh);
  } catch (const std::exception& e) {
    return fail(ErrorCode::internal, std::string("semantic index compaction: ") + e.what());
  }
  return {};
}

void SemanticIndex::set_ef_search(std::size_t ef_search) {
  std::vector<std::shared_ptr<Tenant>> all;
  {
    std::unique_lock lock(tenants_->mutex);  // tenants created from now on get the new value
    options_.ef_search = ef_search;
    for (const auto& [name, t] : tenants_->by_name) all.push_back(t);
  }
  for (const auto& t : all) {
    std::unique_lock lock(t->mutex);
    t->graph->setEf(ef_search);
  }
}

const char* SemanticIndex::distance_kernel() { return inner_product_kernel_name(); }

std::size_t SemanticIndex::memory_bytes() const {
  std::vector<std::shared_ptr<Tenant>> all;
  {
    std::shared_lock lock(tenants_->mutex);
    for (const auto& [name, t] : tenants_->by_name) all.push_back(t);
  }
  std::size_t total = 0;
  for (const auto& t : all) {
    std::shared_lock lock(t->mutex);
    const Graph& g = *t->graph;
    const std::size_t capacity = g.max_elements_;
    total += capacity * g.size_data_per_element_;                // vectors + bottom-layer links + labels
    total += capacity * (sizeof(void*) + sizeof(int) + sizeof(std::mutex));  // upper-link pointers, levels, locks
    total += capacity * sizeof(hnswlib::vl_type);                 // one visited list
    for (std::size_t i = 0; i < g.cur_element_count; ++i) {
      if (g.element_levels_[i] > 0) total += g.size_links_per_element_ * g.element_levels_[i] + 1;
    }
    // unordered_map node (key, value, next pointer, cached hash) + bucket.
    total += g.label_lookup_.size() * (sizeof(std::uint64_t) * 2 + sizeof(void*) * 2) +
             g.label_lookup_.bucket_count() * sizeof(void*);
  }
  return total;
}

}  // namespace cascade
